package node

import (
	"context"
	"time"
)

// burstOps is how many changes, applied or recorded at once, make a burst
// after which Config.AfterBurst is called.
const burstOps = 1000

// releaseDelay is how long after the last burst, and the activity that
// follows it, AfterBurst is called: long enough that a sync still under way
// is not slowed by what it does (handing the heap back to the OS).
const releaseDelay = time.Second

// noteBurst tells releaseLoop that n changes were just handled.
func (n *Node) noteBurst(changes int) {
	if changes < burstOps {
		return
	}
	n.burst.Kick()
}

// noteActivity tells releaseLoop that the node is still busy (serving a
// peer the contents of a burst, say): a pending release waits.
func (n *Node) noteActivity() {
	n.activity.Kick()
}

// releaseLoop calls Config.AfterBurst once a burst of changes, and the
// activity that follows it, is over. The daemon hands the memory the burst
// used back to the OS there: the runtime would return it by itself, over
// minutes; on a small board that shares its memory with other services the
// daemon should be back to its idle size within a second of a large sync.
// It runs only when AfterBurst is set, timed by the node's clock.
func (n *Node) releaseLoop(ctx context.Context) {
	timer := n.clock.NewTimer(time.Hour)
	timer.Stop()
	pending := false
	for {
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-n.burst.C():
			pending = true
			timer.Reset(releaseDelay)
		case <-n.activity.C():
			if pending {
				timer.Reset(releaseDelay)
			}
		case <-timer.C():
			pending = false
			n.cfg.AfterBurst()
		}
	}
}
