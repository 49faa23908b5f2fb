package node

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	"github.com/drive-node/drive-node/oplog"
)

// walFull fails, once armed, every write and sync of the op log's WAL, as
// a state disk with no space left would.
type walFull struct{ armed atomic.Bool }

func (d *walFull) MaybeError(op errorfs.Op) error {
	switch op.Kind {
	case errorfs.OpFileWrite, errorfs.OpFileWriteAt, errorfs.OpFileSync, errorfs.OpFileSyncData, errorfs.OpFileSyncTo:
	default:
		return nil
	}
	if !d.armed.Load() || !strings.HasSuffix(op.Path, ".log") {
		return nil
	}
	return fmt.Errorf("injected write to %s: %w", op.Path, syscall.ENOSPC)
}

func (d *walFull) String() string { return "walFull" }

// When the op log's disk fails, Run returns an error saying so instead of
// the process panicking, Close releases the state dir, and a node opened
// again records the change that could not be.
func TestRunReturnsTheOpLogsFailure(t *testing.T) {
	folder := t.TempDir()
	disk := &walFull{}
	r := startNodeWith(t, folder, freeUDPPort(t), func(n *Node) {
		if err := n.ops.Close(); err != nil {
			t.Fatal(err)
		}
		l, err := oplog.OpenFS(filepath.Join(n.cfg.StateDir, oplogName), n.id.Signer(), n.log, errorfs.Wrap(vfs.Default, disk))
		if err != nil {
			t.Fatal(err)
		}
		n.ops = l
	})
	disk.armed.Store(true)
	write(t, filepath.Join(folder, "made-on-a-full-disk.txt"), "x")
	var err error
	select {
	case err = <-r.done:
	case <-time.After(20 * time.Second):
		t.Fatalf("Run still running 20 s after the op log's disk failed\n%s", r.logs)
	}
	r.cancel()
	r.cancel = nil // Run has returned: stop must not wait for it
	if !errors.Is(err, oplog.ErrFailed) || !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), folder) {
		t.Fatalf("Run returned %v, want the op log's failure (ENOSPC) naming %s\n%s", err, folder, r.logs)
	}
	t.Logf("Run returned: %v", err)
	if logs := r.logs.String(); !strings.Contains(logs, "the op log failed") {
		t.Fatalf("the failure was not logged:\n%s", logs)
	}
	closed := make(chan error, 1)
	go func() { closed <- r.Node.Close() }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return after the op log failed")
	}

	disk.armed.Store(false)
	again := startNode(t, folder, freeUDPPort(t))
	waitFor(t, "the change recorded after a restart", func() string {
		if _, ok, err := again.db.File(t.Context(), "made-on-a-full-disk.txt"); err != nil || !ok {
			return fmt.Sprintf("not recorded: %v", err)
		}
		return ""
	})
}
