package node

import (
	"context"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync/atomic"
	"testing"
	"time"
)

// heapFree returns the heap memory that is free but still held from the
// OS.
func heapFree() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/free:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// TestReleaseAfterBurst frees a large heap, reports a burst and expects
// the memory handed back to the OS, through the AfterBurst hook set as the
// daemon sets it, once the node has been idle for a moment, not while it
// is busy; a handful of changes is not a burst.
func TestReleaseAfterBurst(t *testing.T) {
	var calls atomic.Int32
	n := &Node{burst: make(chan struct{}, 1), activity: make(chan struct{}, 1),
		cfg: Config{AfterBurst: func() { calls.Add(1); debug.FreeOSMemory() }}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go n.releaseLoop(ctx)

	n.noteBurst(burstOps - 1)
	if len(n.burst) != 0 {
		t.Fatal("a small batch counted as a burst")
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
	n.noteBurst(burstOps)
	// While the node is busy (a peer fetching the burst's contents), the
	// release waits.
	for busy := time.Now(); time.Since(busy) < 2*releaseDelay; time.Sleep(releaseDelay / 10) {
		n.noteActivity()
	}
	if free := heapFree(); free < 32<<20 || calls.Load() != 0 {
		t.Fatalf("the heap was released while the node was busy (%d MiB free left, AfterBurst called %d times)", free>>20, calls.Load())
	}
	deadline := time.Now().Add(5 * time.Second)
	for heapFree() > 8<<20 {
		if time.Now().After(deadline) {
			t.Fatalf("%d MiB of free heap still held 5 s after the burst (AfterBurst called %d times)", heapFree()>>20, calls.Load())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if c := calls.Load(); c != 1 {
		t.Fatalf("AfterBurst called %d times for one burst", c)
	}
}
