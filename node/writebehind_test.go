package node

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/drive-node/drive-node/content"
)

// newTestWriteBehind returns a writeBehind on a new file whose background
// flushes start every step bytes and go through flush.
func newTestWriteBehind(t *testing.T, step int64, flush func(f *os.File) error) (*writeBehind, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "received")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	w := newWriteBehind(f, 0)
	w.flushStep = step
	w.flush = func() error { return flush(f) }
	return w, path
}

func TestWriteBehindFlushesWhileWriting(t *testing.T) {
	var flushes atomic.Int32
	w, path := newTestWriteBehind(t, 1<<10, func(f *os.File) error {
		flushes.Add(1)
		return dataSync(f)
	})
	want := bytes.Repeat([]byte("0123456789abcdef"), 1<<10) // 16 KiB
	for off := 0; off < len(want); off += 100 {
		if _, err := w.Write(want[off:min(off+100, len(want))]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Sync(); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	if flushes.Load() == 0 {
		t.Fatal("16 KiB written with a 1 KiB flush step, but no background flush ran")
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("file holds %d bytes, want the %d written", len(got), len(want))
	}
}

func TestWriteBehindSyncReportsBackgroundFlushError(t *testing.T) {
	injected := errors.New("injected I/O error")
	w, _ := newTestWriteBehind(t, 1<<10, func(*os.File) error { return injected })
	if _, err := w.Write(make([]byte, 4<<10)); err != nil {
		t.Fatal(err)
	}
	err := w.Sync()
	if !errors.Is(err, injected) {
		// The final fsync may succeed after a background flush took the
		// error: the file must still not be taken for durable.
		t.Fatalf("Sync = %v, want the background flush's error", err)
	}
	if err := w.stop(); !errors.Is(err, injected) {
		t.Fatalf("stop after Sync = %v, want the same error again", err)
	}
}

func TestWriteBehindSmallFileStartsNoFlusher(t *testing.T) {
	w, _ := newTestWriteBehind(t, 1<<20, func(*os.File) error {
		t.Error("a file smaller than the flush step was flushed in the background")
		return nil
	})
	if _, err := w.Write(make([]byte, 64<<10)); err != nil {
		t.Fatal(err)
	}
	if w.kick != nil {
		t.Fatal("a background flusher was started for a file smaller than the flush step")
	}
	if err := w.Sync(); err != nil {
		t.Fatal(err)
	}
}

// scriptedFetch serves content, stopping with cut after the bytes if cut
// is not nil (a connection lost at the end of a transfer).
type scriptedFetch struct {
	content []byte
	cut     error
}

func (s scriptedFetch) Fetch(_ context.Context, _ content.Hash, offset int64, dst io.Writer) (int64, error) {
	if _, err := dst.Write(s.content[offset:]); err != nil {
		return int64(len(s.content)), err
	}
	return int64(len(s.content)), s.cut
}

// A received file one of whose background flushes failed is never kept:
// not for resuming after a lost connection, not as complete. A later
// attempt would read the bytes back from memory and flush a new
// descriptor, which no longer reports the error.
func TestFetchIntoDropsAFileWhoseFlushFailed(t *testing.T) {
	data := make([]byte, flushStep+1<<20)
	rand.NewChaCha8([32]byte{1}).Read(data)
	h := content.Sum(data)
	injected := errors.New("injected I/O error")
	for _, tc := range []struct {
		name string
		cut  error
	}{
		{"connection lost after the bytes", errors.New("connection lost")},
		{"transfer complete", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			root, err := os.OpenRoot(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer root.Close()
			n := &Node{log: slog.New(slog.DiscardHandler), flushData: func(File) error { return injected }}
			n.setFolder(RootFolder{Root: root})
			name := stagedName(h)
			err = n.fetchInto(context.Background(), name, h, int64(len(data)), scriptedFetch{data, tc.cut})
			if !errors.Is(err, injected) {
				t.Errorf("fetchInto = %v, want the flush's error", err)
			}
			if _, err := os.Stat(filepath.Join(dir, name)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the temp file was kept after a failed flush (stat: %v)", err)
			}
		})
	}
}
