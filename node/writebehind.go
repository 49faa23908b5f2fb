package node

import "fmt"

// Steps of a received large file's write-behind.
const (
	// writeBackStep is how much is written before the kernel's writeback
	// of it is started (where the system can start it without waiting).
	writeBackStep = 8 << 20
	// flushStep is how much is written before a flush to stable storage
	// is started in the background. A flush still running when the next
	// is due absorbs it, so a slow disk is flushed less often, never
	// waited for. On this machine the final flush of a 512 MiB file took
	// 36-40 ms with a 64 MiB step, 21-24 ms with 32 and 10-13 ms with 16.
	flushStep = 16 << 20
)

// writeBehind writes a received file and pushes it towards stable
// storage while it arrives, so the fsync that must precede its rename
// finds little left to do. Starting writeback alone is not enough: a
// disk (or a virtual disk's host) caches what it is sent, and the final
// flush then waits for the whole file to leave that cache. A background
// flush every flushStep bytes empties the cache as the file arrives.
//
// Its zero value is not usable; call newWriteBehind. Sync must be called
// (or stop, on a failed transfer) before f is closed, so no flush runs on
// a closed file.
type writeBehind struct {
	f         File
	off       int64 // end of what was written
	started   int64 // end of what writeback was started for
	flushedAt int64 // end of what the last background flush was asked for

	flush     func() error // flushes f's data to stable storage
	flushStep int64

	// kick wakes the background flusher; it is made on the first flush,
	// so a small file never starts one.
	kick chan struct{}
	done chan struct{}
	// err is the first background flush error, reported by Sync. The
	// flusher writes it; it is read only after done is closed.
	err error
}

func newWriteBehind(f File, offset int64) *writeBehind {
	return &writeBehind{
		f: f, off: offset, started: offset, flushedAt: offset,
		flush:     func() error { return dataSync(f) },
		flushStep: flushStep,
	}
}

// Write writes p to the file and starts writeback and flushes as the
// steps are reached; it never waits for either.
func (w *writeBehind) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.off += int64(n)
	if w.off-w.started >= writeBackStep {
		startWriteback(w.f, w.started, w.off-w.started)
		w.started = w.off
	}
	if w.off-w.flushedAt >= w.flushStep {
		w.flushedAt = w.off
		w.startFlush()
	}
	return n, err
}

// startFlush asks the background flusher for a flush; if one is already
// running the request is merged with the next.
func (w *writeBehind) startFlush() {
	if w.kick == nil {
		w.kick = make(chan struct{}, 1)
		w.done = make(chan struct{})
		go w.flusher()
	}
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

func (w *writeBehind) flusher() {
	defer close(w.done)
	for range w.kick {
		if err := w.flush(); err != nil && w.err == nil {
			// Kept for Sync: a write error is reported by only one
			// flush of a file, which may be this one.
			w.err = err
		}
	}
}

// stop waits for a background flush in progress and ends the flusher.
// It returns the first error a background flush met. It may be called
// more than once.
func (w *writeBehind) stop() error {
	if w.kick != nil {
		close(w.kick)
		<-w.done
		w.kick = nil
	}
	return w.err
}

// Sync ends the background flushes and flushes the file, data and
// metadata. It fails if any flush of the file failed.
func (w *writeBehind) Sync() error {
	bgErr := w.stop()
	if err := w.f.Sync(); err != nil {
		return err
	}
	if bgErr != nil {
		return fmt.Errorf("flush while receiving: %w", bgErr)
	}
	return nil
}
