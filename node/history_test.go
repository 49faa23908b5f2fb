package node

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/drive-node/drive-node/content"
)

// B deletes three files and overwrites a fourth: A keeps the four earlier
// contents in its version store, history on B names them and where they
// are, and a restore on B brings them back on both devices, fetching from
// A's store what B no longer holds.
func TestPeerChangesAreKeptAndRestored(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	pairFolders(t, a, b)
	addrA, addrB := freeUDPPort(t), freeUDPPort(t)
	na := startNode(t, a, addrA, addrB)
	nb := startNode(t, b, addrB, addrA)
	names := []string{"one.txt", "docs/two.txt", "docs/three.txt", "four.txt"}
	for _, name := range names {
		write(t, filepath.Join(a, name), "first "+name)
	}
	waitFor(t, "initial sync", func() string { return sameTree(a, b) })
	// B records the batch a moment after placing its files; a restore
	// goes back to what B had recorded.
	waitFor(t, "B records A's changes", func() string {
		if applied, err := nb.db.Applied(context.Background()); err != nil || applied[na.ID()] != na.ops.Highest(na.ID()) {
			return fmt.Sprintf("B applied %v of A's %d ops (%v)", applied[na.ID()], na.ops.Highest(na.ID()), err)
		}
		return ""
	})
	before := time.Now()

	for _, name := range names[:3] {
		os.Remove(filepath.Join(b, name))
	}
	// Saved whole: the history below counts B's edits of it.
	replace(t, filepath.Join(b, "four.txt"), "second, longer")
	waitFor(t, "deletes and the edit", func() string { return sameTree(a, b) })

	ctx := context.Background()
	for _, name := range names {
		h := content.Sum([]byte("first " + name))
		got, err := os.ReadFile(filepath.Join(a, filepath.FromSlash(versionPath(h))))
		if err != nil || string(got) != "first "+name {
			t.Fatalf("A's version store lacks %s: %q %v", name, got, err)
		}
		// The batch that placed the change records the version just after.
		waitFor(t, "A records the version of "+name, func() string {
			vs, err := na.db.Versions(ctx, name, false)
			if err != nil || len(vs) != 1 || vs[0].Hash != h || vs[0].By.Origin != nb.ID() {
				return fmt.Sprintf("A's versions of %s: %+v %v", name, vs, err)
			}
			return ""
		})
	}
	if vs, _ := nb.db.AllVersions(ctx); len(vs) != 0 {
		t.Fatalf("B kept its own changes' contents: %+v", vs)
	}

	hist, err := nb.History(ctx, "four.txt")
	if err != nil {
		t.Fatal(err)
	}
	if len(hist) != 2 || hist[0].Device != na.ID().String() || hist[1].Device != nb.ID().String() {
		t.Fatalf("history of four.txt on B: %+v", hist)
	}
	if !slices.Contains(hist[0].Where, "peer a") || !slices.Contains(hist[1].Where, "here") {
		t.Fatalf("history of four.txt on B says the contents are at %v and %v", hist[0].Where, hist[1].Where)
	}

	res, err := nb.Restore(ctx, RestoreRequest{Paths: []string{"one.txt", "docs", "four.txt"}, At: before})
	if err != nil {
		t.Fatal(err)
	}
	restored := 0
	for _, r := range res {
		if r.Outcome == Restored {
			restored++
		}
	}
	if restored != 4 {
		t.Fatalf("restore: %+v", res)
	}
	for _, dir := range []string{a, b} {
		for _, name := range names {
			waitFor(t, "restored "+name, func() string {
				got, _ := os.ReadFile(filepath.Join(dir, name))
				if string(got) != "first "+name {
					return dir + "/" + name + " holds " + string(got)
				}
				return ""
			})
		}
	}
	// The restore is a change like any other: A kept what it replaced.
	if _, err := os.Stat(filepath.Join(a, filepath.FromSlash(versionPath(content.Sum([]byte("second, longer")))))); err != nil {
		t.Fatalf("A did not keep the content the restore replaced: %v", err)
	}
	again, err := nb.Restore(ctx, RestoreRequest{Paths: []string{"four.txt"}, At: before})
	if err != nil || len(again) != 1 || again[0].Outcome != Unchanged {
		t.Fatalf("a second restore: %+v %v", again, err)
	}
}

// With versions off, a peer's delete keeps nothing.
func TestVersionsOffKeepsNothing(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	pairFolders(t, a, b)
	addrA, addrB := freeUDPPort(t), freeUDPPort(t)
	na := startNodeWith(t, a, addrA, func(n *Node) { n.cfg.schedule = nil }, addrB)
	startNode(t, b, addrB, addrA)
	write(t, filepath.Join(a, "gone.txt"), "soon deleted")
	waitFor(t, "sync", func() string { return sameTree(a, b) })
	os.Remove(filepath.Join(b, "gone.txt"))
	waitFor(t, "delete", func() string { return sameTree(a, b) })
	if vs, _ := na.db.AllVersions(context.Background()); len(vs) != 0 {
		t.Fatalf("versions kept with versions off: %+v", vs)
	}
	if _, err := os.Stat(filepath.Join(a, VersionsDirName)); !os.IsNotExist(err) {
		t.Fatalf("the version store exists with versions off: %v", err)
	}
}
