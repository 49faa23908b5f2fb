package node

import (
	"context"
	"errors"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/drive-node/drive-node/certs"
	"github.com/drive-node/drive-node/oplog"
)

// PeerProgress is how far this device and a connected peer are from
// holding the same: what is left to take from the peer and to give it.
//
// ToSend counts the ops of this device's log the peer is not known to
// have (its Hello, its Progress frames, the ops it sent), and the content
// bytes of those that write a file. ToReceive counts the ops the peer has
// that this device has not yet applied (received and pending, or not yet
// received), and the content bytes of those in this log (an op's size is
// known once it has arrived). Both are zero exactly when the two hold the
// same ops and this device has applied all of the peer's.
//
// RateBytesPerS is the content received from the peer per second over
// the last few seconds; ETAS is ToReceiveBytes at that rate, nil when
// nothing arrives.
type PeerProgress struct {
	ToReceiveFiles uint64  `json:"to_receive_files"`
	ToReceiveBytes uint64  `json:"to_receive_bytes"`
	ToSendFiles    uint64  `json:"to_send_files"`
	ToSendBytes    uint64  `json:"to_send_bytes"`
	RateBytesPerS  float64 `json:"rate_bytes_per_s"`
	ETAS           *int64  `json:"eta_s"`
}

// liveCounters are what a running node counts for status, progress and
// metrics. They start at zero at each Open.
type liveCounters struct {
	recorded, applied, conflicts, refused atomic.Uint64 // ops, copies, origins refused
	bytesIn, bytesOut                     atomic.Uint64 // content bytes
	scanned                               atomic.Int64  // files the current scan looked at

	mu     sync.Mutex
	peerIn map[certs.DeviceID]*rateMeter
	sizes  sizeIndex
}

// received counts k content bytes that arrived from the fetcher p.
func (n *Node) received(p any, k int64) {
	n.progress.Add(uint64(k))
	n.live.bytesIn.Add(uint64(k))
	id, ok := peerIDOf(p)
	if !ok {
		return
	}
	l := &n.live
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.peerIn == nil {
		l.peerIn = map[certs.DeviceID]*rateMeter{}
	}
	m := l.peerIn[id]
	if m == nil {
		m = &rateMeter{}
		l.peerIn[id] = m
	}
	m.add(n.clock.Now(), uint64(k))
}

// receivedFrom is a writer counting what passes through it as received
// from p.
type receivedFrom struct {
	n *Node
	p any
}

func (w receivedFrom) Write(b []byte) (int, error) {
	w.n.received(w.p, int64(len(b)))
	return len(b), nil
}

// rateOf returns the bytes per second received from peer lately.
func (n *Node) rateOf(peer certs.DeviceID) float64 {
	n.live.mu.Lock()
	defer n.live.mu.Unlock()
	if m := n.live.peerIn[peer]; m != nil {
		return m.rate(n.clock.Now())
	}
	return 0
}

// rateWindow is how far back a rate looks.
const rateWindow = 10 * time.Second

// rateMeter turns a running byte count into a rate: it keeps a mark of
// the count at most once a second over rateWindow.
type rateMeter struct {
	total uint64
	marks []rateMark
}

type rateMark struct {
	at    time.Time
	total uint64
}

func (m *rateMeter) add(now time.Time, k uint64) {
	m.mark(now)
	m.total += k
}

// mark drops the marks older than the window and takes one if the last is
// a second old.
func (m *rateMeter) mark(now time.Time) {
	i := 0
	for i < len(m.marks)-1 && now.Sub(m.marks[i].at) > rateWindow {
		i++
	}
	m.marks = m.marks[i:]
	if len(m.marks) == 0 || now.Sub(m.marks[len(m.marks)-1].at) >= time.Second {
		m.marks = append(m.marks, rateMark{now, m.total})
	}
}

// rate is the bytes per second since the oldest mark, 0 over less than a
// second or when the oldest mark is out of the window (nothing arrived).
func (m *rateMeter) rate(now time.Time) float64 {
	m.mark(now)
	first := m.marks[0]
	dt := now.Sub(first.at)
	if dt < time.Second || dt > rateWindow+time.Second {
		return 0
	}
	return float64(m.total-first.total) / dt.Seconds()
}

// sizeIndex holds, per origin, the content bytes of its ops up to each
// sequence (cum[o][s-1] for ops 1…s), so the bytes of any run of ops are
// a subtraction, and, for an origin whose log has gaps (it was folded),
// how many of its ops up to each sequence the log holds. It grows from
// the log as the log does, reading each op once: a status every second at
// 100,000 files reads only the ops new since the last. A fold empties it
// (forget), since the bytes it counted for folded ops are no longer sent.
type sizeIndex struct {
	cum  map[certs.DeviceID][]uint64
	held map[certs.DeviceID][]uint32 // nil for an origin without a gap
}

