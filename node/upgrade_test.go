package node

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/drive-node/drive-node/content"
	"github.com/drive-node/drive-node/state"
)

// TestUpgradeRenamesTreeContent: a database written before content over
// content.BlockSize was named by its tree holds such a file under its
// plain SHA-256, which no peer of this version can verify. After the
// schema migration forgets the file's look, the start-up scan must record
// the file under its tree name and log that as a change, so peers fetch a
// name its holders can serve.
func TestUpgradeRenamesTreeContent(t *testing.T) {
	ctx := context.Background()
	folder := t.TempDir()
	data := make([]byte, content.BlockSize+100)
	rand.Read(data)
	if err := os.WriteFile(filepath.Join(folder, "big.bin"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	tree := content.Sum(data)
	plain := content.Hash(sha256.Sum256(data))
	if tree == plain {
		t.Fatal("content over BlockSize is named by its plain SHA-256")
	}

	n := startNode(t, folder, freeUDPPort(t))
	waitFor(t, "big.bin recorded", func() string {
		if f, ok, _ := n.db.File(ctx, "big.bin"); !ok || f.Hash != tree {
			return fmt.Sprintf("record %+v", f)
		}
		return ""
	})
	before := n.ops.Highest(n.ID())
	n.stop(t)

	recordAsBefore(t, folder, "big.bin", plain)

	n = startNode(t, folder, freeUDPPort(t))
	waitFor(t, "big.bin renamed and the rename logged", func() string {
		rec, _, _ := n.db.File(ctx, "big.bin")
		if rec.Hash != tree {
			return fmt.Sprintf("recorded as %v, want %v", rec.Hash.Short(), tree.Short())
		}
		last := n.ops.Highest(n.ID())
		if last != before+1 {
			return fmt.Sprintf("own ops %d, want %d", last, before+1)
		}
		op, ok, err := n.ops.Get(n.ID(), last)
		if err != nil || !ok || op.Path != "big.bin" || op.Hash != tree {
			return fmt.Sprintf("last own op %+v (%v, %v)", op, ok, err)
		}
		return ""
	})
}

// recordAsBefore makes folder's record of p what a build from before tree
// names left after migration 4: the content under its plain SHA-256, the
// file's look forgotten.
func recordAsBefore(t *testing.T, folder, p string, plain content.Hash) {
	t.Helper()
	ctx := context.Background()
	db, err := state.Open(ctx, filepath.Join(DefaultStateDir(folder, ""), dbName))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	f, ok, err := db.File(ctx, p)
	if err != nil || !ok {
		t.Fatalf("%s not recorded in %s (%v)", p, folder, err)
	}
	f.Hash, f.MTime, f.Inode = plain, -1, 0
	if err := db.Apply(ctx, state.Batch{Files: []state.File{f}}); err != nil {
		t.Fatal(err)
	}
}

// TestUpgradeOfTwoPeersMakesNoConflict: two peers that upgrade both log
// the new name of the same file, concurrently. The two ops carry the same
// content, so neither is a conflict, and nothing is fetched.
func TestUpgradeOfTwoPeersMakesNoConflict(t *testing.T) {
	ctx := context.Background()
	a, b := t.TempDir(), t.TempDir()
	pairFolders(t, a, b)
	data := make([]byte, content.BlockSize+100)
	rand.Read(data)
	if err := os.WriteFile(filepath.Join(a, "big.bin"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	tree, plain := content.Sum(data), content.Hash(sha256.Sum256(data))
	addrA, addrB := freeUDPPort(t), freeUDPPort(t)
	na, nb := startNode(t, a, addrA, addrB), startNode(t, b, addrB, addrA)
	waitFor(t, "big.bin synced", func() string { return sameTree(a, b) })
	na.stop(t)
	nb.stop(t)
	recordAsBefore(t, a, "big.bin", plain)
	recordAsBefore(t, b, "big.bin", plain)

	na, nb = startNode(t, a, addrA, addrB), startNode(t, b, addrB, addrA)
	waitFor(t, "both renamed big.bin and have each other's ops", func() string {
		for _, n := range []*runningNode{na, nb} {
			if rec, _, _ := n.db.File(ctx, "big.bin"); rec.Hash != tree {
				return fmt.Sprintf("%s records %v", n.folder, rec.Hash.Short())
			}
		}
		if va, vb := na.ops.Vector(), nb.ops.Vector(); va[na.ID()] != 2 || va[nb.ID()] != 1 || vb[na.ID()] != 2 || vb[nb.ID()] != 1 {
			return fmt.Sprintf("logs: a %v, b %v", va, vb)
		}
		return sameTree(a, b)
	})
	for _, n := range []*runningNode{na, nb} {
		if cs, err := n.db.Conflicts(ctx); err != nil || len(cs) != 0 {
			t.Fatalf("%s: conflicts %+v (%v)", n.folder, cs, err)
		}
	}
}
