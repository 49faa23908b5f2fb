package state

import (
	"context"
	"maps"
	"slices"
	"testing"

	"github.com/drive-node/drive-node/content"
)

// dirtyPaths is DirtyDirs' directories under under, sorted.
func dirtyPaths(t *testing.T, db *DB, under string) []string {
	t.Helper()
	dirty, err := db.DirtyDirs(context.Background(), under)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, d := range dirty {
		out = append(out, d.Path)
	}
	slices.Sort(out)
	return out
}

// TestChangesMarkTheirDirectory: every write of records that changes what
// a digest covers marks the record's directory, whatever the write (a
// record made, edited, removed, made a directory, a reset); a write that
// touches no live record (a tombstone rewritten or purged) marks nothing;
// a mark a computation saw is removed only if no change came since.
func TestChangesMarkTheirDirectory(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, testPath(t))
	seq := uint64(0)
	file := func(p, body string) File {
		seq++
		return File{Path: p, Hash: content.Sum([]byte(body)), Size: int64(len(body)), Mode: 0o644, MTime: 1, Origin: dev(1), Seq: seq}
	}
	apply := func(files ...File) {
		t.Helper()
		if err := db.Apply(ctx, Batch{Files: files}); err != nil {
			t.Fatal(err)
		}
	}
	clear := func() {
		t.Helper()
		dirty, err := db.DirtyDirs(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		if err := db.SaveDigestTree(ctx, DigestTreeUpdate{Done: dirty}); err != nil {
			t.Fatal(err)
		}
		if got := dirtyPaths(t, db, ""); len(got) != 0 {
			t.Fatalf("marks left after a save at their marks: %q", got)
		}
	}
	expect := func(step string, want ...string) {
		t.Helper()
		if got := dirtyPaths(t, db, ""); !slices.Equal(got, want) {
			t.Fatalf("after %s: marked %q, want %q", step, got, want)
		}
		clear()
	}

	apply(file("top.txt", "a"), file("a/b/c.txt", "b"), file("a/b/d.txt", "c"), File{Path: "e", Dir: true, Mode: 0o755, Origin: dev(1), Seq: 99})
	expect("records made", "", "a/b")

	edited := file("a/b/c.txt", "b2")
	apply(edited)
	expect("an edit", "a/b")

	mode := edited
	mode.Mode = 0o600
	apply(mode)
	expect("a mode change", "a/b")

	gone := mode
	gone.Deleted, gone.DeletedAt, gone.Hash = true, 5, content.Hash{}
	apply(gone)
	expect("a delete", "a/b")

	again := gone
	again.DeletedAt = 6
	apply(again)
	expect("a tombstone rewritten")

	if _, err := db.PurgeTombstones(ctx, 10); err != nil {
		t.Fatal(err)
	}
	expect("tombstones purged")

	asDir := file("a/b/d.txt", "c")
	asDir.Dir, asDir.Hash = true, content.Hash{}
	apply(asDir)
	expect("a file become a directory", "a/b")

	// A change made after a computation read the marks keeps its mark.
	apply(file("a/b/new.txt", "n"))
	seen, err := db.DirtyDirs(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	apply(file("a/b/newer.txt", "n"), file("x/y.txt", "y"))
	if err := db.SaveDigestTree(ctx, DigestTreeUpdate{Done: seen}); err != nil {
		t.Fatal(err)
	}
	expect("a change during a computation", "a/b", "x")

	if err := db.Reset(ctx); err != nil {
		t.Fatal(err)
	}
	expect("a reset", "", "a/b", "x")
}

// TestDirtyDirsUnder: the marks asked for under a directory are its own
// and those below it, not a sibling's whose name only starts the same.
func TestDirtyDirsUnder(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, testPath(t))
	var files []File
	for i, p := range []string{"top.txt", "a/f", "a/b/f", "a/b/c/f", "a.b/f", "a0/f", "ab/f", "b/a/f"} {
		files = append(files, File{Path: p, Hash: content.Sum([]byte(p)), Size: 1, Mode: 0o644, MTime: 1, Origin: dev(1), Seq: uint64(i + 1)})
	}
	if err := db.Apply(ctx, Batch{Files: files}); err != nil {
		t.Fatal(err)
	}
	for under, want := range map[string][]string{
		"":    {"", "a", "a.b", "a/b", "a/b/c", "a0", "ab", "b/a"},
		"a":   {"a", "a/b", "a/b/c"},
		"a/b": {"a/b", "a/b/c"},
		"b":   {"b/a"},
		"c":   nil,
	} {
		if got := dirtyPaths(t, db, under); !slices.Equal(got, want) {
			t.Errorf("marks under %q: %q, want %q", under, got, want)
		}
	}
}

// TestDigestTreeSaved: saved hashes are read back by path and by parent,
// dropped, and all forgotten by a reset.
func TestDigestTreeSaved(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, testPath(t))
	h := func(b byte) [32]byte { return [32]byte{b} }
	save := func(u DigestTreeUpdate) {
		t.Helper()
		if err := db.SaveDigestTree(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	save(DigestTreeUpdate{Set: []DigestDir{{"", h(1)}, {"a", h(2)}, {"b", h(3)}, {"a/c", h(4)}, {"a/c/d", h(5)}}})
	if got, ok, err := db.DigestDirOf(ctx, ""); err != nil || !ok || got != h(1) {
		t.Fatalf("the folder's hash: %x %v %v", got, ok, err)
	}
	if got, ok, err := db.DigestDirOf(ctx, "a/c/d"); err != nil || !ok || got != h(5) {
		t.Fatalf("a/c/d's hash: %x %v %v", got, ok, err)
	}
	sub := func(dir string) map[string][32]byte {
		t.Helper()
		m, err := db.DigestSubdirs(ctx, dir)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	if got, want := sub(""), map[string][32]byte{"a": h(2), "b": h(3)}; !maps.Equal(got, want) {
		t.Fatalf("in the folder: %v, want %v", got, want)
	}
	if got, want := sub("a"), map[string][32]byte{"c": h(4)}; !maps.Equal(got, want) {
		t.Fatalf("in a: %v, want %v", got, want)
	}
	save(DigestTreeUpdate{Drop: []string{"a/c"}, Set: []DigestDir{{"a", h(6)}}})
	if got, want := sub("a"), map[string][32]byte{}; !maps.Equal(got, want) {
		t.Fatalf("in a after a/c dropped: %v", got)
	}
	if got, _, _ := db.DigestDirOf(ctx, "a"); got != h(6) {
		t.Fatalf("a after it was set again: %x", got)
	}
	save(DigestTreeUpdate{Reset: true, Set: []DigestDir{{"b", h(7)}}})
	if _, ok, _ := db.DigestDirOf(ctx, ""); ok {
		t.Fatal("the folder's hash outlived a reset")
	}
	if got, want := sub(""), map[string][32]byte{"b": h(7)}; !maps.Equal(got, want) {
		t.Fatalf("in the folder after a reset: %v, want %v", got, want)
	}
}
