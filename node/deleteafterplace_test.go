package node

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/drive-node/drive-node/state"
)

// TestDeleteRightAfterPlace removes received files the moment they are
// there: the directory that holds them was made by B's apply, so B's
// watcher may not watch it yet, and the files' records may not be written
// yet. The removals must still be recorded and reach A.
func TestDeleteRightAfterPlace(t *testing.T) {
	for round := range 8 {
		a, b := t.TempDir(), t.TempDir()
		pairFolders(t, a, b)
		addrA, addrB := freeUDPPort(t), freeUDPPort(t)
		for i := range 40 {
			write(t, filepath.Join(a, fmt.Sprintf("d/f%02d.txt", i)), fmt.Sprintf("file %d", i))
		}
		ra := startNode(t, a, addrA, addrB)
		rb := startNode(t, b, addrB, addrA)
		waitFor(t, "initial sync", func() string { return sameTree(a, b) })
		for i := range 30 {
			if err := os.Remove(filepath.Join(b, fmt.Sprintf("d/f%02d.txt", i))); err != nil {
				t.Fatal(err)
			}
		}
		waitFor(t, fmt.Sprintf("round %d: deletes reach A", round), func() string { return sameTree(a, b) })
		ra.stop(t)
		rb.stop(t)
	}
}

// TestIndexUnderListsPlacing checks that the watcher's Under names, with
// the records, the paths an apply in progress is about to record: the
// watcher's look at a directory the apply made reports them gone when
// they are no longer there.
func TestIndexUnderListsPlacing(t *testing.T) {
	ctx := context.Background()
	folder := t.TempDir()
	write(t, filepath.Join(folder, "d/old.txt"), "recorded")
	n := startNode(t, folder, freeUDPPort(t))
	waitFor(t, "d/old.txt recorded", func() string {
		if _, ok, _ := n.db.File(ctx, "d/old.txt"); !ok {
			return "not yet"
		}
		return ""
	})
	placing := &placingSet{}
	x := dbIndex{db: n.db, placing: placing}
	placing.expect([]state.File{
		{Path: "d/new.txt"}, {Path: "d/sub", Dir: true}, {Path: "d/gone.txt", Deleted: true},
		{Path: "dd/other.txt"}, {Path: "d/old.txt"},
	})
	placing.add([]state.File{{Path: "d/sub/placed.txt"}})
	if got, want := x.Under("d"), []string{"d/new.txt", "d/old.txt", "d/sub", "d/sub/placed.txt"}; !slices.Equal(got, want) {
		t.Errorf("Under(d) = %v, want %v", got, want)
	}
	if got, want := x.Under(""), []string{"d", "d/new.txt", "d/old.txt", "d/sub", "d/sub/placed.txt", "dd/other.txt"}; !slices.Equal(got, want) {
		t.Errorf("Under() = %v, want %v", got, want)
	}
	placing.reset()
	if got, want := x.Under("d"), []string{"d/old.txt"}; !slices.Equal(got, want) {
		t.Errorf("Under(d) after reset = %v, want %v", got, want)
	}
}
