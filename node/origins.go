package node

import (
	"context"
	"errors"
	"fmt"

	"github.com/drive-node/drive-node/certs"
	"github.com/drive-node/drive-node/oplog"
	"github.com/drive-node/drive-node/quicnet"
	"github.com/drive-node/drive-node/wire"
)

// maxVouched bounds the devices one paired peer can introduce: the
// devices behind it whose ops it relays (a NAS relaying a laptop that is
// not paired here). A household or an office has far fewer; without a
// bound, a peer could make this node keep ops of any number of made-up
// devices, and a Hello that lists every origin would grow past what a
// frame carries.
const maxVouched = 256

// originGate decides, for one session, which origins' ops this node takes
// from the peer: devices paired here, and devices a paired device
// vouched for (introduced with their key), as long as the device that
// vouched is still paired. A device once paired here and since unpaired
// is refused however its ops arrive: directly, or relayed by a device
// still paired with it. An origin whose ops the log refused is left out
// for the rest of the session (a reconnect starts over from what is
// stored).
type originGate struct {
	n       *Node
	peer    certs.DeviceID
	paired  map[certs.DeviceID]bool  // cache of n.paired for this session
	refused map[certs.DeviceID]error // origins left out, each logged once
	full    bool                     // the peer's vouching quota was reported
}

// maxGateEntries bounds what a session remembers of the devices a peer
// names: an honest peer names at most the origins a log holds. A peer
// naming more is closed.
const maxGateEntries = 2 * oplog.MaxOrigins

func newOriginGate(n *Node, peer certs.DeviceID) *originGate {
	return &originGate{n: n, peer: peer, paired: map[certs.DeviceID]bool{}, refused: map[certs.DeviceID]error{}}
}

func (g *originGate) isPaired(id certs.DeviceID) (bool, error) {
	ok, cached := g.paired[id]
	if !cached {
		if len(g.paired) >= maxGateEntries {
			return false, fmt.Errorf("peer %s named over %d devices in one session", g.peer.Short(), maxGateEntries)
		}
		ok = g.n.paired(id)
		g.paired[id] = ok
	}
	return ok, nil
}

// admitted reports whether ops of origin o are taken: this device's own
// (the log checks them against what it holds), a paired device's, or a
// device's whose key a still-paired device vouched for.
func (g *originGate) admitted(o certs.DeviceID) (bool, error) {
	if o == g.n.id.ID {
		return true, nil
	}
	_, voucher, known := g.n.ops.Origin(o)
	if !known {
		return false, nil
	}
	if ok, err := g.isPaired(o); ok || err != nil {
		return ok, err
	}
	if voucher == o {
		return false, nil
	}
	return g.isPaired(voucher)
}

// introduce records the keys of a peer's Origins frame that this node
// takes: a paired device's on its own word, any other on the peer's, up
// to maxVouched per peer, unless the device was once paired here (and is
// no longer) or a device still paired vouched for it already.
func (g *originGate) introduce(ctx context.Context, m *wire.Origins) error {
	peerPaired, err := g.isPaired(g.peer)
	if err != nil {
		return err
	}
	for _, der := range m.Keys {
		key, err := oplog.ParseOriginKey(der)
		if err != nil {
			return fmt.Errorf("peer %s introduced a bad key: %w", g.peer.Short(), err)
		}
		if key.ID == g.n.id.ID {
			continue
		}
		_, voucher, known := g.n.ops.Origin(key.ID)
		paired, err := g.isPaired(key.ID)
		if err != nil {
			return err
		}
		vouched := known && voucher != key.ID
		if vouched {
			if vouched, err = g.isPaired(voucher); err != nil {
				return err
			}
		}
		want := g.peer
		switch {
		case paired:
			want = key.ID
		case known && voucher == key.ID, vouched, !peerPaired:
			continue
		case g.n.ops.Vouched(g.peer) >= maxVouched:
			if !g.full {
				g.full = true
				g.n.log.Warn("a peer vouches for more devices than this node takes from one peer; their ops are not taken",
					"peer", g.peer.Short(), "limit", maxVouched, "device", key.ID.Short())
			}
			continue
		}
		if known && voucher == want {
			continue
		}
		if err := g.n.ops.AddOrigin(ctx, key, want); err != nil {
			return fmt.Errorf("recording the key of %s, vouched for by %s: %w", key.ID.Short(), want.Short(), err)
		}
	}
	return nil
}

// filter returns the ops of origins taken and not left out, leaving out
// (and logging once) the others. Those stay with the peer: nothing is
// lost, and they are taken once their origin is paired here.
func (g *originGate) filter(ops []oplog.Op) ([]oplog.Op, error) {
	out := ops[:0:0]
	for _, op := range ops {
		if g.refused[op.Origin] != nil {
			continue
		}
		ok, err := g.admitted(op.Origin)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, op)
			continue
		}
		if err := g.refuse(op.Origin, errNotTaken); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// errNotTaken is why ops of a device neither paired nor vouched for are
// left out.
var errNotTaken = errors.New("neither paired here nor vouched for by a paired device")

