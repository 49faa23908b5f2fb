package node

import (
	"context"
	"time"

	"github.com/drive-node/drive-node/certs"
	"github.com/drive-node/drive-node/quicnet"
)

// A session that cannot make progress is reset: if ops stay pending for
// stallAfter with no progress at all (no op applied, no content byte
// received) while a connected peer has them, the node closes its
// connections to the peers that have them and tries again; the peers
// redial at once. The transport's own deadlines (see quicnet) end a
// stalled stream well within this; the watchdog catches what no deadline
// names. It looks every stallCheck.
const (
	stallAfter = 90 * time.Second
	stallCheck = 10 * time.Second
)

// stallWatch tells a stall from progress, given the node's progress
// counter at each check: it holds no clock of its own.
type stallWatch struct {
	progress uint64    // the counter when it last moved
	since    time.Time // when it last moved, or the watch was last reset
}

// idleFor notes the counter at now and reports how long it has not moved.
func (w *stallWatch) idleFor(now time.Time, progress uint64) time.Duration {
	if w.since.IsZero() || progress != w.progress {
		w.progress, w.since = progress, now
		return 0
	}
	return now.Sub(w.since)
}

// reset starts the wait over from now.
func (w *stallWatch) reset(now time.Time) { w.since = now }

// busyWith notes that the node works on something long that counts as
// progress though it receives nothing; the returned func ends it.
func (n *Node) busyWith() (done func()) {
	n.busy.Add(1)
	return func() { n.busy.Add(-1) }
}

// stuckOn returns, for the origins with ops logged beyond what is applied,
// the connected peers that have at least the next op of one of them (and
// so its content, or a copy of where to get it); empty when the pending
// ops are none that a connected peer could help with. Origins in
// explained wait for something a new connection does not change (an op
// this device cannot apply, a full disk, a content no peer has) and are
// left out, and so is self: its own ops wait on nothing a peer has.
func stuckOn(self certs.DeviceID, logged, applied map[certs.DeviceID]uint64, peers map[certs.DeviceID]map[certs.DeviceID]uint64, explained map[certs.DeviceID]bool) []certs.DeviceID {
	var out []certs.DeviceID
	for peer, have := range peers {
		for o, seq := range logged {
			if o != self && seq > applied[o] && have[o] > applied[o] && !explained[o] {
				out = append(out, peer)
				break
			}
		}
	}
	return out
}

// stallLoop resets the connections of a sync that makes no progress (see
// stallAfter), logging at WARN why the ops wait.
func (n *Node) stallLoop(ctx context.Context) {
	tick := n.clock.NewTicker(n.stallCheck)
	defer tick.Stop()
	var w stallWatch
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C():
		}
		n.checkStall(ctx, &w)
	}
}

// checkStall is one look of stallLoop. The wait starts over while the
// node is paused, while nothing is pending (so ops that arrive after a
// quiet hour get the whole wait), and while the node works on something
// long that moves no byte over the network (hashing a partly received
// file to resume it, copying a content it has under another name).
func (n *Node) checkStall(ctx context.Context, w *stallWatch) {
	now := n.clock.Now()
	if n.paused.Load() || n.busy.Load() > 0 || !n.pending.any() {
		w.reset(now)
		return
	}
	if w.idleFor(now, n.progress.Load()) < n.stallAfter {
		return
	}
	applied, err := n.db.Applied(ctx)
	if err != nil {
		return
	}
	n.peersMu.Lock()
	haves := make(map[certs.DeviceID]map[certs.DeviceID]uint64, len(n.peers))
	conns := make(map[certs.DeviceID]*quicnet.Peer, len(n.peers))
	for id, ps := range n.peers {
		haves[id], conns[id] = ps.have, ps.p
	}
	n.peersMu.Unlock()
	// A pass that has not ended for the whole wait is what is stuck: what
	// an earlier pass explained does not hold for it.
	var explained map[certs.DeviceID]bool
	if now.Sub(n.pending.lastEnd()) < n.stallAfter {
		explained = n.pending.explained()
	}
	stuck := stuckOn(n.id.ID, n.ops.Vector(), applied, haves, explained)
	w.reset(now)
	if len(stuck) == 0 {
		return
	}
	n.stallResets.Add(1)
	for _, id := range stuck {
		n.log.Warn("received changes made no progress; resetting the connection", "peer", id.Short(),
			"for", n.stallAfter, "pending", n.pending.summary())
		if conns[id] != nil {
			conns[id].CloseWithError("no progress")
		}
	}
	n.kickApply()
}
