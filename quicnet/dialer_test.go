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
