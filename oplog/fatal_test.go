package oplog

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
)

// fullDisk fails, once armed, every write and sync of the files whose name
// contains part, as a disk with no space left would.
type fullDisk struct {
	part  string
	armed atomic.Bool
	hits  atomic.Int64
}

func (d *fullDisk) MaybeError(op errorfs.Op) error {
	switch op.Kind {
	case errorfs.OpFileWrite, errorfs.OpFileWriteAt, errorfs.OpFileSync, errorfs.OpFileSyncData, errorfs.OpFileSyncTo:
	default:
		return nil
	}
	if !d.armed.Load() || !strings.Contains(filepath.Base(op.Path), d.part) {
		return nil
	}
	d.hits.Add(1)
	return fmt.Errorf("injected write to %s: %w", op.Path, syscall.ENOSPC)
}

func (d *fullDisk) String() string { return "fullDisk(" + d.part + ")" }

func openOnFullDisk(t *testing.T, dir, part string) (*Log, *fullDisk) {
	t.Helper()
	d := &fullDisk{part: part}
	l, err := OpenFS(dir, testKey(1), nil, errorfs.Wrap(vfs.Default, d))
	if err != nil {
		t.Fatal(err)
	}
	return l, d
}

// within fails the test unless fn returns within 60 s: a bound against a
// hang, generous for a machine under load.
func within[T any](t *testing.T, what string, fn func() T) T {
	t.Helper()
	done := make(chan T, 1)
	go func() { done <- fn() }()
	select {
	case v := <-done:
		return v
	case <-time.After(60 * time.Second):
		t.Fatalf("%s did not return", what)
		var zero T
		return zero
	}
}

// isFailure fails the test unless err is the log's failure caused by the
// injected full disk.
func isFailure(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, ErrFailed) || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("%s: %v, want ErrFailed caused by ENOSPC", what, err)
	}
}

// A WAL that cannot be written (pebble calls that fatal) fails the Append
// that hit it, and every Append and Insert after it, without a panic; the
// log closes, and reopens with what was stored before.
func TestFailedWALWriteIsAnError(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "log")
	l, disk := openOnFullDisk(t, dir, ".log")
	if _, err := l.Append(ctx, Op{Kind: KindWrite, Path: "before"}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-l.Failed():
		t.Fatal("Failed closed on a sound log")
	default:
	}
	if l.Err() != nil {
		t.Fatalf("Err on a sound log: %v", l.Err())
	}

	disk.armed.Store(true)
	_, err := l.Append(ctx, Op{Kind: KindWrite, Path: "lost"})
	isFailure(t, "append on a full disk", err)
	if disk.hits.Load() == 0 {
		t.Fatal("the failing disk was never written to")
	}
	if !strings.Contains(err.Error(), dir) {
		t.Fatalf("the error does not name %s: %v", dir, err)
	}
	select {
	case <-l.Failed():
	default:
		t.Fatal("Failed still open after a failed append")
	}
	isFailure(t, "Err", l.Err())
	if l.Highest(dev(1)) != 1 {
		t.Fatalf("highest %d after a failed append", l.Highest(dev(1)))
	}
	// The disk is fine again, but the log stays stopped until reopened.
	disk.armed.Store(false)
	_, err = l.Append(ctx, Op{Kind: KindWrite, Path: "later"})
	isFailure(t, "append after the failure", err)
	_, err = l.Insert(ctx, dev(2), Op{Origin: dev(2), Seq: 1, Lamport: 1, Kind: KindWrite, Path: "remote", Sig: []byte{1}})
	isFailure(t, "insert after the failure", err)
	within(t, "Close", l.Close)

	l = openLog(t, dir, 1)
	defer l.Close()
	if err := l.Check(ctx); err != nil {
		t.Fatal(err)
	}
	if ops := collect(t, l, 1, 1); len(ops) == 0 || ops[0].Path != "before" {
		t.Fatalf("after reopening: %v", ops)
	}
	if _, err := l.Append(ctx, Op{Kind: KindWrite, Path: "reopened"}); err != nil {
		t.Fatalf("append after reopening: %v", err)
	}
}

// A fatal error in one of pebble's own goroutines (a flush that cannot
// write the MANIFEST) stops the log: Failed closes, Append returns the
// error, Close returns instead of waiting on pebble, and the process runs
// on.
func TestFatalInPebblesGoroutineStopsTheLog(t *testing.T) {
	ctx := context.Background()
	// Only the MANIFEST fails: the flush writes its table, then cannot
	// record it.
	l, disk := openOnFullDisk(t, filepath.Join(t.TempDir(), "log"), "MANIFEST-")
	if _, err := l.Append(ctx, Op{Kind: KindWrite, Path: "before"}); err != nil {
		t.Fatal(err)
	}
	disk.armed.Store(true)
	if _, err := l.db.AsyncFlush(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-l.Failed():
	case <-time.After(10 * time.Second):
		t.Fatal("the flush's failure did not stop the log")
	}
	isFailure(t, "Err", l.Err())
	type result struct {
		ops []Op
		err error
	}
	r := within(t, "Append", func() result {
		ops, err := l.Append(ctx, Op{Kind: KindWrite, Path: "after"})
		return result{ops, err}
	})
	isFailure(t, "append after the failure", r.err)
	if err := within(t, "Close", l.Close); err == nil || !strings.Contains(err.Error(), "left open") {
		t.Fatalf("close of a stuck log: %v", err)
	}
}

// A panic in pebble's commit (it panics on a WAL write that fails while
// it holds its commit lock) is the log's failure, not the process's.
func TestPanicInCommitIsAnError(t *testing.T) {
	ctx := context.Background()
	l := openLog(t, filepath.Join(t.TempDir(), "log"), 1)
	l.commitBatch = func(*pebble.Batch) error { panic(fmt.Errorf("wal: %w", syscall.ENOSPC)) }
	_, err := l.Append(ctx, Op{Kind: KindWrite, Path: "x"})
	isFailure(t, "append", err)
	isFailure(t, "Err", l.Err())
	if err := within(t, "Close", l.Close); err == nil {
		t.Fatal("a log pebble panicked in closed without an error")
	}
}

// A panic that is not pebble's failing a commit is not swallowed by a
// read's guard.
func TestOtherPanicsGoOn(t *testing.T) {
	ctx := context.Background()
	l := openLog(t, filepath.Join(t.TempDir(), "log"), 1)
	defer l.Close()
	if _, err := l.Append(ctx, Op{Kind: KindWrite, Path: "x"}); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if r := recover(); r != "caller's bug" {
			t.Fatalf("recovered %v", r)
		}
		if l.Err() != nil {
			t.Fatalf("the caller's panic failed the log: %v", l.Err())
		}
	}()
	l.Iterate(ctx, dev(1), 1, func(Op) error { panic("caller's bug") })
	t.Fatal("the panic was swallowed")
}
