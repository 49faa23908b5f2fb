package oplog

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
)

// walGate holds the WAL's fsyncs while armed: each one signals entered,
// then waits for a verdict on release (nil, or release closed, lets the
// fsync run).
type walGate struct {
	armed   atomic.Bool
	entered chan struct{}
	release chan error
}

func (g *walGate) MaybeError(op errorfs.Op) error {
	switch op.Kind {
	case errorfs.OpFileSync, errorfs.OpFileSyncData, errorfs.OpFileSyncTo:
	default:
		return nil
	}
	if !strings.HasSuffix(op.Path, ".log") || !g.armed.Load() {
		return nil
	}
	g.entered <- struct{}{}
	return <-g.release
}

func (g *walGate) String() string { return "walGate" }

func openGated(t *testing.T) (*Log, *walGate) {
	t.Helper()
	g := &walGate{entered: make(chan struct{}), release: make(chan error)}
	l, err := OpenFS(filepath.Join(t.TempDir(), "log"), testKey(1), nil, errorfs.Wrap(vfs.Default, g))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	// Runs first: a test that stops early lets a held fsync go.
	t.Cleanup(func() { g.armed.Store(false); close(g.release) })
	return l, g
}

// inPebble waits until pebble itself shows the op at origin#seq to
// readers, which it does before the WAL fsync has finished.
func inPebble(t *testing.T, l *Log, origin byte, seq uint64) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		_, closer, err := l.db.Get(opKey(dev(origin), seq))
		if err == nil {
			closer.Close()
			return
		}
		if !errors.Is(err, pebble.ErrNotFound) {
			t.Fatal(err)
		}
	}
	t.Fatalf("pebble never showed %d#%d", origin, seq)
}

// notSeen fails the test if Iterate or Get returns origin#seq.
func notSeen(t *testing.T, l *Log, origin byte, seq uint64, when string) {
	t.Helper()
	for _, op := range collect(t, l, origin, 1) {
		if op.Seq >= seq {
			t.Fatalf("%s: Iterate returned %v", when, op)
		}
	}
	if op, ok, err := l.Get(dev(origin), seq); err != nil || ok {
		t.Fatalf("%s: Get returned %v %v %v", when, op, ok, err)
	}
}

// An op is read back only once its fsync has succeeded, although pebble
// shows it to readers from before the fsync.
func TestOpNotSeenBeforeItsSync(t *testing.T) {
	ctx := context.Background()
	l, g := openGated(t)
	if _, err := l.Append(ctx, Op{Kind: KindWrite, Path: "durable"}); err != nil {
		t.Fatal(err)
	}
	g.armed.Store(true)
	type result struct {
		ops []Op
		err error
	}
	done := make(chan result, 1)
	go func() {
		ops, err := l.Append(ctx, Op{Kind: KindWrite, Path: "syncing"})
		done <- result{ops, err}
	}()
	<-g.entered
	inPebble(t, l, 1, 2)
	notSeen(t, l, 1, 2, "while the fsync runs")
	g.armed.Store(false)
	g.release <- nil
	r := <-done
	if r.err != nil || len(r.ops) != 1 || r.ops[0].Seq != 2 {
		t.Fatalf("append: %v %v", r.ops, r.err)
	}
	if ops := collect(t, l, 1, 1); len(ops) != 2 || ops[1].Path != "syncing" {
		t.Fatalf("after the fsync: %v", ops)
	}
	if op, ok, err := l.Get(dev(1), 2); err != nil || !ok || op.Path != "syncing" {
		t.Fatalf("get after the fsync: %v %v %v", op, ok, err)
	}
}

// A commit that returns an error is never read back, even when pebble
// shows the batch (and has it on disk), and the log takes no more ops:
// its sequences are not handed out again.
func TestFailedCommitIsNeverSeenAndStopsTheLog(t *testing.T) {
	ctx := context.Background()
	l := openLog(t, filepath.Join(t.TempDir(), "log"), 1)
	defer l.Close()
	if _, err := l.Append(ctx, Op{Kind: KindWrite, Path: "durable"}); err != nil {
		t.Fatal(err)
	}
	remote := signed(t, l, Op{Origin: dev(2), Seq: 1, Lamport: 5, Kind: KindWrite, Path: "remote"})
	l.commitBatch = func(b *pebble.Batch) error {
		if err := b.Commit(pebble.Sync); err != nil {
			return err
		}
		return errors.New("disk on fire")
	}
	_, err := l.Insert(ctx, dev(2), remote...)
	if !errors.Is(err, ErrFailed) || !strings.Contains(err.Error(), "disk on fire") {
		t.Fatalf("insert with a failing commit: %v", err)
	}
	inPebble(t, l, 2, 1)
	notSeen(t, l, 2, 1, "after the failed commit")
	if l.Highest(dev(2)) != 0 || l.Lamport() != 1 {
		t.Fatalf("highest %d lamport %d after a failed commit", l.Highest(dev(2)), l.Lamport())
	}
	if _, err := l.Append(ctx, Op{Kind: KindWrite, Path: "later"}); !errors.Is(err, ErrFailed) {
		t.Fatalf("append after a failed commit: %v", err)
	}
	if _, err := l.Insert(ctx, dev(2), Op{Origin: dev(2), Seq: 1, Lamport: 5, Kind: KindWrite, Path: "again", Sig: []byte{1}}); !errors.Is(err, ErrFailed) {
		t.Fatalf("insert after a failed commit: %v", err)
	}
	if ops := collect(t, l, 1, 1); len(ops) != 1 || ops[0].Path != "durable" {
		t.Fatalf("ops before the failure: %v", ops)
	}
}

// Readers never get a sequence above Highest as it stood when they
// returned, while appends run alongside (run with -race).
func TestReadersStayWithinHighest(t *testing.T) {
	ctx := context.Background()
	l := openLog(t, t.TempDir(), 1)
	defer l.Close()
	stop := make(chan struct{})
	var readers sync.WaitGroup
	for r := 0; r < 2; r++ {
		readers.Add(1)
		go func() {
			defer readers.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				var last uint64
				if err := l.Iterate(ctx, dev(1), 1, func(op Op) error { last = op.Seq; return nil }); err != nil {
					t.Error(err)
					return
				}
				if hi := l.Highest(dev(1)); last > hi {
					t.Errorf("Iterate returned #%d, highest %d", last, hi)
					return
				}
				probe := l.Highest(dev(1)) + 1
				if _, ok, err := l.Get(dev(1), probe); err != nil || ok && l.Highest(dev(1)) < probe {
					t.Errorf("Get returned #%d above highest: %v %v", probe, ok, err)
					return
				}
			}
		}()
	}
	const writers, each = 4, 100
	appendConcurrently(t, l, writers, each)
	close(stop)
	readers.Wait()
	if n := len(collect(t, l, 1, 1)); n != writers*each {
		t.Fatalf("%d ops", n)
	}
}
