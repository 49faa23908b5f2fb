package quicnet

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/drive-node/drive-node/certs"
	"github.com/drive-node/drive-node/internal/clock"
	"github.com/drive-node/drive-node/internal/kick"
)

// Backoff bounds for redialling a peer that cannot be reached.
const (
	minBackoff = 500 * time.Millisecond
	maxBackoff = 30 * time.Second
)

// stableConnection is how long a connection must last to count as a
// working one: only then does its end reset the peer's backoff and make
// it due at once. A TLS 1.3 dialer finishes its handshake before the
// listener has checked its certificate, so a dial to a device that has not
// paired this one succeeds and the connection dies a moment later;
// counting that as a success redialled such a peer in a tight loop.
const stableConnection = 5 * time.Second

// target is an address worth dialling: a discovered peer (id known) or a
// static address (id zero until it answers).
type target struct {
	id      certs.DeviceID
	addrs   []netip.AddrPort
	static  string // HOST:PORT as given, resolved at each attempt
	backoff time.Duration
	next    time.Time
	dialing bool
}

// Redialer keeps connections to known peers up: it dials each target that
// is not connected, backing off exponentially while it fails, and uses the
// newest addresses it was told.
type Redialer struct {
	t       *Transport
	mu      sync.Mutex
	targets map[string]*target // by device ID string or static address
	kick    kick.Signal
	stable  time.Duration // stableConnection; tests shorten it
	clk     clock.Clock
	hooks   redialHooks
}

// redialHooks let a test follow a Redialer: each is nil or called, with
// the Redialer's clock reading, when it happens.
type redialHooks struct {
	// dialing: an attempt at a target starts.
	dialing func(now time.Time)
	// checked: the Redialer has looked which targets are due; next is
	// when the next one falls due, zero when none will without an event.
	checked func(now, next time.Time)
}

// NewRedialer starts a Redialer that works until ctx ends or the
// transport closes; Close waits for its attempts to end. One made once
// Close has started never dials.
func (t *Transport) NewRedialer(ctx context.Context) *Redialer {
	return t.newRedialer(ctx, t.cfg.Clock, redialHooks{})
}

// newRedialer is NewRedialer on clock clk, with hooks.
func (t *Transport) newRedialer(ctx context.Context, clk clock.Clock, hooks redialHooks) *Redialer {
	r := &Redialer{t: t, targets: map[string]*target{}, stable: stableConnection,
		clk: clk, hooks: hooks}
	t.mu.Lock()
	t.redialers = append(t.redialers, r)
	t.mu.Unlock()
	t.spawn(func() {
		// Attempts get this context: one resolving a name or dialling
		// ends when the transport closes, so Close does not wait on it.
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		defer context.AfterFunc(t.ctx, cancel)()
		r.loop(ctx)
	})
	return r
}

// Found records addresses at which device id was seen; a peer's changed
// address replaces the old one, and a not-connected peer is dialled soon.
func (r *Redialer) Found(id certs.DeviceID, addrs []netip.AddrPort) {
	if len(addrs) == 0 {
		return
	}
	r.mu.Lock()
	tg, ok := r.targets[id.String()]
	if !ok {
		tg = &target{id: id}
		r.targets[id.String()] = tg
	}
	if !sameAddrs(tg.addrs, addrs) {
		tg.addrs = append([]netip.AddrPort(nil), addrs...)
		tg.backoff, tg.next = 0, time.Time{} // a new address deserves an immediate try
	}
	r.mu.Unlock()
	r.poke()
}

// AddStatic adds a HOST:PORT that is dialled whenever no peer that
// answered there before is connected.
func (r *Redialer) AddStatic(hostport string) {
	r.mu.Lock()
	r.targets["static "+hostport] = &target{static: hostport}
	r.mu.Unlock()
	r.poke()
}

// lost tells that the connection to device id ended after lasting that
// long. After a stable connection its targets are due now with no
// backoff: the peer may already be back (a restart) at the address it
// had. A short-lived one counts as a failed dial: the backoff grows.
func (r *Redialer) lost(id certs.DeviceID, lasted time.Duration) {
	r.mu.Lock()
	for _, tg := range r.targets {
		if tg.id != id {
			continue
		}
		if lasted >= r.stable {
			tg.backoff, tg.next = 0, time.Time{}
		} else {
			tg.backOff(r.clk.Now())
		}
	}
	r.mu.Unlock()
	r.poke()
}

