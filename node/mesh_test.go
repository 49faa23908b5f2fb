package node

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/drive-node/drive-node/certs"
	"github.com/drive-node/drive-node/oplog"
	"github.com/drive-node/drive-node/quicnet"
	"github.com/drive-node/drive-node/wire"
)

// meshPeer is a scripted device in session with a node: it sends what
// the test gives it and hands on what the node sends.
type meshPeer struct {
	id   *certs.Identity
	send chan wire.Message
	got  chan wire.Message
}

// startMeshPeer connects the device id, paired with n already, to n.
func startMeshPeer(t *testing.T, n *runningNode, id *certs.Identity) *meshPeer {
	t.Helper()
	mp := &meshPeer{id: id, send: make(chan wire.Message, 16), got: make(chan wire.Message, 1024)}
	tr, err := quicnet.Listen(context.Background(), quicnet.Config{
		Identity: id, Listen: "127.0.0.1:0", Content: &memSource{},
		Paired: func(certs.DeviceID) bool { return true },
		OnPeer: func(ctx context.Context, p *quicnet.Peer) {
			p.Send(ctx, &wire.Hello{Version: wire.ProtocolVersion, Name: "mesh peer"})
			go func() {
				for {
					m, err := p.Recv(ctx)
					if err != nil {
						return
					}
					select {
					case mp.got <- m:
					default:
					}
				}
			}()
			for {
				select {
				case m := <-mp.send:
					if err := p.Send(ctx, m); err != nil {
						return
					}
				case <-ctx.Done():
					return
				}
			}
		},
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := tr.Dial(ctx, netip.MustParseAddrPort(n.addr), n.ID()); err != nil {
		t.Fatal(err)
	}
	return mp
}

// introduce has the peer send an Introduce of members, signed by signer
// (the peer's own key unless another is given).
func (mp *meshPeer) introduce(t *testing.T, signer *certs.Identity, members ...wire.Member) {
	t.Helper()
	sig, err := oplog.SignStatement(signer.Signer(), wire.IntroduceStatement(mp.id.ID, members))
	if err != nil {
		t.Fatal(err)
	}
	mp.send <- &wire.Introduce{Members: members, Sig: sig}
}

func (mp *meshPeer) revoke(t *testing.T, id certs.DeviceID) {
	t.Helper()
	sig, err := oplog.SignStatement(mp.id.Signer(), wire.RevokeStatement(mp.id.ID, id))
	if err != nil {
		t.Fatal(err)
	}
	mp.send <- &wire.Revoke{ID: id, Sig: sig}
}

func newIdentity(t *testing.T) *certs.Identity {
	t.Helper()
	id, err := certs.LoadOrCreate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// pairedAs returns how n has id paired, "" if not.
func pairedAs(t *testing.T, n *runningNode, id certs.DeviceID) string {
	t.Helper()
	p, ok, err := n.db.Peer(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if !ok {
		return ""
	}
	return p.PairedBy.String()
}

// waitPaired waits until n has id paired as want.
func waitPaired(t *testing.T, n *runningNode, id certs.DeviceID, want string) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%s paired by %s", id.Short(), want), func() string {
		if got := pairedAs(t, n, id); got != want {
			return fmt.Sprintf("paired by %q", got)
		}
		return ""
	})
}

// TestMeshIntroductionsAndRevocations: a node takes introductions only
// from a mesh member and only with the member's signature, and a bad one
// leaves the session working; it honours a revocation only for a device
// introduced to it; a device revoked (by another member) or unpaired here
// is not paired again by an introduction.
func TestMeshIntroductionsAndRevocations(t *testing.T) {
	ctx := context.Background()
	folder := t.TempDir()
	n := startNode(t, folder, freeUDPPort(t))
	member, hand, joined := newIdentity(t), newIdentity(t), newIdentity(t)
	if err := n.db.PairByCode(ctx, member.ID, "member"); err != nil {
		t.Fatal(err)
	}
	if err := n.db.PairByCode(ctx, joined.ID, "joined"); err != nil {
		t.Fatal(err)
	}
	if err := n.db.Pair(ctx, hand.ID, "hand"); err != nil {
		t.Fatal(err)
	}
	mp := startMeshPeer(t, n, member)
	hp := startMeshPeer(t, n, hand)
	one, two, three, four, five := newIdentity(t).ID, newIdentity(t).ID, newIdentity(t).ID, newIdentity(t).ID, newIdentity(t).ID

	// The node introduces its other mesh members to the member, signed.
	waitFor(t, "introduction of the joined device to the member", func() string {
		for {
			select {
			case m := <-mp.got:
				in, ok := m.(*wire.Introduce)
				if !ok {
					continue
				}
				key, err := oplog.ParseOriginKey(n.id.Certificate.Leaf.RawSubjectPublicKeyInfo)
				if err != nil {
					return err.Error()
				}
				if !key.VerifyStatement(wire.IntroduceStatement(n.ID(), in.Members), in.Sig) {
					return "introduction not signed by the node"
				}
				if len(in.Members) == 1 && in.Members[0].ID == joined.ID && in.Members[0].Name == "joined" {
					return ""
				}
			default:
				return "none yet"
			}
		}
	})

	// From a device paired by hand: refused.
	hp.introduce(t, hand, wire.Member{ID: one, Name: "one"})
	// From the member, signed with another key: refused; the session goes on.
	mp.introduce(t, hand, wire.Member{ID: two, Name: "two"})
	mp.introduce(t, member, wire.Member{ID: three, Name: "three"}, wire.Member{ID: hand.ID, Name: "x"}, wire.Member{ID: n.ID(), Name: "self"})
	waitPaired(t, n, three, "introduction")
	// The hand-paired peer's session goes on too: its own revocation
	// is refused, so it can be told apart from a dead session below.
	hp.introduce(t, hand, wire.Member{ID: four})
	for _, id := range []certs.DeviceID{one, two} {
		if got := pairedAs(t, n, id); got != "" {
			t.Fatalf("%s paired by %s from a refused introduction", id.Short(), got)
		}
	}
	if got := pairedAs(t, n, hand.ID); got != "hand" {
		t.Fatalf("an introduction made the hand-paired device %q", got)
	}
	if p, _, _ := n.db.Peer(ctx, three); p.IntroducedBy != member.ID {
		t.Fatalf("introduced by %s, want the member", p.IntroducedBy.Short())
	}

	// Revocations: a device paired by code or by hand stays; an
	// introduced one goes, and is not introduced again.
	mp.revoke(t, joined.ID)
	mp.revoke(t, hand.ID)
	mp.revoke(t, three)
	waitPaired(t, n, three, "")
	// Another member's introduction of it is ignored (the revoker's own
	// would withdraw its revocation).
	jp := startMeshPeer(t, n, joined)
	jp.introduce(t, joined, wire.Member{ID: three}, wire.Member{ID: four})
	waitPaired(t, n, four, "introduction")
	if got := pairedAs(t, n, three); got != "" {
		t.Fatalf("a revoked device paired again by %s", got)
	}
	if pairedAs(t, n, joined.ID) != "code" || pairedAs(t, n, hand.ID) != "hand" {
		t.Fatal("a revocation unpaired a device paired by code or by hand")
	}

	// Unpaired here: not introduced again, and the revocation is sent.
	if err := n.Unpair(ctx, four); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the revocation sent to the member", func() string {
		for {
			select {
			case m := <-mp.got:
				if r, ok := m.(*wire.Revoke); ok && r.ID == four {
					key, _ := oplog.ParseOriginKey(n.id.Certificate.Leaf.RawSubjectPublicKeyInfo)
					if !key.VerifyStatement(wire.RevokeStatement(n.ID(), four), r.Sig) {
						return "revocation not signed by the node"
					}
					return ""
				}
			default:
				return "none yet"
			}
		}
	})
	mp.introduce(t, member, wire.Member{ID: four}, wire.Member{ID: five})
	waitPaired(t, n, five, "introduction")
	if got := pairedAs(t, n, four); got != "" {
		t.Fatalf("a device unpaired here paired again by %s", got)
	}
	// Nothing went to the hand-paired peer.
	for {
		select {
		case m := <-hp.got:
			if m.Type() == wire.TypeIntroduce || m.Type() == wire.TypeRevoke {
				t.Fatalf("a device paired by hand was sent %s", m.Type())
			}
			continue
		default:
		}
		break
	}
}

