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

	// What an older build left, after migration 4.
	db, err := state.Open(ctx, filepath.Join(DefaultStateDir(folder, ""), dbName))
	if err != nil {
		t.Fatal(err)
	}
	f, _, err := db.File(ctx, "big.bin")
	if err != nil {
		t.Fatal(err)
	}
	f.Hash, f.MTime, f.Inode = plain, -1, 0
	if err := db.Apply(ctx, state.Batch{Files: []state.File{f}}); err != nil {
		t.Fatal(err)
	}
	db.Close()

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