// backOff doubles tg's backoff, within its bounds, and puts the next
// attempt no earlier than that from now.
func (tg *target) backOff(now time.Time) {
	tg.backoff = min(max(2*tg.backoff, minBackoff), maxBackoff)
	tg.next = later(tg.next, now.Add(tg.backoff))
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func (r *Redialer) poke() {
	r.kick.Kick()
}

// loop dials what is due, then sleeps until the next target falls due or
// something changes (Found, AddStatic, lost, an attempt ending). With
// every peer connected nothing is due and no timer runs: an idle daemon
// is not woken to find that out again and again.
func (r *Redialer) loop(ctx context.Context) {
	timer := r.clk.NewTimer(time.Hour)
	timer.Stop()
	for {
		wait, due := r.dialDue(ctx)
		timer.Stop()
		select {
		case <-timer.C(): // fired while a kick woke the loop: stale
		default:
		}
		var fire <-chan time.Time
		if due {
			timer.Reset(wait)
			fire = timer.C()
		}
		select {
		case <-ctx.Done():
			return
		case <-fire:
		case <-r.kick.C():
		}
	}
}

// dialDue starts an attempt at every target that is due and returns how
// long until the next one falls due; due is false when none will without
// an event (every peer is connected, or every target is being dialled).
func (r *Redialer) dialDue(ctx context.Context) (wait time.Duration, due bool) {
	now := r.clk.Now()
	var next time.Time
	if r.hooks.checked != nil {
		defer func() { r.hooks.checked(now, next) }()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, tg := range r.targets {
		if tg.dialing || r.heldUp(tg) {
			continue
		}
		if now.Before(tg.next) {
			if next.IsZero() || tg.next.Before(next) {
				next = tg.next
			}
			continue
		}
		tg.dialing = true
		if !r.t.spawn(func() { r.attempt(ctx, tg) }) {
			tg.dialing = false
			return 0, false // closing
		}
		if r.hooks.dialing != nil {
			r.hooks.dialing(now)
		}
	}
	if next.IsZero() {
		return 0, false
	}
	return next.Sub(now), true
}

// heldUp reports whether tg's peer is connected, so that dialling it is
// pointless until lost says otherwise. A static address counts once it
// has answered with a device that is connected now. Callers hold r.mu.
func (r *Redialer) heldUp(tg *target) bool {
	return !tg.id.IsZero() && r.t.Connected(tg.id)
}

func (r *Redialer) attempt(ctx context.Context, tg *target) {
	r.mu.Lock()
	addrs, static, id := tg.addrs, tg.static, tg.id
	r.mu.Unlock()
	if static != "" {
		addrs = resolve(ctx, static)
	}
	if static != "" && !id.IsZero() && r.t.Connected(id) {
		r.mu.Lock()
		tg.dialing, tg.next = false, r.clk.Now().Add(2*time.Second)
		r.mu.Unlock()
		r.poke()
		return
	}
	expect := id
	if static != "" {
		expect = certs.DeviceID{} // whoever answers there, if paired
	}
	ok := false
	for _, a := range addrs {
		if ctx.Err() != nil {
			break
		}
		dctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		got, err := r.t.Dial(dctx, a, expect)
		cancel()
		if err == nil {
			ok = true
			if static != "" {
				r.mu.Lock()
				tg.id = got
				r.mu.Unlock()
			}
			break
		}
		r.t.log.Debug("dial failed", "addr", a.String(), "err", err)
	}
	// The loop looks again once this attempt has set the target's next
	// try: it has no timer for a target being dialled.
	defer r.poke()
	r.mu.Lock()
	defer r.mu.Unlock()
	tg.dialing = false
	now := r.clk.Now()
	if !ok {
		tg.backOff(now)
		return
	}
	// The backoff stays: a dial that succeeds may still be refused by the
	// other side, and only a connection that lasts resets it (lost).
	// Neither a static address nor a discovered peer is dialled while the
	// device that answered is connected (heldUp); the wait only matters
	// when the connection does not come up or lasts no time. For a
	// discovered peer: if the other side refused this connection
	// for one it still holds (from before this device restarted), the next
	// try comes soon, once that one is found dead. lost may have run
	// already and put the next try later.
	wait := minBackoff
	if static != "" {
		wait = 2 * time.Second
	}
	tg.next = later(tg.next, now.Add(max(wait, tg.backoff)))
}

func resolve(ctx context.Context, hostport string) []netip.AddrPort {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return nil
	}
	pn, err := net.DefaultResolver.LookupPort(ctx, "udp", port)
	if err != nil {
		return nil
	}
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return nil
	}
	var out []netip.AddrPort
	for _, ip := range ips {
		out = append(out, netip.AddrPortFrom(ip.Unmap(), uint16(pn)))
	}
	return out
}

func sameAddrs(a, b []netip.AddrPort) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
