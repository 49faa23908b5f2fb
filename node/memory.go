package node

import (
	"context"
	"runtime/debug"
	"time"

	"github.com/drive-node/drive-node/internal/clock"
)

// burstOps is how many changes, applied or recorded at once, make a burst
// after which the heap is handed back to the OS.
const burstOps = 1000

// releaseDelay is how long after the last burst the heap is handed back:
// long enough that a sync still under way is not slowed by it.
const releaseDelay = time.Second

// noteBurst tells releaseLoop that n changes were just handled.
func (n *Node) noteBurst(changes int) {
	if changes < burstOps {
		return
	}
	select {
	case n.burst <- struct{}{}:
	default:
	}
}

// noteActivity tells releaseLoop that the node is still busy (serving a
// peer the contents of a burst, say): a pending release waits.
func (n *Node) noteActivity() {
	select {
	case n.activity <- struct{}{}:
	default:
	}
}

// releaseLoop hands the memory a burst of changes used back to the OS once
// the burst, and the activity that follows it, is over. The runtime would
// return it by itself, over minutes; on a small board that shares its
// memory with other services the daemon should be back to its idle size
// within a second of a large sync.
func (n *Node) releaseLoop(ctx context.Context) {
	n.releaseLoopOn(ctx, clock.Real{}, debug.FreeOSMemory)
}

// releaseLoopOn is releaseLoop timed by clk, calling release to hand the
// memory back.
func (n *Node) releaseLoopOn(ctx context.Context, clk clock.Clock, release func()) {
	timer := clk.NewTimer(time.Hour)
	timer.Stop()
	pending := false
	for {
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-n.burst:
			pending = true
			timer.Reset(releaseDelay)
		case <-n.activity:
			if pending {
				timer.Reset(releaseDelay)
			}
		case <-timer.C():
			pending = false
			release()
		}
	}
}
