package node

import (
	"context"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/drive-node/drive-node/content"
	"github.com/drive-node/drive-node/oplog"
)

// editAfterPlace is a folder on which a user rewrites a file the moment
// the engine has renamed a received file into place, before the batch is
// recorded.
type editAfterPlace struct {
	Folder
	target string
	edit   func()
	done   atomic.Bool
}

func (f *editAfterPlace) Rename(from, to string) error {
	err := f.Folder.Rename(from, to)
	if err == nil && to == f.target && f.done.CompareAndSwap(false, true) {
		f.edit()
	}
	return err
}

// TestEditRightAfterPlacingIsRecorded: a user edits a file a received op
// has just put in place, while the op's batch is still being recorded.
// The record must describe what the op placed, not the edited file:
// taken from the disk then, the edit would look like the op's content to
// the watcher and never be recorded, and the devices would differ for
// good.
func TestEditRightAfterPlacingIsRecorded(t *testing.T) {
	ctx := context.Background()
	folder := t.TempDir()
	peer := pairedPeer(t, folder, "peer")
	edited := []byte("the user's edit, made right after the file arrived\n")
	n := startNodeWith(t, folder, freeUDPPort(t), func(n *Node) {
		n.setFolder(&editAfterPlace{Folder: n.folderRoot(), target: "x.txt", edit: func() {
			if err := os.WriteFile(filepath.Join(folder, "x.txt"), edited, 0o644); err != nil {
				t.Error(err)
			}
		}})
	})
	data := []byte("the peer's x\n")
	src := &memSource{data: map[content.Hash][]byte{content.Sum(data): data}}
	sendAsPeer(t, peer, n, src, []oplog.Op{{Origin: peer.ID, Seq: 1, Lamport: 1, Kind: oplog.KindWrite, Path: "x.txt",
		Hash: content.Sum(data), Size: int64(len(data)), Mode: 0o644, MTime: time.Now().Add(-time.Hour).UnixNano()}})
	waitFor(t, "the edit recorded as this device's change", func() string {
		f, ok, err := n.db.File(ctx, "x.txt")
		switch {
		case err != nil:
			return err.Error()
		case !ok:
			return "no record of x.txt"
		case f.Hash != content.Sum(edited):
			return "x.txt recorded with content " + f.Hash.Short()
		}
		return ""
	})
}
