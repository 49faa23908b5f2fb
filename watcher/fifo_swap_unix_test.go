//go:build unix

package watcher

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/drive-node/drive-node/content"
	"github.com/drive-node/drive-node/internal/fifotest"
)

// TestHashDoesNotWaitOnAFIFOSwappedIn: a file looked at as regular and
// replaced by a FIFO before it is opened to be hashed is found replaced at
// once; the open must not wait for a writer, which would stop the watcher.
func TestHashDoesNotWaitOnAFIFOSwappedIn(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	writeAt(t, p, "data")
	st, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(p)
	waited := fifotest.Make(t, p)
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	_, _, err = hashIn(context.Background(), content.Open, root, "f", "f", st)
	if waited() || !errors.Is(err, errReplaced) {
		t.Fatalf("hashing a FIFO swapped in: %v (waited for a writer: %v), want errReplaced at once", err, waited())
	}
}
