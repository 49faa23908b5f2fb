package node

import (
	"context"
	"sync"
	"time"

	"github.com/drive-node/drive-node/certs"
	"github.com/drive-node/drive-node/content"
	"github.com/drive-node/drive-node/oplog"
)

// EventType names what an Event reports.
type EventType string

// The events a node publishes. Fields name the EventFields each sets.
const (
	// EventLocalChange: a change made in the folder here was recorded
	// (Path, Kind, Device: this device; OldPath for a rename).
	EventLocalChange EventType = "local_change"
	// EventApplied: a peer's change was carried out here (Path, Kind,
	// Device: the device that made it; OldPath for a rename).
	EventApplied EventType = "applied"
	// EventConflict: concurrent edits left a conflict copy (Path: the
	// original, Copy, Device: the losing version's device).
	EventConflict EventType = "conflict"
	// EventPeerConnected and EventPeerDisconnected: a session with a peer
	// began or ended (Peer, Address).
	EventPeerConnected    EventType = "peer_connected"
	EventPeerDisconnected EventType = "peer_disconnected"
	// EventPaused and EventResumed: the node stopped or went on recording
	// and applying (Reason: why; "requested" for Node.Pause).
	EventPaused  EventType = "paused"
	EventResumed EventType = "resumed"
	// EventDiskFull: received changes wait for space on the folder's disk
	// (Reason); EventDiskFull with an empty Reason: the space is back.
	EventDiskFull EventType = "disk_full"
	// EventTransferStarted and EventTransferFinished: a content is fetched
	// from a peer (Hash, Size, Peer; Error when the transfer failed).
	EventTransferStarted  EventType = "transfer_started"
	EventTransferFinished EventType = "transfer_finished"
	// EventHeld: the brake holds a run of a device's changes (Device,
	// Files: how many it would delete or overwrite).
	EventHeld EventType = "held"
	// EventRefused: a peer sent ops of a device that this node refuses
	// (Peer, Device: their origin, Reason).
	EventRefused EventType = "refused"
	// EventGap: the subscriber missed the events From through To (Reason:
	// they fell off the ring, or the ID asked for is an earlier run's).
	EventGap EventType = "gap"
)

// EventFields are an event's details; each type sets the ones its
// documentation names, and the rest stay empty.
type EventFields struct {
	Path    string `json:"path,omitempty"`
	OldPath string `json:"old_path,omitempty"` // a rename's source
	Kind    string `json:"kind,omitempty"`     // what an op did: write, delete, mkdir, rename…
	Copy    string `json:"copy,omitempty"`
	Device  string `json:"device,omitempty"` // the device that made a change
	Peer    string `json:"peer,omitempty"`   // the peer a session or transfer is with
	Address string `json:"address,omitempty"`
	Reason  string `json:"reason,omitempty"`
	Hash    string `json:"hash,omitempty"`
	Size    int64  `json:"size,omitempty"`
	Files   int    `json:"files,omitempty"`
	Error   string `json:"error,omitempty"`
	From    uint64 `json:"from,omitempty"` // a gap's first missed id
	To      uint64 `json:"to,omitempty"`   // its last
}

// Event is one thing that happened in a node. IDs increase by one from
// event to event and go on increasing from one run to the next (they
// start from the time the node opened), so an ID from an earlier run is
// recognised as such.
type Event struct {
	ID   uint64    `json:"id"`
	Time time.Time `json:"time"`
	Type EventType `json:"type"`
	EventFields
}

// EventRingSize is how many events a node keeps for subscribers that
// resume from an ID.
const EventRingSize = 4096

// Events is a node's bounded ring of recent events. Publishing takes a
// lock, copies the event in and wakes the waiting subscribers: it never
// waits for a subscriber. A subscriber reads at its own pace; one that
// falls more than the ring behind is told of the events it missed with
// an EventGap, never silently.
type Events struct {
	mu      sync.Mutex
	buf     []Event // event id at buf[(id-first) % size], grown up to size
	size    uint64
	first   uint64 // the ID of the first event of this run
	next    uint64 // the ID the next event gets
	changed chan struct{}
	now     func() time.Time
}

// NewEvents returns a ring of size events whose first ID is first (at
// least 1), timed by now. A node makes its own (see Node.Events); a
// program makes one to serve events of its own, or to test a client.
func NewEvents(size int, first uint64, now func() time.Time) *Events {
	return &Events{size: uint64(max(size, 1)), first: max(first, 1), next: max(first, 1), changed: make(chan struct{}), now: now}
}

