//go:build unix

package node

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
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
