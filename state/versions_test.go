package state

import (
	"bytes"
	"context"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/drive-node/drive-node/content"
)

// kept0 is the base Kept time of the version tests, in unix nanoseconds.
const kept0 = int64(1_700_000_000_000_000_000)

// ver returns a version of path with content c, kept at kept0+kept and
// replaced by op (dev(by), seq).
func ver(path, c string, kept int64, by byte, seq uint64) Version {
	return Version{
		Path:  path,
		Hash:  content.Sum([]byte(c)),
		Size:  int64(len(c)),
		Mode:  0o644,
		MTime: kept0 + kept - 1000,
		Kept:  kept0 + kept,
		By:    OpID{Origin: dev(by), Seq: seq},
	}
}

// listVersions returns db.Versions(path, under), failing the test on error.
func listVersions(t *testing.T, db *DB, path string, under bool) []Version {
	t.Helper()
	vs, err := db.Versions(context.Background(), path, under)
	if err != nil {
		t.Fatalf("Versions(%q, %v): %v", path, under, err)
	}
	return vs
}

// withoutIDs returns vs with their IDs zeroed, checking that each was set
// and that none repeats.
func withoutIDs(t *testing.T, vs []Version) []Version {
	t.Helper()
	seen := map[int64]bool{}
	out := slices.Clone(vs)
	for i := range out {
		if out[i].ID == 0 || seen[out[i].ID] {
			t.Fatalf("version %d of %d (%q) has ID %d: want a distinct nonzero ID", i, len(vs), vs[i].Path, vs[i].ID)
		}
		seen[out[i].ID] = true
		out[i].ID = 0
	}
	return out
}

func samePaths(t *testing.T, what string, vs []Version, want ...string) {
	t.Helper()
	var got []string
	for _, v := range vs {
		got = append(got, v.Path)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("%s: paths %q, want %q", what, got, want)
	}
}

func TestApplyStoresVersionsWithFiles(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	old := Version{
		Path:  "dir/ünï 'file'.txt",
		Hash:  content.Sum([]byte("before")),
		Size:  6,
		Mode:  math.MaxUint32,
		MTime: -5,
		Kept:  kept0,
		By:    OpID{Origin: dev(7), Seq: math.MaxUint64},
	}
	file := File{Path: old.Path, Hash: content.Sum([]byte("after")), Size: 5, Mode: 0o644, Origin: dev(7), Seq: math.MaxUint64}
	if err := db.Apply(ctx, Batch{Files: []File{file}, Versions: []Version{old}}); err != nil {
		t.Fatal(err)
	}
	if got, ok, err := db.File(ctx, file.Path); err != nil || !ok || !reflect.DeepEqual(got, file) {
		t.Fatalf("File(%q) = %+v, %v, %v; want %+v", file.Path, got, ok, err, file)
	}
	got := listVersions(t, db, old.Path, false)
	if !reflect.DeepEqual(withoutIDs(t, got), []Version{old}) {
		t.Fatalf("versions after Apply:\n got %+v\nwant %+v", got, []Version{old})
	}

	// A batch of versions alone is applied too.
	more := ver("other", "x", 1, 1, 1)
	if err := db.Apply(ctx, Batch{Versions: []Version{more}}); err != nil {
		t.Fatal(err)
	}
	if got := listVersions(t, db, "other", false); !reflect.DeepEqual(withoutIDs(t, got), []Version{more}) {
		t.Fatalf("versions after a batch of versions only:\n got %+v\nwant %+v", got, []Version{more})
	}
	// AddVersions stores them the same way.
	third := ver("third", "y", 2, 2, 3)
	if err := db.AddVersions(ctx, []Version{third}); err != nil {
		t.Fatal(err)
	}
	all, err := db.AllVersions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := []Version{old, more, third}; !reflect.DeepEqual(withoutIDs(t, all), want) {
		t.Fatalf("AllVersions:\n got %+v\nwant %+v", all, want)
	}
}

