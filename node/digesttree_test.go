package node

import (
	"context"
	"fmt"
	"math/rand"
	"path/filepath"
	"slices"
	"testing"

	"github.com/drive-node/drive-node/certs"
	"github.com/drive-node/drive-node/content"
	"github.com/drive-node/drive-node/node/internal/digest"
	"github.com/drive-node/drive-node/state"
)

// digestTreeNode is a node with only a state database, for the digest.
func digestTreeNode(t *testing.T) (*Node, *state.DB) {
	t.Helper()
	db, err := state.Open(context.Background(), filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	n := newNode(Config{})
	n.db = db
	return n, db
}

// TestDigestTreeFollowsChanges: after every batch of random changes
// (files made, edited, chmodded, removed, directories made and removed,
// a file become a directory, directories emptied until only what they
// imply is left, tombstones purged) the digest summed from the saved tree
// is the root digest.Root gives from every record, and a walk's answer
// for each directory is digest.Children's, before and after the sum.
func TestDigestTreeFollowsChanges(t *testing.T) {
	ctx := context.Background()
	n, db := digestTreeNode(t)
	rng := rand.New(rand.NewSource(5))
	origin := certs.DeviceID{1}
	seq := uint64(0)
	live := map[string]state.File{}
	dirs := []string{"", "a", "a/b", "a/b/c", "a/b/d", "a/d", "e", "e/f g", "e/f g/h", "e.x"}
	for round := range 60 {
		var batch state.Batch
		put := func(f state.File) {
			seq++
			f.Origin, f.Seq = origin, seq
			batch.Files = append(batch.Files, f)
			if f.Deleted {
				delete(live, f.Path)
			} else {
				live[f.Path] = f
			}
		}
		for range 1 + rng.Intn(12) {
			dir := dirs[rng.Intn(len(dirs))]
			name := fmt.Sprintf("n%d", rng.Intn(6))
			p := name
			if dir != "" {
				p = dir + "/" + name
			}
			if _, ok := live[dir]; !ok && dir != "" && rng.Intn(3) == 0 {
				put(state.File{Path: dir, Dir: true, Mode: 0o755})
			}
			cur, ok := live[p]
			switch r := rng.Intn(10); {
			case !ok || r < 3:
				body := fmt.Sprintf("%s %d", p, rng.Intn(4))
				put(state.File{Path: p, Hash: content.Sum([]byte(body)), Size: int64(len(body)), Mode: 0o644})
			case r < 5 && !cur.Dir:
				cur.Mode ^= 0o111
				put(cur)
			case r < 6:
				put(state.File{Path: p, Dir: true, Mode: 0o755})
			default:
				put(state.File{Path: p, Deleted: true, DeletedAt: int64(round)})
			}
		}
		if round%10 == 9 {
			// Empty a directory: what it held goes, the records under
			// its subdirectories too.
			dir := dirs[1+rng.Intn(len(dirs)-1)]
			for _, p := range slices.Sorted(func(yield func(string) bool) {
				for p := range live {
					if under(p, dir) && p != dir && !yield(p) {
						return
					}
				}
			}) {
				put(state.File{Path: p, Deleted: true, DeletedAt: int64(round)})
			}
		}
		if err := db.Apply(ctx, batch); err != nil {
			t.Fatal(err)
		}
		if round%7 == 6 {
			if _, err := db.PurgeTombstones(ctx, int64(round)); err != nil {
				t.Fatal(err)
			}
		}
		entries, err := n.digestEntries(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		walks := func(when string) {
			t.Helper()
			for _, dir := range dirs {
				got, err := n.treeDir(ctx, dir)
				if err != nil {
					t.Fatal(err)
				}
				want, _ := digest.Children(entries, dir)
				if len(got) != 0 || len(want) != 0 {
					if !slices.Equal(got, want) {
						t.Fatalf("round %d, %s: children of %q:\n%v\nwant\n%v", round, when, dir, got, want)
					}
				}
			}
		}
		walks("before the sum")
		d, err := n.computeDigest(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if want := digest.Root(entries); d.Root != want || d.Files != uint64(len(entries)) {
			t.Fatalf("round %d: summed %s over %d records, want %s over %d", round, d.Root.Short(), d.Files, want.Short(), len(entries))
		}
		if dirty, err := db.DirtyDirs(ctx, ""); err != nil || len(dirty) != 0 {
			t.Fatalf("round %d: marks left after the sum: %v %v", round, dirty, err)
		}
		walks("after the sum")
	}
}

// TestDigestSumsOnlyWhatChanged: a change sums its directory and those
// above it again, and takes every other directory's saved hash without
// reading its records; a database without a saved tree is summed whole.
func TestDigestSumsOnlyWhatChanged(t *testing.T) {
	ctx := context.Background()
	n, db := digestTreeNode(t)
	origin := certs.DeviceID{1}
	var batch state.Batch
	for i, p := range []string{"docs/a.txt", "docs/deep/b.txt", "music/c.mp3", "photos/d.jpg"} {
		batch.Files = append(batch.Files, state.File{Path: p, Hash: content.Sum([]byte(p)), Mode: 0o644, Origin: origin, Seq: uint64(i + 1)})
	}
	if err := db.Apply(ctx, batch); err != nil {
		t.Fatal(err)
	}
	if _, err := n.computeDigest(ctx); err != nil {
		t.Fatal(err)
	}
	// A saved hash no record gives: used only if music is not read again.
	bogus := state.DigestDir{Path: "music", Hash: [32]byte{0xbb}}
	if err := db.SaveDigestTree(ctx, state.DigestTreeUpdate{Set: []state.DigestDir{bogus}}); err != nil {
		t.Fatal(err)
	}
	edit := state.File{Path: "docs/deep/b.txt", Hash: content.Sum([]byte("edited")), Mode: 0o644, Origin: origin, Seq: 5}
	if err := db.Apply(ctx, state.Batch{Files: []state.File{edit}}); err != nil {
		t.Fatal(err)
	}
	d, err := n.computeDigest(ctx)
	if err != nil {
		t.Fatal(err)
	}
	entries, err := n.digestEntries(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	var withBogus []digest.Child
	for _, c := range must(digest.Children(entries, "")) {
		if c.Name == "music" {
			c.Hash = bogus.Hash
		}
		withBogus = append(withBogus, c)
	}
	if want := digest.DirHash(withBogus); d.Root != want {
		t.Fatalf("after an edit in docs/deep the root is %s, want %s: music was summed again", d.Root.Short(), want.Short())
	}
	for _, p := range []string{"docs", "docs/deep"} {
		saved, _, err := db.DigestDirOf(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		if _, want := digest.Children(entries, p); saved != want {
			t.Fatalf("%s saved as %x, want %x", p, saved[:6], want[:6])
		}
	}

	// Without the folder's row the tree is not trusted: summed whole.
	if err := db.SaveDigestTree(ctx, state.DigestTreeUpdate{Drop: []string{""}}); err != nil {
		t.Fatal(err)
	}
	d, err = n.computeDigest(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := digest.Root(entries); d.Root != want {
		t.Fatalf("summed whole: %s, want %s", d.Root.Short(), want.Short())
	}
}

// must returns the children digest.Children lists.
func must(children []digest.Child, _ digest.Hash) []digest.Child { return children }