// TestMeshGrowsByJoins: B joins A, then C joins A: B learns C and C
// learns B from A, as introduced devices.
func TestMeshGrowsByJoins(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	na, nb, addrA, iv := invitingNodes(t, ctx)
	if _, err := nb.Join(ctx, iv.Code(), []string{addrA}); err != nil {
		t.Fatalf("b joins a: %v", err)
	}
	nc := startNode(t, t.TempDir(), freeUDPPort(t))
	iv, err := na.Invite(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := nc.Join(ctx, iv.Code(), []string{addrA}); err != nil {
		t.Fatalf("c joins a: %v", err)
	}
	waitPaired(t, nb, nc.ID(), "introduction")
	waitPaired(t, nc, nb.ID(), "introduction")
	for _, n := range []*runningNode{nb, nc} {
		l, err := n.Peers(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range l.Paired {
			if p.PairedBy == "introduction" && p.IntroducedBy != na.ID().String() {
				t.Fatalf("%s: %s introduced by %s, want a", n.folder, p.ID, p.IntroducedBy)
			}
			if p.ID == na.ID().String() && (p.PairedBy != "code" || p.Name != filepath.Base(na.folder)) {
				t.Fatalf("%s: a listed as %+v", n.folder, p)
			}
		}
	}
	if pairedAs(t, na, nb.ID()) != "code" || pairedAs(t, na, nc.ID()) != "code" {
		t.Fatal("a does not have b and c paired by code")
	}
}
