package node

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/drive-node/drive-node/content"
	"github.com/drive-node/drive-node/internal/clock"
	"github.com/drive-node/drive-node/oplog"
)

// TestApplyLoopRetriesOnlyWhileWorkWaits runs the apply loop of an opened
// node on a fake clock. With nothing received, a pass must leave no retry
// timer armed: an idle node is not woken to find nothing to apply. With an
// op of a peer pending (its content is nowhere), the retry timer must be
// armed after each pass, and firing it must run a pass without a kick.
func TestApplyLoopRetriesOnlyWhileWorkWaits(t *testing.T) {
	folder := t.TempDir()
	peer := pairedPeer(t, folder, "peer")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	clk := clock.NewFake(time.Unix(1_000_000, 0))
	n, err := Open(ctx, Config{Folder: folder, Listen: "127.0.0.1:0", NoDiscovery: true, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	base, _ := clk.Armed()
	loopDone := make(chan struct{})
	go func() { defer close(loopDone); n.applyLoop(ctx) }()
	defer func() { cancel(); <-loopDone }()

	// pass kicks a pass and waits until it has ended. A loop iteration
	// decides on its retry timer after its pass and before the next pass
	// starts, so after two passes the first one's decision is made, and
	// the second, on the same state, decides alike.
	pass := func(what string) {
		t.Helper()
		for range 2 {
			n.kickApply()
			waitFor(t, what, func() string {
				if n.applying.busy() {
					return "the pass has not ended"
				}
				return ""
			})
		}
	}
	pass("an idle pass")
	if got, _ := clk.Armed(); got != base {
		t.Fatalf("%d timers armed after an idle pass, want %d (no retry)", got, base)
	}

	op := oplog.Op{Origin: peer.ID, Seq: 1, Lamport: 1, Kind: oplog.KindWrite, Path: "f.txt",
		Hash: content.Sum([]byte("x")), Size: 1, Mode: 0o644, MTime: clk.Now().UnixNano()}
	insertFrom(t, n.ops, peer, op)
	pass("a pass with an op whose content is nowhere")
	if got, _ := clk.Armed(); got != base+1 {
		t.Fatalf("%d timers armed with an op pending, want %d (the retry)", got, base+1)
	}
	clk.Advance(applyRetry)
	retried := clk.Now()
	waitFor(t, "the retry runs a pass", func() string {
		if end := n.pending.lastEnd(); !end.Equal(retried) {
			return fmt.Sprintf("last pass ended at %v, want %v", end, retried)
		}
		return ""
	})
}
