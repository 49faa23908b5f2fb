//go:build unix

package safeopen

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/drive-node/drive-node/internal/fifotest"
)

func TestInRefusesAFIFOWithoutWaiting(t *testing.T) {
	dir := t.TempDir()
	waited := fifotest.Make(t, filepath.Join(dir, "fifo"))
	if err := os.WriteFile(filepath.Join(dir, "file"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	for _, flag := range []int{os.O_RDONLY, os.O_RDWR, os.O_WRONLY | os.O_CREATE | os.O_TRUNC} {
		f, err := In(root, "fifo", flag, 0o600)
		if err == nil {
			f.Close()
		}
		// A write-only open finds no reader: ENXIO, not a wait.
		if !errors.Is(err, ErrNotRegular) && !errors.Is(err, syscall.ENXIO) {
			t.Errorf("flag %#x: %v, want ErrNotRegular", flag, err)
		}
		if waited() {
			t.Fatalf("flag %#x: waited for a writer", flag)
		}
	}
	for _, name := range []string{"file", "."} {
		f, err := In(root, name, os.O_RDONLY, 0)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if name == "file" {
			if b, err := io.ReadAll(f); err != nil || string(b) != "x" {
				t.Errorf("a regular file opened this way reads %q, %v", b, err)
			}
		}
		f.Close()
	}
}