func TestVersionRefusedWithoutContentOrPath(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	zero := ver("a", "x", 0, 1, 1)
	zero.Hash = content.Hash{}
	noPath := ver("", "x", 0, 1, 1)
	for _, c := range []struct {
		name string
		bad  Version
	}{{"zero hash", zero}, {"empty path", noPath}} {
		t.Run(c.name, func(t *testing.T) {
			good := ver("good", "g", 0, 1, 1)
			err := db.Apply(ctx, Batch{
				Files:    []File{{Path: "f", Hash: content.Sum([]byte("f")), Size: 1}},
				Versions: []Version{good, c.bad},
			})
			if err == nil {
				t.Fatal("Apply stored a version with " + c.name)
			}
			if !strings.Contains(err.Error(), "no path or content") {
				t.Errorf("Apply error %q does not say what is wrong", err)
			}
			if err := db.AddVersions(ctx, []Version{c.bad}); err == nil {
				t.Fatal("AddVersions stored a version with " + c.name)
			}
			// Nothing of the failed batch is stored.
			if _, ok, err := db.File(ctx, "f"); err != nil || ok {
				t.Fatalf("file of a refused batch: ok %v, %v", ok, err)
			}
			if all, err := db.AllVersions(ctx); err != nil || len(all) != 0 {
				t.Fatalf("versions after refused batches: %+v, %v", all, err)
			}
		})
	}
}

func TestSameVersionStoredOnce(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	v := ver("a", "x", 0, 1, 5)
	again := v
	again.Kept, again.MTime, again.Mode = v.Kept+99, v.MTime+99, 0o600 // what is not its identity
	if err := db.Apply(ctx, Batch{Versions: []Version{v, again}}); err != nil {
		t.Fatal(err)
	}
	first := listVersions(t, db, "", true)
	if !reflect.DeepEqual(withoutIDs(t, first), []Version{v}) {
		t.Fatalf("after adding one version twice in a batch:\n got %+v\nwant the first, %+v", first, v)
	}
	if err := db.Apply(ctx, Batch{Files: []File{{Path: "a", Size: 1}}, Versions: []Version{again}}); err != nil {
		t.Fatal(err)
	}
	if err := db.AddVersions(ctx, []Version{again, again}); err != nil {
		t.Fatal(err)
	}
	// The stored version is left as it was, ID included.
	if got := listVersions(t, db, "", true); !reflect.DeepEqual(got, first) {
		t.Fatalf("after adding one version again:\n got %+v\nwant %+v", got, first)
	}
	if _, ok, err := db.File(ctx, "a"); err != nil || !ok {
		t.Fatalf("file of a batch whose version was stored already: ok %v, %v", ok, err)
	}

	// Any part of the identity differing makes another version.
	otherPath, otherHash, otherOrigin, otherSeq := v, v, v, v
	otherPath.Path = "b"
	otherHash.Hash = content.Sum([]byte("y"))
	otherOrigin.By.Origin = dev(2)
	otherSeq.By.Seq = 6
	if err := db.AddVersions(ctx, []Version{otherPath, otherHash, otherOrigin, otherSeq}); err != nil {
		t.Fatal(err)
	}
	if got := listVersions(t, db, "", true); len(got) != 5 {
		t.Fatalf("%d versions stored, want 5: %+v", len(got), got)
	}
}

