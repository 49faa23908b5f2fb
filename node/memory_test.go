package node

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync/atomic"
	"testing"
	"time"

	"github.com/drive-node/drive-node/internal/clock"
)

// heapFree returns the heap memory that is free but still held from the
// OS.
func heapFree() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/free:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// TestReleaseAfterBurst frees a large heap, reports a burst and expects
// the memory handed back to the OS once the node has been idle for
// releaseDelay, not while it is busy; a handful of changes is not a
// burst. The loop runs on a fake clock, moved on by the test.
func TestReleaseAfterBurst(t *testing.T) {
	clk := clock.NewFake(time.Unix(1_000_000, 0))
	var released atomic.Int32
	release := func() { released.Add(1); debug.FreeOSMemory() }
	n := &Node{clock: clk, cfg: Config{AfterBurst: release}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// armed waits until the loop has armed its timer since the call that
	// returned ch.
	armed := func(ch <-chan struct{}, what string) {
		t.Helper()
		select {
		case <-ch:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: the release timer was not armed", what)
		}
	}
	_, ch := clk.Armed()
	go n.releaseLoop(ctx)
	armed(ch, "start")

	// A handful of changes is not a burst (told on a node with no loop
	// that could take the signal first).
	quiet := &Node{}
	quiet.noteBurst(burstOps - 1)
	select {
	case <-quiet.burst.C():
		t.Fatal("a small batch counted as a burst")
	default:
	}
	garbage := make([][]byte, 64)
	for i := range garbage {
		garbage[i] = make([]byte, 1<<20)
	}
	runtime.KeepAlive(garbage)
	garbage = nil
	runtime.GC()
	if free := heapFree(); free < 32<<20 {
		t.Fatalf("the runtime holds only %d MiB free after the collection: the test cannot tell a release", free>>20)
	}
	_, ch = clk.Armed()
	n.noteBurst(burstOps)
	armed(ch, "burst")
	// While the node is busy (a peer fetching the burst's contents), the
	// release waits: activity every quarter of releaseDelay, over twice
	// releaseDelay, never lets the timer fire.
	for i := range 8 {
		_, ch = clk.Armed()
		n.noteActivity()
		armed(ch, fmt.Sprintf("activity %d", i))
		clk.Advance(releaseDelay / 4)
		if pending, _ := clk.Armed(); pending != 1 || released.Load() != 0 {
			t.Fatalf("after %v of activity: timer pending %v, %d releases", time.Duration(i+1)*releaseDelay/4, pending == 1, released.Load())
		}
	}
	clk.Advance(releaseDelay)
	deadline := time.Now().Add(10 * time.Second)
	for released.Load() == 0 || heapFree() > 8<<20 {
		if time.Now().After(deadline) {
			t.Fatalf("%d releases, %d MiB of free heap still held once the node was idle for releaseDelay", released.Load(), heapFree()>>20)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := released.Load(); n != 1 {
		t.Fatalf("%d releases after one burst", n)
	}
}