// refuse leaves out origin o's ops for the rest of the session, logging
// why once.
func (g *originGate) refuse(o certs.DeviceID, why error) error {
	if g.refused[o] != nil {
		return nil
	}
	if len(g.refused) >= maxGateEntries {
		return fmt.Errorf("peer %s sent ops of over %d devices this node does not take", g.peer.Short(), maxGateEntries)
	}
	g.refused[o] = why
	g.n.live.refused.Add(1)
	g.n.events.publish(EventRefused, EventFields{Peer: g.peer.String(), Device: o.String(), Reason: why.Error()})
	switch {
	case errors.Is(why, errNotTaken):
		g.n.log.Warn("not taking ops of a device that is neither paired here nor vouched for by a paired device",
			"peer", g.peer.Short(), "origin", o.Short())
	case errors.Is(why, oplog.ErrConflict):
		g.n.log.Error("a peer sent an op that differs from the one this device holds for its sequence; kept the one held, and no more of that device's ops from this peer until it reconnects",
			"peer", g.peer.Short(), "origin", o.Short(), "err", why)
	default:
		g.n.log.Error("a peer sent ops that are not shown to come from their origin; none of that device's ops taken from this peer until it reconnects",
			"peer", g.peer.Short(), "origin", o.Short(), "err", why)
	}
	return nil
}

// unsignedRuns holds, for one session, the ops a peer sent that no
// signature covers yet: an origin signs at least every
// oplog.MaxUnsignedRun ops and every oplog.MaxUnsignedBytes, and a frame
// may end before the signed op. The log takes a run once its signed op
// arrives; a reconnect drops what is held, and the peer sends it again
// from what the Hello says is stored.
type unsignedRuns struct {
	held  map[certs.DeviceID]*heldRun
	bytes int // of every run held
}

type heldRun struct {
	ops   []oplog.Op
	bytes int
}

// maxHeldBytes bounds the unsigned ops held for one session, all origins
// together. An honest sender finishes one origin's ops (its highest op is
// signed) before the next's, so it leaves at most one run open.
const maxHeldBytes = 4 * oplog.MaxUnsignedBytes

// add takes a frame's ops and returns those now covered by a signature
// (or legacy ops, which their origin's connection covers), in order per
// origin. An origin that leaves more unsigned than an origin may is
// refused through gate; a session holding more than maxHeldBytes fails.
func (u *unsignedRuns) add(ops []oplog.Op, gate *originGate) ([]oplog.Op, error) {
	if u.held == nil {
		u.held = map[certs.DeviceID]*heldRun{}
	}
	var ready []oplog.Op
	for _, op := range ops {
		if gate.refused[op.Origin] != nil {
			continue
		}
		run := u.held[op.Origin]
		if run == nil {
			run = &heldRun{}
			u.held[op.Origin] = run
		}
		run.ops = append(run.ops, op)
		if len(op.Sig) > 0 || op.Legacy {
			ready = append(ready, run.ops...)
			u.drop(op.Origin)
			continue
		}
		size := op.EncodedLen()
		run.bytes, u.bytes = run.bytes+size, u.bytes+size
		if len(run.ops) >= oplog.MaxUnsignedRun || run.bytes > oplog.MaxUnsignedBytes {
			err := fmt.Errorf("%w: %d ops (%d bytes) of %s unsigned, over the %d ops or %d bytes an origin leaves unsigned",
				oplog.ErrUnauthenticated, len(run.ops), run.bytes, op.Origin.Short(), oplog.MaxUnsignedRun-1, oplog.MaxUnsignedBytes)
			u.drop(op.Origin)
			if err := gate.refuse(op.Origin, err); err != nil {
				return ready, err
			}
		}
		if u.bytes > maxHeldBytes {
			return ready, fmt.Errorf("%w: %d bytes of ops held unsigned, over %d", oplog.ErrUnauthenticated, u.bytes, maxHeldBytes)
		}
	}
	return ready, nil
}

// drop forgets origin o's held run.
func (u *unsignedRuns) drop(o certs.DeviceID) {
	if run := u.held[o]; run != nil {
		u.bytes -= run.bytes
		delete(u.held, o)
	}
}

// admitPeer records the key of a peer this node is paired with, as its
// connection presented it.
func (n *Node) admitPeer(ctx context.Context, p *quicnet.Peer) error {
	key, err := oplog.ParseOriginKey(p.PublicKey())
	if err != nil {
		return err
	}
	if key.ID != p.ID {
		return fmt.Errorf("peer %s presented the key of %s", p.ID.Short(), key.ID.Short())
	}
	return n.ops.AddOrigin(ctx, key, p.ID)
}

// originsToIntroduce returns the keys of the origins in origins that the
// peer has not been sent in this session, marking them sent. The peer
// has its own key.
func (n *Node) originsToIntroduce(peer certs.DeviceID, origins []certs.DeviceID, introduced map[certs.DeviceID]bool) [][]byte {
	var keys [][]byte
	for _, o := range origins {
		if introduced[o] || o == peer {
			continue
		}
		if key, _, ok := n.ops.Origin(o); ok {
			introduced[o] = true
			keys = append(keys, key.DER)
		}
	}
	return keys
}