func TestVersionsOfPathAndUnder(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	// Added out of order of Kept; "a" sorts among names that share its
	// prefix without being under it ("a.b", "a0", "ab" around "a/").
	vs := []Version{
		ver("a/x", "1", 30, 1, 1),
		ver("ab", "2", 10, 1, 2),
		ver("a", "3", 50, 1, 3),
		ver("a.b", "4", 5, 1, 4),
		ver("a/y/z", "5", 20, 1, 5),
		ver("a", "6", 40, 1, 6),
		ver("a0", "7", 15, 1, 7),
		ver("A/x", "8", 25, 1, 8),
		ver("b/a", "9", 35, 1, 9),
		ver("a", "10", 40, 1, 10), // same Kept as "6": the one added first is older
	}
	if err := db.Apply(ctx, Batch{Versions: vs}); err != nil {
		t.Fatal(err)
	}

	got := listVersions(t, db, "a", false)
	samePaths(t, `Versions("a", false)`, got, "a", "a", "a")
	if !reflect.DeepEqual(withoutIDs(t, got), []Version{vs[5], vs[9], vs[2]}) {
		t.Fatalf(`Versions("a", false) not oldest first:\n got %+v`, got)
	}
	if got[0].ID > got[1].ID {
		t.Fatalf("versions kept at one time not in order of ID: %d before %d", got[0].ID, got[1].ID)
	}

	got = listVersions(t, db, "a", true)
	if !reflect.DeepEqual(withoutIDs(t, got), []Version{vs[4], vs[0], vs[5], vs[9], vs[2]}) {
		samePaths(t, `Versions("a", true)`, got, "a/y/z", "a/x", "a", "a", "a")
		t.Fatalf(`Versions("a", true):\n got %+v`, got)
	}
	// A trailing slash is ignored.
	if again := listVersions(t, db, "a/", true); !reflect.DeepEqual(again, got) {
		t.Fatalf(`Versions("a/", true) = %+v, want %+v`, again, got)
	}
	samePaths(t, `Versions("a/y", true)`, listVersions(t, db, "a/y", true), "a/y/z")
	samePaths(t, `Versions("a/y", false)`, listVersions(t, db, "a/y", false))
	samePaths(t, `Versions("missing", true)`, listVersions(t, db, "missing", true))
	samePaths(t, `Versions("ab", true)`, listVersions(t, db, "ab", true), "ab")

	// The whole folder, oldest first.
	want := slices.Clone(vs)
	slices.SortStableFunc(want, func(a, b Version) int { return int(a.Kept - b.Kept) })
	all := listVersions(t, db, "", true)
	if !reflect.DeepEqual(withoutIDs(t, all), want) {
		t.Fatalf(`Versions("", true):\n got %+v\nwant %+v`, all, want)
	}
	if a, err := db.AllVersions(ctx); err != nil || !reflect.DeepEqual(a, all) {
		t.Fatalf("AllVersions = %+v, %v; want %+v", a, err, all)
	}
}

func TestVersionsByHash(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	vs := []Version{
		// In order of ID, neither of path nor of Kept.
		ver("c", "shared", 30, 1, 1),
		ver("a", "other", 20, 1, 2),
		ver("b", "shared", 10, 1, 3),
	}
	if err := db.AddVersions(ctx, vs); err != nil {
		t.Fatal(err)
	}
	got, err := db.VersionsByHash(ctx, content.Sum([]byte("shared")))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(withoutIDs(t, got), []Version{vs[0], vs[2]}) {
		t.Fatalf("VersionsByHash(shared):\n got %+v\nwant %+v", got, []Version{vs[0], vs[2]})
	}
	if got[0].ID >= got[1].ID {
		t.Fatalf("VersionsByHash not in order of ID: %d, %d", got[0].ID, got[1].ID)
	}
	for _, h := range []content.Hash{content.Sum([]byte("none")), {}} {
		if got, err := db.VersionsByHash(ctx, h); err != nil || len(got) != 0 {
			t.Fatalf("VersionsByHash(%s) = %+v, %v; want none", h.Short(), got, err)
		}
	}
}

