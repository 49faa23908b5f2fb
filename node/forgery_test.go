package node

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/drive-node/drive-node/certs"
	"github.com/drive-node/drive-node/oplog"
	"github.com/drive-node/drive-node/quicnet"
	"github.com/drive-node/drive-node/wire"
)

// A hostile paired peer speaking the real protocol tries to pass off ops
// as another device's, or its own ops altered, replayed or out of order.
// Each frame below is one try on its own connection; none may reach the
// log, and the honest ops around them must.

// playPeer connects to n as the paired device id and, after the Hello
// exchange, sends frames as they are (nothing is signed for it), the last
// an Ops. It returns once n has dealt with them: n acknowledged the Ops
// with a Progress (the peer then closes the connection), or n closed the
// connection over a bad frame.
func playPeer(t *testing.T, id *certs.Identity, n *runningNode, frames ...wire.Message) {
	t.Helper()
	play(t, id, n, true, frames...)
}

// play is playPeer; unless untilProgress, it keeps the connection open
// until the test ends and returns once the frames are sent.
func play(t *testing.T, id *certs.Identity, n *runningNode, untilProgress bool, frames ...wire.Message) {
	t.Helper()
	ended := make(chan struct{})
	tr, err := quicnet.Listen(context.Background(), quicnet.Config{
		Identity: id, Listen: "127.0.0.1:0", Content: &memSource{},
		Paired: func(certs.DeviceID) bool { return true },
		OnPeer: func(ctx context.Context, p *quicnet.Peer) {
			p.Send(ctx, &wire.Hello{Version: wire.ProtocolVersion, Name: "hostile"})
			p.Recv(ctx)
			for _, f := range frames {
				if err := p.Send(ctx, f); err != nil {
					close(ended)
					return
				}
			}
			if !untilProgress {
				close(ended)
				<-ctx.Done()
				return
			}
			// n posts a Progress once it has dealt with an Ops frame,
			// and sends none before.
			for {
				m, err := p.Recv(ctx)
				if err != nil {
					close(ended)
					return
				}
				if _, ok := m.(*wire.Progress); ok {
					p.CloseWithError("done")
					close(ended)
					return
				}
			}
		},
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	if untilProgress {
		defer tr.Close()
	} else {
		t.Cleanup(func() { tr.Close() })
	}
	if _, err := tr.Dial(context.Background(), netip.MustParseAddrPort(n.addr), n.ID()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ended:
	case <-time.After(30 * time.Second):
		t.Fatal("the node neither acknowledged the frames nor closed the connection in 30 s")
	}
}

// forgeryFixture is a node paired with a hostile peer and an honest third
// device whose key the node knows.
type forgeryFixture struct {
	n              *runningNode
	hostile, third *certs.Identity
	thirdKey       []byte
}

func newForgeryFixture(t *testing.T) *forgeryFixture {
	folder := t.TempDir()
	f := &forgeryFixture{hostile: pairedPeer(t, folder, "hostile"), third: pairedPeer(t, folder, "third")}
	f.thirdKey = f.third.Certificate.Leaf.RawSubjectPublicKeyInfo
	f.n = startNode(t, folder, freeUDPPort(t))
	return f
}

func deleteOp(origin certs.DeviceID, seq uint64, path string) oplog.Op {
	return oplog.Op{Origin: origin, Seq: seq, Lamport: seq, Kind: oplog.KindDelete, Path: path}
}

// sealed returns ops sealed with key after prev.
func sealed(t *testing.T, key *certs.Identity, prev oplog.Link, ops ...oplog.Op) []oplog.Op {
	t.Helper()
	if _, err := oplog.Seal(key.Signer(), prev, ops); err != nil {
		t.Fatal(err)
	}
	return ops
}

func TestForgedOpsAreRefused(t *testing.T) {
	f := newForgeryFixture(t)
	h, c := f.hostile, f.third
	mine := sealed(t, h, oplog.Link{}, deleteOp(h.ID, 1, "a"), deleteOp(h.ID, 2, "b"))
	reordered := sealed(t, h, oplog.Link{}, deleteOp(h.ID, 1, "a"), deleteOp(h.ID, 2, "b"))
	reordered[0], reordered[1] = reordered[1], reordered[0]
	reordered[0].Seq, reordered[1].Seq = 1, 2
	altered := sealed(t, h, oplog.Link{}, deleteOp(h.ID, 1, "a"))
	altered[0].Path = "elsewhere"
	unsignedEnd := sealed(t, h, oplog.Link{}, deleteOp(h.ID, 1, "a"), deleteOp(h.ID, 2, "b"))
	unsignedEnd = unsignedEnd[:1] // the signed op held back for good
	tries := map[string][]wire.Message{
		// C#1 made up by the hostile peer and signed with its own key:
		// taken, it would hold C's sequence 1, and C's genuine #1 would
		// be dropped as already held.
		"another device's op signed by the peer": {
			&wire.Origins{Keys: [][]byte{f.thirdKey}},
			&wire.Ops{Ops: sealed(t, h, oplog.Link{}, deleteOp(c.ID, 1, "victim.txt"))}},
		"an op naming the receiver":               {&wire.Ops{Ops: sealed(t, h, oplog.Link{}, deleteOp(f.n.ID(), 1, "mine.txt"))}},
		"ops out of order":                        {&wire.Ops{Ops: reordered}},
		"an op altered after it was signed":       {&wire.Ops{Ops: altered}},
		"a replayed op before the one it follows": {&wire.Ops{Ops: mine[1:]}},
		"a signature over nothing":                {&wire.Ops{Ops: []oplog.Op{{Origin: h.ID, Seq: 1, Lamport: 1, Kind: oplog.KindDelete, Path: "a", Sig: []byte{0x30, 0}}}}},
	}
	for name, frames := range tries {
		playPeer(t, h, f.n, frames...)
		if got := f.n.ops.Vector(); got[h.ID] != 0 || got[c.ID] != 0 || got[f.n.ID()] != 0 {
			t.Fatalf("%s: the log took it: %v", name, got)
		}
	}
	// Ops that never end with a signature are held, never stored.
	playPeer(t, h, f.n, &wire.Ops{Ops: unsignedEnd})
	if got := f.n.ops.Highest(h.ID); got != 0 {
		t.Fatalf("an op no signature covers was stored (highest %d)", got)
	}
	if !strings.Contains(f.n.logs.String(), "not shown to come from their origin") {
		t.Error("the refusals were not logged")
	}

	// The honest ops still go through: the peer's own, and C's genuine
	// #1, relayed by the same peer, which a forgery would have displaced.
	genuine := sealed(t, c, oplog.Link{}, deleteOp(c.ID, 1, "victim.txt"))
	playPeer(t, h, f.n, &wire.Origins{Keys: [][]byte{f.thirdKey}}, &wire.Ops{Ops: append(append([]oplog.Op(nil), mine...), genuine...)})
	if got := f.n.ops.Vector(); got[h.ID] != 2 || got[c.ID] != 1 {
		t.Fatalf("honest ops after the forgeries: log holds %v", got)
	}
	if held, _, _ := f.n.ops.Get(c.ID, 1); held.Link() != genuine[0].Link() {
		t.Fatalf("C#1 held is %s, not C's own", held)
	}
}

// A peer that sends a different op for a sequence this node holds is
// refused and named in the log; the op held stays.
func TestConflictingOpIsRefusedAndReported(t *testing.T) {
	f := newForgeryFixture(t)
	h := f.hostile
	first := sealed(t, h, oplog.Link{}, deleteOp(h.ID, 1, "a"))
	playPeer(t, h, f.n, &wire.Ops{Ops: first})
	other := sealed(t, h, oplog.Link{}, deleteOp(h.ID, 1, "b")) // the same sequence, signed too
	playPeer(t, h, f.n, &wire.Ops{Ops: other})
	held, ok, err := f.n.ops.Get(h.ID, 1)
	if err != nil || !ok || held.Path != "a" {
		t.Fatalf("op held for %s#1: %v %v %v", h.ID.Short(), held, ok, err)
	}
	logs := f.n.logs.String()
	if !strings.Contains(logs, "differs from the one this device holds") || !strings.Contains(logs, h.ID.Short()) {
		t.Fatalf("the conflicting op was not reported with the peer that sent it:\n%s", logs)
	}
}

// A peer can vouch for devices behind it, up to maxVouched; a device that
// was taken on its own word and is no longer paired is not taken on
// another's.
func TestVouchedOriginsAreBounded(t *testing.T) {
	f := newForgeryFixture(t)
	h := f.hostile
	var keys [][]byte
	var ops []oplog.Op
	for i := range maxVouched + 3 {
		made, err := certs.LoadOrCreate(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, made.Certificate.Leaf.RawSubjectPublicKeyInfo)
		ops = append(ops, sealed(t, made, oplog.Link{}, deleteOp(made.ID, 1, fmt.Sprint(i)))...)
	}
	// A device once paired here and since unpaired: its key was taken on
	// its own word.
	gone, err := certs.LoadOrCreate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	goneKey := addOrigin(t, f.n.ops, gone)
	keys = append(keys, goneKey.DER)
	ops = append(ops, sealed(t, gone, oplog.Link{}, deleteOp(gone.ID, 1, "gone"))...)
	mine := sealed(t, h, oplog.Link{}, deleteOp(h.ID, 1, "own"))
	playPeer(t, h, f.n, &wire.Origins{Keys: keys}, &wire.Ops{Ops: append(ops, mine...)})
	waitFor(t, "the peer's own op stored", func() string {
		if f.n.ops.Highest(h.ID) != 1 {
			return "not yet"
		}
		return ""
	})
	v := f.n.ops.Vector()
	taken := 0
	for _, op := range ops {
		if v[op.Origin] == 1 {
			taken++
		}
	}
	if taken != maxVouched || v[gone.ID] != 0 {
		t.Fatalf("took ops of %d vouched devices (want %d), and %d of the unpaired one", taken, maxVouched, v[gone.ID])
	}
	if !strings.Contains(f.n.logs.String(), "vouches for more devices") {
		t.Error("the vouching limit was not logged")
	}
}

// A frame may end before the op whose signature covers it: the node holds
// those ops and takes them with the next frame. An origin whose op is
// refused does not hold back another's in the same frame.
func TestOpsAcrossFramesAndOneBadOrigin(t *testing.T) {
	f := newForgeryFixture(t)
	h, c := f.hostile, f.third
	own := sealed(t, h, oplog.Link{}, deleteOp(h.ID, 1, "a"), deleteOp(h.ID, 2, "b"), deleteOp(h.ID, 3, "c"))
	next := sealed(t, h, own[2].Link(), deleteOp(h.ID, 4, "d"))
	forged := sealed(t, h, oplog.Link{}, deleteOp(c.ID, 1, "victim.txt"))
	play(t, h, f.n, false,
		&wire.Ops{Ops: own[:2]},
		&wire.Origins{Keys: [][]byte{f.thirdKey}},
		&wire.Ops{Ops: append(append(own[2:], forged...), next...)})
	waitFor(t, "the peer's four ops stored", func() string {
		if got := f.n.ops.Highest(h.ID); got != 4 {
			return fmt.Sprintf("highest %d", got)
		}
		return ""
	})
	if got := f.n.ops.Highest(c.ID); got != 0 {
		t.Fatalf("the forged op of %s was stored", c.ID.Short())
	}
}
