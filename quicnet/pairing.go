package quicnet

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"time"

	"github.com/drive-node/drive-node/certs"
	"github.com/quic-go/quic-go"
)

// maxPairing bounds the pairing connections served at once; one more is
// closed at once.
const maxPairing = 4

// pairingDeadline bounds a pairing connection, from its handshake's end
// to its close, on both sides.
const pairingDeadline = 15 * time.Second

// pairingOpen bounds how long a pairing connection may take to open its
// stream: one that holds a place without asking gives it up soon.
const pairingOpen = 3 * time.Second

// codeBusy closes a pairing connection over the bound.
const codeBusy quic.ApplicationErrorCode = 3

// PairingStream is the one stream of a pairing connection (PairALPN): a
// TLS 1.3 channel between this device and Peer, which presented a
// certificate but need not be paired. Reads and writes take deadlines.
type PairingStream struct {
	*quic.Stream
	conn *quic.Conn
	// Self is this device; Peer the device whose certificate the
	// handshake presented.
	Self, Peer certs.DeviceID
	// Addr is the other device's address.
	Addr net.Addr
}

// ExportKeyingMaterial returns n bytes exported from the connection's TLS
// session with label (RFC 8446, 7.5): equal on both ends, different on
// every other session.
func (s *PairingStream) ExportKeyingMaterial(label string, n int) ([]byte, error) {
	cs := s.conn.ConnectionState().TLS
	b, err := cs.ExportKeyingMaterial(label, nil, n)
	if err != nil {
		return nil, fmt.Errorf("quicnet: pairing with %s: export keying material: %w", s.Peer.Short(), err)
	}
	return b, nil
}

func newPairingStream(conn *quic.Conn, st *quic.Stream, self certs.DeviceID) *PairingStream {
	return &PairingStream{Stream: st, conn: conn, Self: self,
		Peer: certs.DeviceIDFromCertificate(conn.ConnectionState().TLS.PeerCertificates[0]), Addr: conn.RemoteAddr()}
}

// servePairing hands a pairing connection's stream to OnPairing, unless
// maxPairing are served already.
func (t *Transport) servePairing(conn *quic.Conn) {
	// One place per source address: one host cannot hold them all.
	src := sourceOf(conn.RemoteAddr())
	t.mu.Lock()
	taken := t.pairingFrom[src]
	t.pairingFrom[src] = true
	t.mu.Unlock()
	if taken {
		conn.CloseWithError(codeBusy, "a pairing attempt from this address is under way")
		return
	}
	release := func() {
		t.mu.Lock()
		delete(t.pairingFrom, src)
		t.mu.Unlock()
	}
	select {
	case t.pairing <- struct{}{}:
	default:
		release()
		conn.CloseWithError(codeBusy, "too many pairing attempts at once")
		return
	}
	ok := t.spawn(func() {
		defer func() { <-t.pairing; release() }()
		ctx, cancel := context.WithTimeout(t.ctx, pairingDeadline)
		defer cancel()
		defer conn.CloseWithError(codeNormal, "done")
		actx, acancel := context.WithTimeout(ctx, pairingOpen)
		st, err := conn.AcceptStream(actx)
		acancel()
		if err != nil {
			return
		}
		defer st.Close()
		st.SetDeadline(time.Now().Add(pairingDeadline))
		t.cfg.OnPairing(ctx, newPairingStream(conn, st, t.cfg.Identity.ID))
		// What OnPairing wrote last reaches the dialer before the close:
		// its side ends first (or the deadline comes).
		st.Close()
		io.Copy(io.Discard, io.LimitReader(st, 1<<16))
	})
	if !ok {
		<-t.pairing
		release()
		conn.CloseWithError(codeNormal, "shutting down")
	}
}

// DialPairing opens a pairing connection from a socket of its own to the
// device at addr (any device if expect is zero, else that one) and runs fn
// on its one stream; the connection is closed when fn returns, and within
// pairingDeadline at the latest. It needs no Transport: a device whose
// daemon does not run joins with it too.
func DialPairing(ctx context.Context, id *certs.Identity, addr netip.AddrPort, expect certs.DeviceID, fn func(ctx context.Context, s *PairingStream) error) error {
	ctx, cancel := context.WithTimeout(ctx, pairingDeadline)
	defer cancel()
	udp, err := net.ListenUDP("udp", nil)
	if err != nil {
		return fmt.Errorf("quicnet: pairing with %s: %w", addr, err)
	}
	tr := &quic.Transport{Conn: udp}
	defer udp.Close()
	defer tr.Close()
	conf := &tls.Config{
		Certificates:           []tls.Certificate{id.Certificate},
		MinVersion:             tls.VersionTLS13,
		NextProtos:             []string{PairALPN},
		ServerName:             "drive-node",
		InsecureSkipVerify:     true, // the exchange run over it authenticates the peer
		SessionTicketsDisabled: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("quicnet: peer sent no certificate")
			}
			got := certs.DeviceIDFromCertificate(cs.PeerCertificates[0])
			switch {
			case got == id.ID:
				return errors.New("quicnet: connected to myself")
			case !expect.IsZero() && got != expect:
				return fmt.Errorf("quicnet: expected device %s, got %s", expect.Short(), got.Short())
			}
			return nil
		},
	}
	conn, err := tr.Dial(ctx, net.UDPAddrFromAddrPort(addr), conf, quicConfig())
	if err != nil {
		return fmt.Errorf("quicnet: pairing with %s: %w", addr, err)
	}
	defer conn.CloseWithError(codeNormal, "done")
	st, err := conn.OpenStreamSync(ctx)
	if err != nil {
		return fmt.Errorf("quicnet: pairing with %s: open stream: %w", addr, err)
	}
	defer st.Close()
	if d, ok := ctx.Deadline(); ok {
		st.SetDeadline(d)
	}
	return fn(ctx, newPairingStream(conn, st, id.ID))
}
