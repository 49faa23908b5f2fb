package quicnet

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
)

// bound sets the listener's bounds on handshakes; tests lower them.
func (h *handshakes) bound(max, perSource, validateAbove int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.max, h.perSource, h.validateAbove = max, perSource, validateAbove
}

// stuckFlood starts handshakes with n that never complete: each client
// stops at the listener's request for its certificate, having had the
// listener sign, until the test ends or release is called. Each client
// has its own socket, on the loopback address from; quic-go's Retry is
// answered as any client answers it.
type stuckFlood struct {
	// reached counts the clients stopped at their certificate, failed
	// those that did not get that far: refused, or timed out when the
	// listener, flooded, dropped their packets or its answers.
	reached, failed atomic.Int64
	wg              sync.WaitGroup
	hold            chan struct{}
	release         func()
}

func newStuckFlood(t *testing.T) *stuckFlood {
	f := &stuckFlood{hold: make(chan struct{})}
	f.release = sync.OnceFunc(func() { close(f.hold) })
	t.Cleanup(func() { f.release(); f.wg.Wait() })
	return f
}

func (f *stuckFlood) dial(t *testing.T, n *testNode, from netip.Addr) {
	t.Helper()
	udp, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(from, 0)))
	if err != nil {
		t.Fatalf("a socket on %s: %v", from, err)
	}
	tr := &quic.Transport{Conn: udp}
	conf := &tls.Config{
		MinVersion: tls.VersionTLS13, NextProtos: []string{ALPN}, ServerName: "drive-node", InsecureSkipVerify: true,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			f.reached.Add(1)
			<-f.hold
			return nil, errors.New("never finishes")
		},
	}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		defer udp.Close()
		defer tr.Close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		conn, err := tr.Dial(ctx, net.UDPAddrFromAddrPort(n.addr()), conf, quicConfig())
		if err == nil {
			conn.CloseWithError(0, "")
			return
		}
		f.failed.Add(1)
	}()
}

// flood starts perSource stuck handshakes from each of sources loopback
// addresses (127.0.1.1, …) and waits until each has stopped at the
// certificate or failed.
func (f *stuckFlood) flood(t *testing.T, n *testNode, sources, perSource int) {
	t.Helper()
	for s := 0; s < sources; s++ {
		from := netip.AddrFrom4([4]byte{127, 0, 1, byte(s + 1)})
		for i := 0; i < perSource; i++ {
			f.dial(t, n, from)
		}
	}
	want := int64(sources * perSource)
	waitCond(t, 30*time.Second, "every handshake stopped at its certificate or failed", func() (bool, string) {
		r, x := f.reached.Load(), f.failed.Load()
		return r+x == want, fmt.Sprintf("%d stopped at the certificate, %d failed, of %d", r, x, want)
	})
}

// TestHandshakesInFlightAreBounded: 300 clients from three addresses
// start handshakes and never finish them. The listener holds at most
// maxHandshakesPerSource from each address, refusing the rest at once,
// and has each address prove itself (Retry) while it has a handshake in
// flight; a paired device from another address connects meanwhile; and
// once the clients give up, every place is given back.
func TestHandshakesInFlightAreBounded(t *testing.T) {
	a, b := pairedTestNodes(t, memContent{}, memContent{})
	f := newStuckFlood(t)
	const sources, each = 3, 100
	start := time.Now()
	f.flood(t, a, sources, each)
	// What the clients saw, while no handshake the listener held can have
	// timed out to make room for another.
	if stuck := f.reached.Load(); time.Since(start) < quicConfig().HandshakeIdleTimeout && stuck > sources*maxHandshakesPerSource {
		t.Fatalf("%d of %d clients that never finish got as far as their certificate: the listener held as many handshakes, want at most %d from each of %d addresses",
			stuck, sources*each, maxHandshakesPerSource, sources)
	}
	s := a.t.hs.stats()
	if s.peak > sources*maxHandshakesPerSource || s.fromOne > maxHandshakesPerSource {
		t.Fatalf("%d handshakes in flight at most, %d from one address, want at most %d from each of %d", s.peak, s.fromOne, maxHandshakesPerSource, sources)
	}
	// The clients' count, not the listener's: a client may send its
	// Initial more than once before the refusal reaches it.
	if stuck := int(f.reached.Load()); stuck < s.peak || s.refused < sources*each-stuck {
		t.Fatalf("%d clients got as far as their certificate, %d attempts refused, %d in flight at most", stuck, s.refused, s.peak)
	}
	// Of the handshakes in flight from one address, only one, admitted
	// while there was none, may have skipped the Retry.
	if s.validated < s.peak-sources {
		t.Fatalf("%d handshakes admitted after proving their address, %d in flight at most: all but one per address must have", s.validated, s.peak)
	}
	t.Logf("%d in flight, %d attempts refused, %d admitted after a Retry", s.total, s.refused, s.validated)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := b.t.Dial(ctx, a.addr(), a.id.ID); err != nil {
		t.Fatalf("a paired device during the flood: %v", err)
	}
	if p := waitPeer(t, a); p.ID != b.id.ID {
		t.Fatalf("connected to %s", p.ID.Short())
	}
	released(t, a, f)
}

// released ends the flood's handshakes and waits for the listener to
// have given back every place.
func released(t *testing.T, n *testNode, f *stuckFlood) {
	t.Helper()
	f.release()
	waitCond(t, 15*time.Second, "every place given back", func() (bool, string) {
		total := n.t.hs.stats().total
		return total == 0, fmt.Sprintf("%d in flight", total)
	})
}

// TestHandshakesBoundedInTotal: from many addresses, the total is
// bounded too, and from validateAbove on each new client must answer a
// Retry first.
func TestHandshakesBoundedInTotal(t *testing.T) {
	a := newTestNode(t, memContent{})
	const max, perSource, validate = 8, 2, 4
	a.t.hs.bound(max, perSource, validate)
	f := newStuckFlood(t)
	f.flood(t, a, 20, 3)
	s := a.t.hs.stats()
	if s.peak != max || s.fromOne > perSource {
		t.Fatalf("%d handshakes in flight at most, %d from one address; want the bound %d, and at most %d", s.peak, s.fromOne, max, perSource)
	}
	if s.validated < max-validate {
		t.Fatalf("%d handshakes admitted after a Retry, want at least the %d past %d in flight", s.validated, max-validate, validate)
	}
	released(t, a, f)
}