// bytesUpTo returns the content bytes of origin o's ops 1…seq, reading the
// log for those not indexed yet. The caller holds live.mu.
func (x *sizeIndex) bytesUpTo(ctx context.Context, ops opLog, o certs.DeviceID, seq uint64) (uint64, error) {
	if seq == 0 {
		return 0, nil
	}
	if x.cum == nil {
		x.cum, x.held = map[certs.DeviceID][]uint64{}, map[certs.DeviceID][]uint32{}
	}
	cum, held := x.cum[o], x.held[o]
	if uint64(len(cum)) < seq {
		last, count := uint64(0), uint32(0)
		if len(cum) > 0 {
			last, count = cum[len(cum)-1], uint32(len(cum))
			if held != nil {
				count = held[len(held)-1]
			}
		}
		err := ops.Iterate(ctx, o, uint64(len(cum))+1, func(op oplog.Op) error {
			if op.Seq > seq {
				return errStop
			}
			if held == nil && uint64(len(cum)) < op.Seq-1 {
				// The first gap: count held ops from here on.
				held = make([]uint32, len(cum), len(cum)+1)
				for i := range held {
					held[i] = uint32(i + 1)
				}
			}
			for uint64(len(cum)) < op.Seq-1 { // a sequence the log lacks: no bytes
				cum, held = append(cum, last), append(held, count)
			}
			if op.Kind == oplog.KindWrite && op.Size > 0 {
				last += uint64(op.Size)
			}
			count++
			cum = append(cum, last)
			if held != nil {
				held = append(held, count)
			}
			return nil
		})
		x.cum[o] = cum
		if held != nil {
			x.held[o] = held
		}
		if err != nil && !errors.Is(err, errStop) {
			return 0, err
		}
	}
	if len(cum) == 0 {
		return 0, nil
	}
	return cum[min(seq, uint64(len(cum)))-1], nil
}

// between returns the content bytes of origin o's ops from+1…to, and how
// many of those ops the log holds.
func (x *sizeIndex) between(ctx context.Context, ops opLog, o certs.DeviceID, from, to uint64) (bytes, count uint64, err error) {
	if to <= from {
		return 0, 0, nil
	}
	hi, err := x.bytesUpTo(ctx, ops, o, to)
	if err != nil {
		return 0, 0, err
	}
	lo, err := x.bytesUpTo(ctx, ops, o, from)
	return hi - lo, x.heldUpTo(o, to) - x.heldUpTo(o, from), err
}

// heldUpTo is how many of origin o's ops 1…seq the log holds, as far as
// indexed.
func (x *sizeIndex) heldUpTo(o certs.DeviceID, seq uint64) uint64 {
	held, n := x.held[o], uint64(len(x.cum[o]))
	seq = min(seq, n)
	if held == nil || seq == 0 {
		return seq
	}
	return uint64(held[seq-1])
}

// Progress returns, for each connected peer, how far the two are from
// holding the same (see PeerProgress).
func (n *Node) Progress(ctx context.Context) (map[certs.DeviceID]PeerProgress, error) {
	mine := n.ops.Vector()
	applied, err := n.db.Applied(ctx)
	if err != nil {
		return nil, err
	}
	applied[n.id.ID] = mine[n.id.ID] // this device's own ops need no applying
	n.peersMu.Lock()
	known := make(map[certs.DeviceID]map[certs.DeviceID]uint64, len(n.peers))
	for id, ps := range n.peers {
		if ps.known != nil {
			known[id] = ps.known.snapshot()
		} else {
			known[id] = maps.Clone(ps.have)
		}
	}
	n.peersMu.Unlock()
	out := make(map[certs.DeviceID]PeerProgress, len(known))
	for id, have := range known {
		p, err := n.progressWith(ctx, mine, applied, have)
		if err != nil {
			return nil, err
		}
		p.RateBytesPerS = n.rateOf(id)
		switch {
		case p.ToReceiveBytes == 0:
			p.ETAS = new(int64)
		case p.RateBytesPerS > 0:
			eta := int64(float64(p.ToReceiveBytes)/p.RateBytesPerS + 0.5)
			p.ETAS = &eta
		}
		out[id] = p
	}
	return out, nil
}

// progressWith counts what separates this log (mine, applied as far as
// applied) from a peer's that holds have.
func (n *Node) progressWith(ctx context.Context, mine, applied, have map[certs.DeviceID]uint64) (PeerProgress, error) {
	var p PeerProgress
	n.live.mu.Lock()
	defer n.live.mu.Unlock()
	x := &n.live.sizes
	for o, top := range mine {
		if top > have[o] {
			b, k, err := x.between(ctx, n.ops, o, have[o], top)
			if err != nil {
				return p, err
			}
			p.ToSendBytes += b
			p.ToSendFiles += k
		}
	}
	for o, theirs := range have {
		done := applied[o]
		if theirs <= done {
			continue
		}
		// Of those, the ones in this log have a known size and count;
		// the peer's ops past this log count one per sequence.
		held := min(theirs, mine[o])
		b, k, err := x.between(ctx, n.ops, o, done, held)
		if err != nil {
			return p, err
		}
		p.ToReceiveBytes += b
		p.ToReceiveFiles += k + (theirs - max(held, done))
	}
	return p, nil
}

// snapshot returns a copy of what the peer is known to have.
func (k *knownVector) snapshot() map[certs.DeviceID]uint64 {
	k.mu.Lock()
	defer k.mu.Unlock()
	return maps.Clone(k.have)
}
