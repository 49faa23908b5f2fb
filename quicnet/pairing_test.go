package quicnet

import (
	"bytes"
	"context"
	"io"
	"testing"
	"time"

	"github.com/drive-node/drive-node/certs"
)

// An unpaired device reaches OnPairing over PairALPN, both ends export the
// same keying material, nothing reaches OnPeer, and the last bytes the
// listener writes arrive before the close.
func TestPairingConnectionNeedsNoPairing(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	served := make(chan []byte, 1)
	var unpaired []certs.DeviceID
	a := newTestNodeWith(t, nil, memContent{}, func(c *Config) {
		c.OnPairing = func(ctx context.Context, s *PairingStream) {
			ex, err := s.ExportKeyingMaterial("EXPORTER-test", 32)
			if err != nil {
				t.Error(err)
			}
			buf := make([]byte, 5)
			if _, err := io.ReadFull(s, buf); err != nil {
				t.Error(err)
			}
			s.Write(append([]byte("pong:"), ex...))
			served <- ex
		}
		c.OnUnpaired = func(id certs.DeviceID, addr string) { unpaired = append(unpaired, id) }
	})
	b := newTestNode(t, memContent{})
	var got []byte
	err := DialPairing(ctx, b.id, a.addr(), a.id.ID, func(ctx context.Context, s *PairingStream) error {
		if s.Peer != a.id.ID || s.Self != b.id.ID {
			t.Errorf("stream between %s and %s", s.Self.Short(), s.Peer.Short())
		}
		ex, err := s.ExportKeyingMaterial("EXPORTER-test", 32)
		if err != nil {
			return err
		}
		s.Write([]byte("ping!"))
		if got, err = io.ReadAll(s); err != nil {
			return err
		}
		if !bytes.Equal(got, append([]byte("pong:"), ex...)) {
			t.Errorf("got %q, want pong and the same exported material", got)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	<-served
	select {
	case p := <-a.peers:
		t.Fatalf("a pairing connection reached OnPeer: %s", p.ID.Short())
	default:
	}
	if len(unpaired) != 0 {
		t.Fatalf("a pairing connection was reported as unpaired: %v", unpaired)
	}
	// The normal protocol still requires pairing, and the refusal is
	// reported with the address.
	if _, err := b.t.Dial(ctx, a.addr(), a.id.ID); err == nil {
		t.Fatal("an unpaired device connected on the sync protocol")
	}
}

// Without OnPairing the listener does not speak PairALPN.
func TestPairingRefusedWhenNotServed(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a, b := newTestNode(t, memContent{}), newTestNode(t, memContent{})
	err := DialPairing(ctx, b.id, a.addr(), certs.DeviceID{}, func(context.Context, *PairingStream) error { return nil })
	if err == nil {
		t.Fatal("pairing connection accepted by a listener that serves no pairing")
	}
}

// Disconnect closes a live connection at once, and the unpaired device
// cannot come back.
func TestDisconnectUnpaired(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var reported = make(chan string, 4)
	a := newTestNodeWith(t, nil, memContent{}, func(c *Config) {
		c.OnUnpaired = func(id certs.DeviceID, addr string) { reported <- addr }
	})
	b := newTestNode(t, memContent{})
	a.pair(b)
	b.pair(a)
	if _, err := b.t.Dial(ctx, a.addr(), a.id.ID); err != nil {
		t.Fatal(err)
	}
	var pa, pb *Peer
	for _, c := range []struct {
		ch <-chan *Peer
		p  **Peer
	}{{a.peers, &pa}, {b.peers, &pb}} {
		select {
		case *c.p = <-c.ch:
		case <-ctx.Done():
			t.Fatal("no connection")
		}
	}
	a.unpair(b)
	if !a.t.Disconnect(b.id.ID, "unpaired") {
		t.Fatal("Disconnect found no connection")
	}
	for _, p := range []*Peer{pa, pb} {
		select {
		case <-p.ctx.Done():
		case <-ctx.Done():
			t.Fatal("connection still open after Disconnect")
		}
	}
	// The dialer's side of TLS 1.3 ends before the listener checks its
	// certificate: the refusal shows on the listener.
	for b.t.Connected(a.id.ID) && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond) // until b's side has let go
	}
	b.t.Dial(ctx, a.addr(), a.id.ID)
	select {
	case addr := <-reported:
		if addr == "" {
			t.Fatal("refusal reported without the address")
		}
		if a.t.Connected(b.id.ID) {
			t.Fatal("unpaired device reconnected")
		}
	case <-ctx.Done():
		t.Fatal("refusal not reported")
	}
}

// One source address gets one pairing connection at a time: a second
// from it is closed at once while the first is served, and a place is
// free again once it ends.
func TestPairingOnePlacePerSource(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	serving, release := make(chan struct{}, 1), make(chan struct{})
	a := newTestNodeWith(t, nil, memContent{}, func(c *Config) {
		c.OnPairing = func(ctx context.Context, s *PairingStream) {
			serving <- struct{}{}
			select {
			case <-release:
			case <-ctx.Done():
			}
		}
	})
	b := newTestNode(t, memContent{})
	open := func(ctx context.Context, s *PairingStream) error {
		_, err := s.Write([]byte("hello"))
		if err != nil {
			return err
		}
		_, err = io.ReadAll(s)
		return err
	}
	first := make(chan error, 1)
	go func() { first <- DialPairing(ctx, b.id, a.addr(), a.id.ID, open) }()
	<-serving
	if err := DialPairing(ctx, b.id, a.addr(), a.id.ID, open); err == nil {
		t.Fatal("a second pairing connection from the same address was served")
	}
	close(release)
	if err := <-first; err != nil {
		t.Fatalf("the first pairing connection: %v", err)
	}
	// The place is given back as the first connection's serving ends,
	// which may be a moment after its dialer returns.
	for {
		err := DialPairing(ctx, b.id, a.addr(), a.id.ID, open)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("no pairing connection served after the first ended: %v", err)
		}
	}
}
