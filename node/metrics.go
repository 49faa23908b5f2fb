package node

import (
	"context"

	"github.com/drive-node/drive-node/certs"
)

// Metrics is a snapshot of a running node's counters and gauges, for a
// metrics exporter. Counters start at zero when the node opens.
type Metrics struct {
	OpsRecorded    uint64 // this device's changes recorded
	OpsApplied     uint64 // peers' changes carried out here
	BytesIn        uint64 // content bytes received from peers
	BytesOut       uint64 // content bytes served to peers
	ConflictCopies uint64 // conflict copies made
	RefusedOrigins uint64 // devices whose ops a session refused
	PeersConnected int
	// PendingOps counts the peers' ops in the log not yet applied;
	// HeldOps those of them the brake holds.
	PendingOps uint64
	HeldOps    uint64
	// Peers is each connected peer's progress (see PeerProgress).
	Peers map[certs.DeviceID]PeerProgress
}

// Metrics returns a snapshot of the node's metrics. Like Status, it reads
// the database once and only the ops new in the log.
func (n *Node) Metrics(ctx context.Context) (Metrics, error) {
	m := Metrics{
		OpsRecorded:    n.live.recorded.Load(),
		OpsApplied:     n.live.applied.Load(),
		BytesIn:        n.live.bytesIn.Load(),
		BytesOut:       n.live.bytesOut.Load(),
		ConflictCopies: n.live.conflicts.Load(),
		RefusedOrigins: n.live.refused.Load(),
	}
	var err error
	if m.Peers, err = n.Progress(ctx); err != nil {
		return m, err
	}
	m.PeersConnected = len(m.Peers)
	applied, err := n.db.Applied(ctx)
	if err != nil {
		return m, err
	}
	for o, top := range n.ops.Vector() {
		if o != n.id.ID && top > applied[o] {
			m.PendingOps += top - applied[o]
		}
	}
	r, err := n.readBrake(ctx)
	if err != nil {
		return m, err
	}
	for key, h := range r.Held {
		if id, err := certs.ParseDeviceID(key); err == nil {
			if top := n.ops.Highest(id); top >= h.From {
				m.HeldOps += top - h.From + 1
			}
		}
	}
	return m, nil
}
