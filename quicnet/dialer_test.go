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
	nexts   []time.Time // the next due time each of those looks found
}

func (tr *redialTrace) hooks() redialHooks {
	return redialHooks{
		dialing: func(now time.Time) { tr.mu.Lock(); tr.dials = append(tr.dials, now); tr.mu.Unlock() },
		checked: func(now, next time.Time) {
			tr.mu.Lock()
			tr.checked, tr.nexts = append(tr.checked, now), append(tr.nexts, next)
			tr.mu.Unlock()
		},
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

// waitAsleepUntil waits until the Redialer's last look found next due at
// due: its loop then sleeps until then, with a timer armed for it.
func (tr *redialTrace) waitAsleepUntil(t *testing.T, due time.Time) {
	t.Helper()
	waitCond(t, 5*time.Second, fmt.Sprintf("the redialer sleeps until %v", due), func() (bool, string) {
		tr.mu.Lock()
		defer tr.mu.Unlock()
		return len(tr.nexts) > 0 && tr.nexts[len(tr.nexts)-1].Equal(due), fmt.Sprintf("next due %v", tr.nexts)
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

// nextDue is when r's earliest target is next due.
func (r *Redialer) nextDue() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	var next time.Time
	for _, tg := range r.targets {
		if next.IsZero() || tg.next.Before(next) {
			next = tg.next
		}
	}
	return next
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
// is a fake one, moved on to each due time once the Redialer sleeps until
// it: the attempts must come exactly at 0, 0.5, 1.5, 3.5 and 7.5 s, each
// from the timer the Redialer armed for it.
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

	backoff := minBackoff
	for round := 1; round <= 5; round++ {
		// The attempt ended (refused, or its connection closed and lost
		// counted it): the backoff has grown.
		waitCond(t, 10*time.Second, fmt.Sprintf("attempt %d ends", round), func() (bool, string) { return r.settled(backoff) })
		if round == 5 {
			break
		}
		due := r.nextDue()
		trace.waitAsleepUntil(t, due)
		if n := trace.dialCount(); n != round {
			t.Fatalf("%d attempts before %v, want %d", n, due.Sub(start), round)
		}
		clk.Advance(due.Sub(clk.Now()))
		trace.waitChecked(t, due)
		if n := trace.dialCount(); n != round+1 {
			t.Fatalf("%d attempts at %v, want %d", n, due.Sub(start), round+1)
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

// TestRedialerSleepsWhileConnected: once the Redialer's only peer is
// connected it has nothing to dial until the connection ends, so it must
// arm no timer at all: an idle daemon is not woken to find that out. An
// hour of its clock later it has still dialled once.
func TestRedialerSleepsWhileConnected(t *testing.T) {
	a, b := pairedTestNodes(t, memContent{}, memContent{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	clk := clock.NewFake(time.Unix(1_000_000, 0))
	var trace redialTrace
	r := a.t.newRedialer(ctx, clk, trace.hooks())
	r.Found(b.id.ID, []netip.AddrPort{b.addr()})
	waitPeer(t, a)
	waitCond(t, 5*time.Second, "the attempt ends", func() (bool, string) { return r.settled(0) })
	trace.waitAsleepUntil(t, time.Time{})
	if n, _ := clk.Armed(); n != 0 {
		t.Fatalf("%d timers armed with every peer connected, want none", n)
	}
	clk.Advance(time.Hour)
	if n := trace.dialCount(); n != 1 {
		t.Fatalf("%d attempts, want 1", n)
	}
	if !a.t.Connected(b.id.ID) {
		t.Fatal("not connected")
	}
}