// Publish records an event with the next ID. It never blocks on a
// subscriber.
func (e *Events) Publish(t EventType, f EventFields) { e.publish(t, f) }

func (e *Events) publish(t EventType, f EventFields) {
	if e == nil {
		return // a node put together by a test without a ring
	}
	at := e.now().UTC()
	e.mu.Lock()
	ev := Event{ID: e.next, Time: at, Type: t, EventFields: f}
	if uint64(len(e.buf)) < e.size {
		e.buf = append(e.buf, ev) // a quiet node holds only what it published
	} else {
		e.buf[(e.next-e.first)%e.size] = ev
	}
	e.next++
	close(e.changed)
	e.changed = make(chan struct{})
	e.mu.Unlock()
}

// Last returns the ID of the latest event, or the one before this run's
// first when none was published yet: subscribing from it yields only what
// comes next.
func (e *Events) Last() uint64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.next - 1
}

// oldest is the ID of the oldest event the ring holds. e.mu is held.
func (e *Events) oldest() uint64 {
	if e.next-e.first > e.size {
		return e.next - e.size
	}
	return e.first
}

// Subscribe returns a subscription to the events after since: those the
// ring still holds, then each new one. since 0 means every event the ring
// holds; Last() means only new ones. An ID the ring no longer holds, or
// one of another run, is answered with an EventGap first.
func (e *Events) Subscribe(since uint64) *Subscription {
	if since == 0 {
		e.mu.Lock()
		since = e.oldest() - 1
		e.mu.Unlock()
	}
	return &Subscription{e: e, next: since + 1}
}

// Subscription reads a node's events in order. It holds no buffer: it is
// a position in the ring, so a subscriber that does not read holds back
// nobody. It is not safe for concurrent use.
type Subscription struct {
	e    *Events
	next uint64 // the ID of the next event to return
}

// Ready reports whether Next would return at once.
func (s *Subscription) Ready() bool {
	e := s.e
	e.mu.Lock()
	defer e.mu.Unlock()
	return s.next != e.next
}

// Next returns the next event, waiting for it until ctx ends. When events
// were missed (see Subscribe) it returns an EventGap naming them, then
// goes on from the oldest event the ring holds.
func (s *Subscription) Next(ctx context.Context) (Event, error) {
	e := s.e
	for {
		e.mu.Lock()
		// An ID past the newest is another run's (with a clock set back):
		// the subscriber missed what this run published before it.
		if old := e.oldest(); s.next < old || s.next > e.next {
			gap := EventFields{From: s.next, To: old - 1, Reason: "fell off the ring"}
			if s.next > e.next || s.next < e.first {
				gap.Reason = "from an earlier run"
			}
			if s.next > e.next {
				gap.From = e.first
			}
			s.next = old
			at := e.now().UTC()
			e.mu.Unlock()
			if gap.From > gap.To {
				gap.From, gap.To = 0, 0 // what was missed is unknown
			}
			return Event{ID: old - 1, Time: at, Type: EventGap, EventFields: gap}, nil
		}
		if s.next < e.next {
			ev := e.buf[(s.next-e.first)%e.size]
			s.next++
			e.mu.Unlock()
			return ev, nil
		}
		changed := e.changed
		e.mu.Unlock()
		select {
		case <-ctx.Done():
			return Event{}, ctx.Err()
		case <-changed:
		}
	}
}

// Events returns the node's event ring: a subscriber, in this process or
// through the control API, follows what the node does.
func (n *Node) Events() *Events { return n.events }

// opFields are the fields of an event about op, made by device.
func opFields(op oplog.Op, device certs.DeviceID) EventFields {
	f := EventFields{Path: op.Path, Kind: op.Kind.String(), Device: device.String()}
	if op.NewPath != "" {
		f.Path, f.OldPath = op.NewPath, op.Path // a rename, at its target
	}
	return f
}

// transfer publishes that the content h of size bytes is being fetched
// from p, and returns what publishes its end.
func (n *Node) transfer(p any, h content.Hash, size int64) func(err error) {
	f := EventFields{Hash: h.String(), Size: size}
	if id, ok := peerIDOf(p); ok {
		f.Peer = id.String()
	}
	n.events.publish(EventTransferStarted, f)
	return func(err error) {
		g := f
		if err != nil {
			g.Error = err.Error()
		}
		n.events.publish(EventTransferFinished, g)
	}
}
