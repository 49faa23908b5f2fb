package quicnet

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/quic-go/quic-go"
)

// Bounds on the handshakes the listener runs at once. Anyone who reaches
// the UDP port can start a handshake, paired or not, and each costs the
// listener a signature, a key exchange and some 170 KB until it completes
// or times out (HandshakeIdleTimeout, up to twice that in all): 300 that
// never finished held 50 MB. A LAN's devices need a few at a time; a
// restart of a busy node, one per peer.
const (
	// maxHandshakes bounds the handshakes in flight; more are refused at
	// once (CONNECTION_REFUSED) until some end.
	maxHandshakes = 64
	// maxHandshakesPerSource bounds those from one source: an IPv4
	// address, or an IPv6 /64 (one host can have as many addresses in
	// its /64 as it likes).
	maxHandshakesPerSource = 4
	// validateAbove is the number of handshakes in flight from which
	// every new one must first prove its source address with a QUIC Retry
	// (one round trip): a flood from spoofed addresses then costs one
	// stateless packet each. A source that has a handshake in flight
	// already must prove its address too, so a spoofer cannot use up the
	// places of a real device's address.
	validateAbove = 16
)

// errBusy refuses a handshake over the bounds; quic-go answers it with
// CONNECTION_REFUSED and keeps no state for it.
var errBusy = errors.New("quicnet: too many handshakes in flight")

// handshakes counts the listener's handshakes in flight, in total and per
// source, from quic-go's ConnContext (a new incoming connection) until
// the connection is accepted or ends.
type handshakes struct {
	max, perSource, validateAbove int

	mu       sync.Mutex
	total    int
	bySource map[netip.Prefix]int
	// For tests: the highest total seen, the handshakes refused for the
	// bounds and those admitted after proving their address.
	peak, refused, validated int
}

func newHandshakes(max, perSource, validateAbove int) *handshakes {
	return &handshakes{max: max, perSource: perSource, validateAbove: validateAbove, bySource: map[netip.Prefix]int{}}
}

// sourceOf returns the source a handshake is counted against.
func sourceOf(a net.Addr) netip.Prefix {
	var ip netip.Addr
	if u, ok := a.(*net.UDPAddr); ok {
		ip = u.AddrPort().Addr()
	} else if ap, err := netip.ParseAddrPort(a.String()); err == nil {
		ip = ap.Addr()
	}
	ip = ip.Unmap()
	bits := 32
	if ip.Is6() {
		bits = 64
	}
	p, _ := ip.Prefix(bits)
	return p
}

// mustValidate is quic-go's Transport.VerifySourceAddress: whether a new
// handshake from addr must first go through a Retry.
func (h *handshakes) mustValidate(addr net.Addr) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.total >= h.validateAbove || h.bySource[sourceOf(addr)] > 0
}

// slotKey finds a handshake's slot in its connection's context.
type slotKey struct{}

// slot is one handshake's place in the count, given back once.
type slot struct {
	once sync.Once
	h    *handshakes
	src  netip.Prefix
	addr net.Addr // the remote address
}

func (s *slot) release() {
	s.once.Do(func() {
		s.h.mu.Lock()
		defer s.h.mu.Unlock()
		s.h.total--
		if s.h.bySource[s.src]--; s.h.bySource[s.src] == 0 {
			delete(s.h.bySource, s.src)
		}
	})
}

// admit is quic-go's Transport.ConnContext: it takes a place for the new
// handshake, or refuses it when the total or its source is at the bound.
// The place is given back when the connection's context ends (the
// handshake failed or timed out, or the connection closed) or when it is
// accepted (accepted).
func (h *handshakes) admit(ctx context.Context, info *quic.ClientInfo) (context.Context, error) {
	src := sourceOf(info.RemoteAddr)
	h.mu.Lock()
	if h.total >= h.max || h.bySource[src] >= h.perSource {
		h.refused++
		h.mu.Unlock()
		return ctx, errBusy
	}
	h.total++
	h.bySource[src]++
	h.peak = max(h.peak, h.total)
	if info.AddrVerified {
		h.validated++
	}
	h.mu.Unlock()
	s := &slot{h: h, src: src, addr: info.RemoteAddr}
	context.AfterFunc(ctx, s.release)
	return context.WithValue(ctx, slotKey{}, s), nil
}

// remoteOf returns the remote address of the handshake whose context is
// ctx, nil if unknown.
func remoteOf(ctx context.Context) net.Addr {
	if s, ok := ctx.Value(slotKey{}).(*slot); ok {
		return s.addr
	}
	return nil
}

// accepted gives back the place of the handshake of a connection the
// listener accepted: it is a connection now, bounded by pairing.
func accepted(conn *quic.Conn) {
	if s, ok := conn.Context().Value(slotKey{}).(*slot); ok {
		s.release()
	}
}

// handshakeStats is what handshakes has counted.
type handshakeStats struct {
	total, fromOne, peak, refused, validated int
}

// stats returns the handshakes in flight, the most from one source, and
// the counts kept for tests.
func (h *handshakes) stats() handshakeStats {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := handshakeStats{total: h.total, peak: h.peak, refused: h.refused, validated: h.validated}
	for _, n := range h.bySource {
		s.fromOne = max(s.fromOne, n)
	}
	return s
}

// Logging of refused unpaired devices: anyone can dial with a new key
// each time, and each would be a line. At most unpairedLogBurst lines are
// written per unpairedLogWindow; the next line written says how many
// were left out.
const (
	unpairedLogBurst  = 5
	unpairedLogWindow = time.Minute
)

// logLimit is a fixed-window rate limit on a log line.
type logLimit struct {
	start   time.Time
	n       int
	dropped int
}

// allow reports whether a line may be written at now and, if so, how many
// were not written since the last one.
func (l *logLimit) allow(now time.Time) (ok bool, dropped int) {
	if now.Sub(l.start) >= unpairedLogWindow || now.Before(l.start) {
		l.start, l.n = now, 0
	}
	if l.n >= unpairedLogBurst {
		l.dropped++
		return false, 0
	}
	l.n++
	dropped, l.dropped = l.dropped, 0
	return true, dropped
}
