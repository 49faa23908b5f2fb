package state

import (
	"context"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/drive-node/drive-node/certs"
	"github.com/drive-node/drive-node/content"
	"github.com/drive-node/drive-node/vclock"
)

func TestApplyFileRoundTrip(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	cases := []File{
		{
			Path: "dir/file.txt", Hash: content.Sum([]byte("hello")), Size: 5, Mode: 0o644,
			MTime: 1700000000123456789, Inode: 123456,
			Version: vclock.Vector{}.With(dev(1), 3).With(dev(2), 1<<40),
			Lamport: 99, Origin: dev(1), Seq: 17,
		},
		{Path: "dir", Dir: true, Mode: 0o755, MTime: -5, Version: vclock.Vector{}.With(dev(3), 1), Origin: dev(3), Seq: 1},
		{
			Path: "gone", Deleted: true, DeletedAt: 1700000000999, Mode: 0o600,
			Version: vclock.Vector{}.With(dev(1), 4), Lamport: 100, Origin: dev(1), Seq: 18,
		},
		// Unsigned values beyond int64 survive storage as int64.
		{
			Path: "big", Hash: content.EmptyHash, Mode: math.MaxUint32, Inode: math.MaxUint64,
			Version: vclock.Vector{}.With(dev(4), math.MaxUint64), Lamport: 1<<63 + 1, Origin: dev(4), Seq: math.MaxUint64,
		},
		{Path: "no version, zero origin"},
		{Path: "ünïcode/名前 with 'quotes' and %_"},
	}
	if err := db.Apply(ctx, Batch{Files: cases}); err != nil {
		t.Fatal(err)
	}
	for _, want := range cases {
		t.Run(want.Path, func(t *testing.T) {
			got, ok, err := db.File(ctx, want.Path)
			if err != nil || !ok {
				t.Fatalf("File(%q) = ok %v, %v", want.Path, ok, err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("round trip:\n got %+v\nwant %+v", got, want)
			}
		})
	}
	if _, ok, err := db.File(ctx, "missing"); err != nil || ok {
		t.Fatalf("File(missing) = ok %v, %v", ok, err)
	}
}

func TestApplyReplacesByPath(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	live := File{Path: "a", Hash: content.Sum([]byte("x")), Size: 1, Origin: dev(1), Seq: 1}
	tomb := File{Path: "a", Deleted: true, DeletedAt: 50, Origin: dev(2), Seq: 9, Version: vclock.Vector{}.With(dev(2), 9)}
	for _, step := range []struct {
		name  string
		batch []File
		want  File
	}{
		{"insert", []File{live}, live},
		{"tombstone replaces", []File{tomb}, tomb},
		{"recreate over tombstone", []File{live}, live},
		{"last in batch wins", []File{tomb, live, tomb}, tomb},
	} {
		if err := db.Apply(ctx, Batch{Files: step.batch}); err != nil {
			t.Fatal(err)
		}
		got, _, err := db.File(ctx, "a")
		if err != nil || !reflect.DeepEqual(got, step.want) {
			t.Fatalf("%s: got %+v (%v), want %+v", step.name, got, err, step.want)
		}
	}
}

func TestApplyIsAtomic(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	if err := db.Apply(ctx, Batch{Files: []File{{Path: "old", Size: 1}}, Applied: map[certs.DeviceID]uint64{dev(1): 1}}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.sql.ExecContext(ctx, `CREATE TRIGGER fail BEFORE INSERT ON files WHEN NEW.path = 'bad'
		BEGIN SELECT RAISE(ABORT, 'boom'); END`); err != nil {
		t.Fatal(err)
	}
	err := db.Apply(ctx, Batch{
		Files:   []File{{Path: "new1"}, {Path: "old", Size: 2}, {Path: "bad"}, {Path: "new2"}},
		Applied: map[certs.DeviceID]uint64{dev(1): 5, dev(2): 5},
	})
	if err == nil || !strings.Contains(err.Error(), `"bad"`) {
		t.Fatalf("Apply with a failing row: %v, want error naming the row", err)
	}
	var paths []string
	if err := db.Files(ctx, func(f File) error { paths = append(paths, f.Path); return nil }); err != nil {
		t.Fatal(err)
	}
	if strings.Join(paths, ",") != "old" {
		t.Fatalf("rows after failed batch: %v, want only old", paths)
	}
	if f, _, _ := db.File(ctx, "old"); f.Size != 1 {
		t.Fatalf("failed batch changed a row: %+v", f)
	}
	applied, err := db.Applied(ctx)
	if err != nil || !reflect.DeepEqual(applied, map[certs.DeviceID]uint64{dev(1): 1}) {
		t.Fatalf("applied after failed batch: %v %v", applied, err)
	}
}

func TestApplyRejectsEmptyPath(t *testing.T) {
	db := newDB(t)
	if err := db.Apply(context.Background(), Batch{Files: []File{{Path: "ok"}, {}}}); err == nil {
		t.Fatal("empty path accepted")
	}
}

func TestAppliedIsMaxMerged(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	a, b, c := dev(1), dev(2), dev(3)
	steps := []struct {
		name string
		in   map[certs.DeviceID]uint64
		want map[certs.DeviceID]uint64
	}{
		{"empty at first", nil, map[certs.DeviceID]uint64{}},
		{"first values", map[certs.DeviceID]uint64{a: 5, b: 3}, map[certs.DeviceID]uint64{a: 5, b: 3}},
		{"raise one lower other", map[certs.DeviceID]uint64{a: 2, b: 10}, map[certs.DeviceID]uint64{a: 5, b: 10}},
		{"equal is a no-op", map[certs.DeviceID]uint64{a: 5}, map[certs.DeviceID]uint64{a: 5, b: 10}},
		{"zero never lowers nor adds", map[certs.DeviceID]uint64{a: 0, c: 0}, map[certs.DeviceID]uint64{a: 5, b: 10}},
		{"new origin", map[certs.DeviceID]uint64{c: 1}, map[certs.DeviceID]uint64{a: 5, b: 10, c: 1}},
		{"compared unsigned", map[certs.DeviceID]uint64{c: math.MaxUint64}, map[certs.DeviceID]uint64{a: 5, b: 10, c: math.MaxUint64}},
		{"not lowered from the top", map[certs.DeviceID]uint64{c: 7}, map[certs.DeviceID]uint64{a: 5, b: 10, c: math.MaxUint64}},
	}
	for _, s := range steps {
		if err := db.Apply(ctx, Batch{Applied: s.in}); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		got, err := db.Applied(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, s.want) {
			t.Fatalf("%s: Applied = %v, want %v", s.name, got, s.want)
		}
	}
}

func paths(t *testing.T, list func(fn func(File) error) error) []string {
	t.Helper()
	out := []string{}
	if err := list(func(f File) error { out = append(out, f.Path); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestFilesOrderingAndFilesUnder(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	var files []File
	for _, p := range []string{
		"b", "a/x", "a", "a-b", "a.b", "a/y/z", "a_b", "a_b/in", "aXb", "aXb/in", "a%", "a%/in", "a%b/in",
		"A/upper", "a/gone", "ab/in", "a/b/c",
	} {
		files = append(files, File{Path: p, Dir: !strings.Contains(p, "/") && p != "b", Deleted: p == "a/gone"})
	}
	if err := db.Apply(ctx, Batch{Files: files}); err != nil {
		t.Fatal(err)
	}
	all := paths(t, func(fn func(File) error) error { return db.Files(ctx, fn) })
	want := "A/upper a a%% a%/in a%b/in a-b a.b a/b/c a/gone a/x a/y/z aXb aXb/in a_b a_b/in ab/in b"
	want = strings.ReplaceAll(want, "%%", "%")
	if got := strings.Join(all, " "); got != want {
		t.Fatalf("Files order:\n got %s\nwant %s", got, want)
	}

	for _, tc := range []struct{ dir, want string }{
		{"a", "a/b/c a/x a/y/z"}, // not a/gone (tombstone), not a-b, a.b, ab/in
		{"a/", "a/b/c a/x a/y/z"},
		{"a_b", "a_b/in"}, // _ is not a wildcard: not aXb/in
		{"a%", "a%/in"},   // % is not a wildcard: not a%b/in, aXb/in
		{"A", "A/upper"},  // case-sensitive
		{"a/y", "a/y/z"},  // nested
		{"a/y/z", ""},     // a file has nothing under it
		{"missing", ""},   //
		{"a/gone", ""},    // tombstone
		{"", "A/upper a a% a%/in a%b/in a-b a.b a/b/c a/x a/y/z aXb aXb/in a_b a_b/in ab/in b"},
	} {
		got := paths(t, func(fn func(File) error) error { return db.FilesUnder(ctx, tc.dir, fn) })
		if strings.Join(got, " ") != tc.want {
			t.Errorf("FilesUnder(%q) = %q, want %q", tc.dir, strings.Join(got, " "), tc.want)
		}
	}
}

func TestFilesCallbackErrorStops(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	if err := db.Apply(ctx, Batch{Files: []File{{Path: "a/1"}, {Path: "a/2"}, {Path: "a/3"}}}); err != nil {
		t.Fatal(err)
	}
	stop := errors.New("stop")
	for name, list := range map[string]func(func(File) error) error{
		"Files":      func(fn func(File) error) error { return db.Files(ctx, fn) },
		"FilesUnder": func(fn func(File) error) error { return db.FilesUnder(ctx, "a", fn) },
	} {
		n := 0
		err := list(func(File) error {
			n++
			if n == 2 {
				return stop
			}
			return nil
		})
		if err != stop || n != 2 {
			t.Errorf("%s: err %v after %d calls, want the callback's error after 2", name, err, n)
		}
	}
	// A callback may write to the database while it iterates.
	err := db.Files(ctx, func(f File) error {
		return db.Apply(ctx, Batch{Files: []File{{Path: "b/" + f.Path}}})
	})
	if err != nil {
		t.Fatalf("write from inside Files: %v", err)
	}
	if got := paths(t, func(fn func(File) error) error { return db.FilesUnder(ctx, "b", fn) }); len(got) != 3 {
		t.Fatalf("writes from the callback: %v", got)
	}
}

// TestFilesByHash: FilesByHash and ContentFiles list the live files with
// a content, in path order, and ContentFiles gives their size and mtime.
func TestFilesByHash(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	h, other := content.Sum([]byte("x")), content.Sum([]byte("y"))
	if err := db.Apply(ctx, Batch{Files: []File{
		{Path: "b", Hash: h, Size: 1, MTime: 20}, {Path: "a", Hash: h, Size: 1, MTime: 10}, {Path: "c", Hash: other, Size: 1, MTime: 30},
		{Path: "dir", Dir: true}, {Path: "dead", Hash: h, Deleted: true},
	}}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		h         content.Hash
		want, got string
	}{{h, "a b", "a:1@10 b:1@20"}, {other, "c", "c:1@30"}, {content.Sum([]byte("z")), "", ""}, {content.Hash{}, "", ""}} {
		fs, err := db.FilesByHash(ctx, tc.h)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, f := range fs {
			got = append(got, f.Path)
		}
		if strings.Join(got, " ") != tc.want {
			t.Errorf("FilesByHash(%s) = %v, want %q", tc.h.Short(), got, tc.want)
		}
		cfs, err := db.ContentFiles(ctx, tc.h)
		if err != nil {
			t.Fatal(err)
		}
		got = got[:0]
		for _, f := range cfs {
			got = append(got, fmt.Sprintf("%s:%d@%d", f.Path, f.Size, f.MTime))
		}
		if strings.Join(got, " ") != tc.got {
			t.Errorf("ContentFiles(%s) = %v, want %q", tc.h.Short(), got, tc.got)
		}
	}
}

func TestResetAndPurge(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	if err := db.Pair(ctx, dev(1), "p"); err != nil {
		t.Fatal(err)
	}
	if err := db.SetMeta(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
	if err := db.Apply(ctx, Batch{
		Files: []File{
			{Path: "live"},
			{Path: "t10", Deleted: true, DeletedAt: 10},
			{Path: "t20", Deleted: true, DeletedAt: 20},
			{Path: "t30", Deleted: true, DeletedAt: 30},
		},
		Applied: map[certs.DeviceID]uint64{dev(1): 4},
	}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		olderThan int64
		n         int
		left      string
	}{
		{10, 0, "live t10 t20 t30"}, // strictly older
		{21, 2, "live t30"},
		{21, 0, "live t30"},
		{1 << 62, 1, "live"}, // live rows are never purged
	} {
		n, err := db.PurgeTombstones(ctx, tc.olderThan)
		if err != nil || n != tc.n {
			t.Fatalf("PurgeTombstones(%d) = %d, %v; want %d", tc.olderThan, n, err, tc.n)
		}
		if got := strings.Join(paths(t, func(fn func(File) error) error { return db.Files(ctx, fn) }), " "); got != tc.left {
			t.Fatalf("after PurgeTombstones(%d): %q, want %q", tc.olderThan, got, tc.left)
		}
	}

	if err := db.Reset(ctx); err != nil {
		t.Fatal(err)
	}
	if got := paths(t, func(fn func(File) error) error { return db.Files(ctx, fn) }); len(got) != 0 {
		t.Fatalf("rows after Reset: %v", got)
	}
	if a, err := db.Applied(ctx); err != nil || len(a) != 0 {
		t.Fatalf("applied after Reset: %v %v", a, err)
	}
	if ok, err := db.IsPaired(ctx, dev(1)); err != nil || !ok {
		t.Fatalf("Reset dropped a peer: %v %v", ok, err)
	}
	if v, ok, _ := db.Meta(ctx, "k"); !ok || v != "v" {
		t.Fatal("Reset dropped meta")
	}
	// Rebuilding after a reset starts the applied vector from scratch.
	if err := db.Apply(ctx, Batch{Applied: map[certs.DeviceID]uint64{dev(1): 2}}); err != nil {
		t.Fatal(err)
	}
	if a, _ := db.Applied(ctx); a[dev(1)] != 2 {
		t.Fatalf("applied after rebuild: %v", a)
	}
}

func TestStats(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	st, err := db.Stats(ctx)
	if err != nil || st != (Stats{}) {
		t.Fatalf("Stats of empty db = %+v, %v", st, err)
	}
	before := time.Now().UnixNano()
	if err := db.Apply(ctx, Batch{
		Files: []File{
			{Path: "a", Size: 10}, {Path: "b", Size: 32},
			{Path: "d", Dir: true, Size: 4096}, {Path: "d/e", Dir: true},
			{Path: "gone", Size: 1000, Deleted: true, DeletedAt: 5},
		},
		Applied: map[certs.DeviceID]uint64{dev(1): 7, dev(2): 5},
	}); err != nil {
		t.Fatal(err)
	}
	after := time.Now().UnixNano()
	st, err = db.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.LastChange < before || st.LastChange > after {
		t.Errorf("LastChange %d not within the Apply call [%d, %d]", st.LastChange, before, after)
	}
	st.LastChange = 0
	if want := (Stats{Files: 2, Dirs: 2, Tombstones: 1, Bytes: 42, Ops: 12, Changes: 5}); st != want {
		t.Fatalf("Stats = %+v, want %+v", st, want)
	}
}

func TestVectorEncoding(t *testing.T) {
	for _, v := range []vclock.Vector{nil, {{Device: dev(1), Counter: 1}}, vclock.Vector{}.With(dev(1), 2).With(dev(2), math.MaxUint64)} {
		b := encodeVector(v)
		if len(b) != len(v)*40 {
			t.Errorf("%v encodes to %d bytes", v, len(b))
		}
		got, err := decodeVector(b)
		if err != nil || !reflect.DeepEqual(got, v) {
			t.Errorf("decode(encode(%v)) = %v, %v", v, got, err)
		}
	}
	if _, err := decodeVector(make([]byte, 41)); err == nil {
		t.Error("41-byte vector decoded")
	}
}

// Records are stored several to a statement: a batch over two
// statements' worth, with one path at both ends of a statement and in
// the last, short one, keeps every record and, for the path, the last.
func TestApplyManyRecordsLastWins(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	n := 2*filesPerInsert + 3
	files := make([]File, n)
	for i := range files {
		files[i] = File{Path: fmt.Sprintf("f%04d", i), Size: int64(i)}
	}
	for _, i := range []int{0, filesPerInsert - 1, filesPerInsert, n - 1} {
		files[i] = File{Path: "dup", Size: int64(1000 + i)}
	}
	if err := db.Apply(ctx, Batch{Files: files}); err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	if err := db.Files(ctx, func(f File) error { got[f.Path] = f.Size; return nil }); err != nil {
		t.Fatal(err)
	}
	if want := n - 3; len(got) != want {
		t.Fatalf("%d records stored, want %d", len(got), want)
	}
	if got["dup"] != int64(1000+n-1) {
		t.Fatalf("dup holds size %d, want the last one's, %d", got["dup"], 1000+n-1)
	}
	for _, f := range files {
		if f.Path != "dup" && got[f.Path] != f.Size {
			t.Fatalf("%s holds size %d, want %d", f.Path, got[f.Path], f.Size)
		}
	}
}
