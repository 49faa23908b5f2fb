package quicnet

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/drive-node/drive-node/internal/clock"
)

// redialTrace records what a Redialer on a fake clock does.
type redialTrace struct {
	mu      sync.Mutex
	dials   []time.Time // clock readings at which attempts started
	checked []time.Time // clock readings at which due targets were looked for
}

func (tr *redialTrace) hooks() redialHooks {
	return redialHooks{
		dialing: func(now time.Time) { tr.mu.Lock(); tr.dials = append(tr.dials, now); tr.mu.Unlock() },
		checked: func(now time.Time) { tr.mu.Lock(); tr.checked = append(tr.checked, now); tr.mu.Unlock() },
	}
}

func (tr *redialTrace) dialCount() int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return len(tr.dials)
}

// waitChecked waits until the Redialer has looked for due targets at the
// clock's reading at.
func (tr *redialTrace) waitChecked(t *testing.T, at time.Time) {
	t.Helper()
	waitCond(t, 5*time.Second, fmt.Sprintf("the redialer checks at %v", at), func() (bool, string) {
		tr.mu.Lock()
		defer tr.mu.Unlock()
		return slices.ContainsFunc(tr.checked, at.Equal), fmt.Sprintf("checked at %v", tr.checked)
	})
}

// waitCond polls cond until it holds, failing the test after limit with
// cond's last word on what it saw.
func waitCond(t *testing.T, limit time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v: %s", what, limit, why)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// settled reports whether no attempt of r is under way and every target
// backs off by want.
func (r *Redialer) settled(want time.Duration) (bool, string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, tg := range r.targets {
		if tg.dialing || tg.backoff != want {
			return false, fmt.Sprintf("%s: dialing %v, backoff %v (want %v)", k, tg.dialing, tg.backoff, want)
		}
	}
	return true, ""
}

// TestRedialerDialsAgainWhenConnectionEnds has a Redialer connect to a
// discovered peer, puts its next attempt an hour away, and has the peer
// end the connection: the Redialer must dial again at once rather than at
// the due time, since a peer that restarts is usually back before then.
// Its clock never moves: only the lost connection can bring the dial.
func TestRedialerDialsAgainWhenConnectionEnds(t *testing.T) {
	a, b := pairedTestNodes(t, memContent{}, memContent{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	clk := clock.NewFake(time.Unix(1_000_000, 0))
	var trace redialTrace
	r := a.t.newRedialer(ctx, clk, trace.hooks())
	r.mu.Lock()
	r.stable = 0 // the test's connection counts as one that lasted
	r.mu.Unlock()
	r.Found(b.id.ID, []netip.AddrPort{b.addr()})
	waitPeer(t, a)
	onB := waitPeer(t, b)

	r.mu.Lock()
	for _, tg := range r.targets {
		tg.next = clk.Now().Add(time.Hour)
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
	if n := trace.dialCount(); n != 2 {
		t.Fatalf("%d attempts, want the first and the one after the lost connection", n)
	}
}

// TestRedialerBacksOffFromAPeerThatRefusesIt: b has not paired a, so it
// refuses a's connections, but a TLS 1.3 dialer finishes its handshake
// before the listener has checked its certificate: a's dials may succeed,
// each connection dying a moment later. a must back off, doubling from
// minBackoff, rather than dial again at each close. The Redialer's clock
// is a fake one, moved on tick by tick: the attempts must come exactly at
// 0, 0.5, 1.5, 3.5 and 7.5 s.
func TestRedialerBacksOffFromAPeerThatRefusesIt(t *testing.T) {
	a, b := newTestNode(t, memContent{}), newTestNode(t, memContent{})
	a.pair(b)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { // a's connections, each closed by b
		for {
			select {
			case <-a.peers:
			case <-ctx.Done():
				return
			}
		}
	}()
	start := time.Unix(1_000_000, 0)
	clk := clock.NewFake(start)
	var trace redialTrace
	r := a.t.newRedialer(ctx, clk, trace.hooks())
	r.Found(b.id.ID, []netip.AddrPort{b.addr()})

	const tick = 250 * time.Millisecond
	backoff := minBackoff
	for round := 1; round <= 5; round++ {
		// The attempt ended (refused, or its connection closed and lost
		// counted it): the backoff has grown.
		waitCond(t, 10*time.Second, fmt.Sprintf("attempt %d ends", round), func() (bool, string) { return r.settled(backoff) })
		if round == 5 {
			break
		}
		// Tick by tick until the next attempt: the loop looks at every
		// tick, so it dials at the first one that is due.
		for n := trace.dialCount(); trace.dialCount() == n; {
			if clk.Now().Sub(start) > time.Minute {
				t.Fatalf("no attempt %d within a minute of fake time", round+1)
			}
			clk.Advance(tick)
			trace.waitChecked(t, clk.Now())
		}
		backoff = min(2*backoff, maxBackoff)
	}
	var got []time.Duration
	trace.mu.Lock()
	for _, d := range trace.dials {
		got = append(got, d.Sub(start))
	}
	trace.mu.Unlock()
	want := []time.Duration{0, 500 * time.Millisecond, 1500 * time.Millisecond, 3500 * time.Millisecond, 7500 * time.Millisecond}
	if !slices.Equal(got, want) {
		t.Fatalf("attempts at %v, want %v", got, want)
	}
}