func TestVersionStatsCountsContentsOnce(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	stats := func() VersionStats {
		t.Helper()
		s, err := db.VersionStats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	if s := stats(); s != (VersionStats{}) {
		t.Fatalf("VersionStats of an empty store = %+v", s)
	}
	big := strings.Repeat("b", 1000)
	if err := db.AddVersions(ctx, []Version{
		ver("a", big, 0, 1, 1),
		ver("b", big, 1, 1, 2),
		ver("a", big, 2, 2, 1),
		ver("c", "small", 3, 1, 3),
	}); err != nil {
		t.Fatal(err)
	}
	if s, want := stats(), (VersionStats{Versions: 4, Contents: 2, Bytes: 1005}); s != want {
		t.Fatalf("VersionStats = %+v, want %+v", s, want)
	}
}

func sortHashes(hs []content.Hash) []content.Hash {
	hs = slices.Clone(hs)
	slices.SortFunc(hs, func(a, b content.Hash) int { return bytes.Compare(a[:], b[:]) })
	return hs
}

func TestDropVersionsFreesUnnamedContents(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	x, y, z := content.Sum([]byte("x")), content.Sum([]byte("y")), content.Sum([]byte("z"))
	if err := db.AddVersions(ctx, []Version{
		ver("a", "x", 0, 1, 1),
		ver("b", "x", 1, 1, 2),
		ver("a", "y", 2, 1, 3),
		ver("c", "z", 3, 1, 4),
		ver("d", "z", 4, 1, 5),
	}); err != nil {
		t.Fatal(err)
	}
	all := listVersions(t, db, "", true)
	id := func(path, c string) int64 {
		t.Helper()
		h := content.Sum([]byte(c))
		for _, v := range all {
			if v.Path == path && v.Hash == h {
				return v.ID
			}
		}
		t.Fatalf("no version %s of %q", c, path)
		return 0
	}
	has := func(h content.Hash) bool {
		t.Helper()
		ok, err := db.HasVersionContent(ctx, h)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	for _, h := range []content.Hash{x, y, z} {
		if !has(h) {
			t.Fatalf("HasVersionContent(%s) = false before any drop", h.Short())
		}
	}
	if has(content.Sum([]byte("never"))) {
		t.Fatal("HasVersionContent of a content no version names = true")
	}

	// x stays named by b's version; y is named by nothing; one version of z
	// goes, twice. An ID of no version is passed over.
	freed, err := db.DropVersions(ctx, []int64{id("a", "x"), id("a", "y"), id("c", "z"), id("c", "z"), 1 << 40})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(sortHashes(freed), []content.Hash{y}) {
		t.Fatalf("DropVersions freed %v, want only y %v", freed, y)
	}
	samePaths(t, "after the first drop", listVersions(t, db, "", true), "b", "d")
	if !has(x) || has(y) || !has(z) {
		t.Fatalf("HasVersionContent after the first drop: x %v y %v z %v, want true false true", has(x), has(y), has(z))
	}

	// Dropping the last versions of x and z frees both.
	freed, err = db.DropVersions(ctx, []int64{id("d", "z"), id("b", "x")})
	if err != nil {
		t.Fatal(err)
	}
	if want := sortHashes([]content.Hash{x, z}); !reflect.DeepEqual(sortHashes(freed), want) {
		t.Fatalf("DropVersions freed %v, want %v", freed, want)
	}
	if has(x) || has(z) {
		t.Fatal("HasVersionContent true after the last version went")
	}
	if s, err := db.VersionStats(ctx); err != nil || s != (VersionStats{}) {
		t.Fatalf("VersionStats after dropping everything = %+v, %v", s, err)
	}

	// Dropped IDs, and none at all, free nothing.
	for _, ids := range [][]int64{{id("a", "x"), id("d", "z")}, nil} {
		if freed, err := db.DropVersions(ctx, ids); err != nil || len(freed) != 0 {
			t.Fatalf("DropVersions(%v) = %v, %v; want nothing", ids, freed, err)
		}
	}

	// A content dropped and added again in one version is named again.
	if err := db.AddVersions(ctx, []Version{ver("e", "x", 9, 1, 9)}); err != nil {
		t.Fatal(err)
	}
	if !has(x) {
		t.Fatal("HasVersionContent(x) = false after a new version of x")
	}
}

// TestKeepsVersionForAsVersionsSay asks KeepsVersionFor what a search of
// Versions would answer: by the op that replaced a version, by its
// content, on another path, with no content asked for, and with a
// sequence past 2^63 (stored as a signed integer).
func TestKeepsVersionForAsVersionsSay(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	vs := []Version{ver("a.txt", "one", 1, 1, 5), ver("a.txt", "two", 2, 2, 1<<63+3), ver("b.txt", "three", 3, 1, 6)}
	if err := db.AddVersions(ctx, vs); err != nil {
		t.Fatal(err)
	}
	var zero content.Hash
	for _, c := range []struct {
		path string
		by   OpID
		h    content.Hash
	}{
		{"a.txt", OpID{dev(1), 5}, zero},
		{"a.txt", OpID{dev(2), 1<<63 + 3}, zero},
		{"a.txt", OpID{dev(1), 6}, zero},
		{"a.txt", OpID{dev(3), 9}, content.Sum([]byte("two"))},
		{"a.txt", OpID{dev(3), 9}, content.Sum([]byte("three"))},
		{"b.txt", OpID{dev(1), 5}, zero},
		{"c.txt", OpID{dev(1), 5}, content.Sum([]byte("one"))},
	} {
		want := false
		for _, v := range listVersions(t, db, c.path, false) {
			want = want || v.By == c.by || !c.h.IsZero() && v.Hash == c.h
		}
		got, err := db.KeepsVersionFor(ctx, c.path, c.by, c.h)
		if err != nil || got != want {
			t.Errorf("%s by %v content %s: %v, %v; Versions say %v", c.path, c.by, c.h.Short(), got, err, want)
		}
	}
}
