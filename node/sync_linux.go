//go:build linux

package node

import (
	"os"

	"golang.org/x/sys/unix"
)

// batchSync is true where the whole file system can be flushed at once:
// received files are then written without a per-file fsync and flushed
// together by syncFS before any of them is renamed into place.
const batchSync = true

// syncFS flushes every file written in the folder's file system.
func syncFS(root *os.Root) error {
	d, err := root.Open(".")
	if err != nil {
		return err
	}
	defer d.Close()
	return unix.Syncfs(int(d.Fd()))
}

// writeBehindStep is how much of a received file is written before its
// writeback is started.
const writeBehindStep = 8 << 20

// writeBehind writes to f and starts the kernel's writeback of every
// writeBehindStep bytes as they arrive, without waiting for it: the flush
// before the rename then finds a large file mostly on disk already,
// instead of writing it all at the end of the transfer.
type writeBehind struct {
	f       *os.File
	off     int64 // end of what was written
	started int64 // end of what writeback was started for
}

func newWriteBehind(f *os.File, offset int64) *writeBehind {
	return &writeBehind{f: f, off: offset, started: offset}
}

func (w *writeBehind) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.off += int64(n)
	if w.off-w.started >= writeBehindStep {
		// Advisory: a failure here is found by the flush that follows.
		unix.SyncFileRange(int(w.f.Fd()), w.started, w.off-w.started, unix.SYNC_FILE_RANGE_WRITE)
		w.started = w.off
	}
	return n, err
}
