//go:build unix

package node

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/drive-node/drive-node/internal/fifotest"
	"github.com/drive-node/drive-node/internal/safeopen"
)

// TestStateDirIsMadePrivate: a state dir left readable by an older
// drive-node (or made under a loose umask) is tightened at start, and what
// the op log and the database create in it is private too: they name every
// synced path.
func TestStateDirIsMadePrivate(t *testing.T) {
	defer syscall.Umask(syscall.Umask(0o022))
	folder := t.TempDir()
	stateDir := DefaultStateDir(folder, "")
	if err := os.MkdirAll(filepath.Join(stateDir, "oplog"), 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(stateDir, "oplog", "000001.log"), "")
	os.Chmod(stateDir, 0o755)
	n, err := Open(context.Background(), Config{Folder: folder, NoDiscovery: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	var seen int
	filepath.WalkDir(stateDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		if info, _ := d.Info(); info.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s has mode %v", p, info.Mode())
		}
		seen++
		return nil
	})
	if seen < 8 {
		t.Fatalf("only %d entries in the state dir", seen)
	}
}

// TestFolderDoesNotWaitOnAFIFO: anyone who can write in the folder can put
// a FIFO where a file was. The daemon opens files there to hash them and
// to serve them to peers; such an open must fail at once, not wait for a
// writer that never comes.
func TestFolderDoesNotWaitOnAFIFO(t *testing.T) {
	dir := t.TempDir()
	waited := fifotest.Make(t, filepath.Join(dir, "was-a-file"))
	root, err := OpenRootFolder(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	f, err := root.Open("was-a-file")
	if err == nil {
		f.Close()
	}
	if waited() || !errors.Is(err, safeopen.ErrNotRegular) {
		t.Fatalf("opening a FIFO: %v (waited for a writer: %v), want ErrNotRegular at once", err, waited())
	}
}
