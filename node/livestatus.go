package node

import (
	"context"

	"github.com/drive-node/drive-node/certs"
)

// LiveStatus is what status shows that only the running daemon knows.
// Counters start at zero when the daemon starts.
type LiveStatus struct {
	// Scanning is true until the start-up scan is recorded; ScannedFiles
	// counts the files the scan under way (or the last) has looked at.
	Scanning     bool  `json:"scanning"`
	ScannedFiles int64 `json:"scanned_files"`
	// PausedOnRequest is true between Pause and Resume.
	PausedOnRequest bool `json:"paused_on_request"`
	// LastEvent is the ID of the latest event (see Events): a client
	// that subscribes from it gets only what happens next.
	LastEvent uint64 `json:"last_event"`
	// OpsRecorded and OpsApplied count this device's changes recorded
	// and peers' changes carried out; BytesIn and BytesOut the content
	// received and served; ConflictCopies the conflict copies made.
	OpsRecorded    uint64 `json:"ops_recorded"`
	OpsApplied     uint64 `json:"ops_applied"`
	BytesIn        uint64 `json:"bytes_in"`
	BytesOut       uint64 `json:"bytes_out"`
	ConflictCopies uint64 `json:"conflict_copies"`
}

// Status returns the status as ReadStatus reads it from the state
// directory, with what only the running node knows: the progress of each
// connected peer (PeerStatus.PeerProgress), a pause asked for, the scan's
// progress and the counters (Status.Live). It reads the database once and
// the op log only for ops new since the last call, so it may be called
// every second on a large folder.
func (n *Node) Status(ctx context.Context) (Status, error) {
	st, err := ReadStatus(ctx, n.cfg.StateDir)
	if err != nil {
		return st, err
	}
	live := &LiveStatus{
		ScannedFiles:    n.live.scanned.Load(),
		PausedOnRequest: n.request.on(),
		LastEvent:       n.events.Last(),
		OpsRecorded:     n.live.recorded.Load(),
		OpsApplied:      n.live.applied.Load(),
		BytesIn:         n.live.bytesIn.Load(),
		BytesOut:        n.live.bytesOut.Load(),
		ConflictCopies:  n.live.conflicts.Load(),
	}
	select {
	case <-n.ready:
	default:
		live.Scanning = true
	}
	st.Live = live
	if live.PausedOnRequest && st.Paused == "" {
		st.Paused = reasonRequested
	}
	progress, err := n.Progress(ctx)
	if err != nil {
		return st, err
	}
	for i, p := range st.Peers {
		id, err := certs.ParseDeviceID(p.ID)
		if err != nil {
			continue
		}
		if pp, ok := progress[id]; ok {
			st.Peers[i].PeerProgress = &pp
			st.Peers[i].Connected = true
		}
	}
	return st, nil
}

// Conflicts lists the conflict copies the node made, oldest first.
func (n *Node) Conflicts(ctx context.Context) ([]Conflict, error) {
	cs, err := n.db.Conflicts(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Conflict, 0, len(cs))
	for _, c := range cs {
		out = append(out, conflictOf(c))
	}
	return out, nil
}
