package quicnet

import (
	"context"
	"net/netip"
	"testing"
	"time"
)

// TestRedialerDialsAgainWhenConnectionEnds has a Redialer connect to a
// discovered peer, puts its next attempt an hour away, and has the peer
// end the connection: the Redialer must dial again at once rather than at
// the due time, since a peer that restarts is usually back before then.
func TestRedialerDialsAgainWhenConnectionEnds(t *testing.T) {
	a, b := pairedTestNodes(t, memContent{}, memContent{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := a.t.NewRedialer(ctx)
	r.mu.Lock()
	r.stable = 0 // the test's connection counts as one that lasted
	r.mu.Unlock()
	r.Found(b.id.ID, []netip.AddrPort{b.addr()})
	waitPeer(t, a)
	onB := waitPeer(t, b)

	r.mu.Lock()
	for _, tg := range r.targets {
		tg.next = time.Now().Add(time.Hour)
	}
	r.mu.Unlock()
	onB.close(codeNormal, "going away")

	again := waitPeer(t, a)
	if again.Context().Err() != nil {
		t.Fatal("the new connection is already closed")
	}
	if !a.t.Connected(b.id.ID) {
		t.Fatal("not connected after the redial")
	}
}

// TestRedialerBacksOffFromAPeerThatRefusesIt: b has not paired a, so it
// refuses a's connections, but a TLS 1.3 dialer finishes its handshake
// before the listener has checked its certificate: a's dials succeed and
// each connection dies a moment later. a must keep backing off rather
// than dial again at each close.
func TestRedialerBacksOffFromAPeerThatRefusesIt(t *testing.T) {
	a, b := newTestNode(t, memContent{}), newTestNode(t, memContent{})
	a.pair(b)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := a.t.NewRedialer(ctx)
	r.Found(b.id.ID, []netip.AddrPort{b.addr()})
	connections := 0
	deadline := time.After(2 * time.Second)
	for wait := true; wait; {
		select {
		case <-a.peers:
			connections++
		case <-deadline:
			wait = false
		}
	}
	// Backing off from 0.5 s and doubling leaves room for 3 dials in 2 s;
	// redialling at each close made hundreds.
	if connections > 8 {
		t.Fatalf("%d connections to a peer that refuses them in 2 s", connections)
	}
	t.Logf("%d connections in 2 s", connections)
}
