package quicnet

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/drive-node/drive-node/certs"
	"github.com/drive-node/drive-node/internal/goroutines"
	"github.com/drive-node/drive-node/oplog"
	"github.com/drive-node/drive-node/wire"
)

// connectedPeers returns both ends of a connection whose control stream
// is open on both sides.
func connectedPeers(t *testing.T) (pa, pb *Peer) {
	t.Helper()
	a, b := pairedTestNodes(t, memContent{}, memContent{})
	ctx := context.Background()
	if _, err := a.t.Dial(ctx, b.addr(), b.id.ID); err != nil {
		t.Fatal(err)
	}
	pa, pb = waitPeer(t, a), waitPeer(t, b)
	if err := pa.Send(ctx, &wire.Hello{Version: wire.ProtocolVersion, Name: "a"}); err != nil {
		t.Fatal(err)
	}
	if _, err := pb.Recv(ctx); err != nil {
		t.Fatal(err)
	}
	return pa, pb
}

// closeReason waits for p's connection to close and returns the reason
// its peer gave.
func closeReason(t *testing.T, p *Peer) string {
	t.Helper()
	select {
	case <-p.conn.Context().Done():
	case <-time.After(5 * time.Second):
		t.Fatal("connection still open")
	}
	return context.Cause(p.conn.Context()).Error()
}

// bigOps is an Ops message of about 6 MiB: more than the control stream's
// initial receive window (2 MiB), so writing it blocks while the peer does
// not read.
func bigOps() *wire.Ops {
	m := &wire.Ops{}
	for i := range 2000 {
		m.Ops = append(m.Ops, oplog.Op{Origin: certs.DeviceID{1}, Seq: uint64(i + 1), Kind: oplog.KindDelete,
			Path: strings.Repeat("x", 3000)})
	}
	return m
}

// returnsWithin runs f and fails the test unless it returns within d.
func returnsWithin[T any](t *testing.T, d time.Duration, what string, f func() T) T {
	t.Helper()
	ch := make(chan T, 1)
	go func() { ch <- f() }()
	select {
	case v := <-ch:
		return v
	case <-time.After(d):
		t.Fatalf("%s: still blocked after %v", what, d)
		panic("unreachable")
	}
}

// TestRecvHonoursContextWhileBlocked: a Recv waiting for a frame returns
// ctx's error when ctx ends. Cut short before any byte, it leaves the
// stream usable; cut short in the middle of a frame, it closes the
// connection.
func TestRecvHonoursContextWhileBlocked(t *testing.T) {
	pa, pb := connectedPeers(t)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	err := returnsWithin(t, 5*time.Second, "Recv with nothing to read", func() error { _, err := pb.Recv(ctx); return err })
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Recv: %v, want the context's error", err)
	}
	// Nothing was read: the next frame arrives whole.
	bg := context.Background()
	if err := pa.Send(bg, &wire.Progress{Have: map[certs.DeviceID]uint64{{2}: 7}}); err != nil {
		t.Fatal(err)
	}
	m, err := pb.Recv(bg)
	if err != nil || m.(*wire.Progress).Have[certs.DeviceID{2}] != 7 {
		t.Fatalf("Recv after a cancelled Recv: %v %v", m, err)
	}

	// Half a frame: the header and a few bytes of a 100-byte body. It
	// reaches b before Recv starts, so Recv takes it at once and then
	// waits in a stream read for the rest: ctx ends then.
	received := pb.Stats().BytesReceived
	half := binary.BigEndian.AppendUint32(nil, 100)
	if _, err := pa.control.Write(append(half, byte(wire.TypeProgress), 0, 0)); err != nil {
		t.Fatal(err)
	}
	waitCond(t, 5*time.Second, "the half frame reaches b", func() (bool, string) {
		return pb.Stats().BytesReceived > received, "nothing received"
	})
	ctx, cancel = context.WithCancel(context.Background())
	recvd := make(chan error, 1)
	go func() { _, err := pb.Recv(ctx); recvd <- err }()
	waitCond(t, 5*time.Second, "Recv waits for the rest of the frame", func() (bool, string) {
		parked := goroutines.Count("select", "(*Peer).Recv", "(*ReceiveStream).Read") +
			goroutines.Count("chan receive", "(*Peer).Recv", "(*ReceiveStream).Read")
		return parked == 1, fmt.Sprintf("%d Recv calls parked in a read", parked)
	})
	cancel()
	err = returnsWithin(t, 5*time.Second, "Recv in the middle of a frame", func() error { return <-recvd })
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Recv: %v, want the context's error", err)
	}
	if why := closeReason(t, pa); !strings.Contains(why, "receive was cancelled mid-frame") {
		t.Fatalf("connection closed with %q, want the cancelled receive as reason", why)
	}
}

// TestSendHonoursContextWhileBlocked: a Send blocked on the peer's flow
// control (the peer does not read), or waiting for that Send to finish,
// returns ctx's error when ctx ends. The one that wrote part of its frame
// closes the connection; the one that wrote nothing does not.
func TestSendHonoursContextWhileBlocked(t *testing.T) {
	pa, _ := connectedPeers(t) // b never reads again
	big, cancelBig := context.WithCancel(context.Background())
	defer cancelBig()
	bigDone := make(chan error, 1)
	go func() { bigDone <- pa.Send(big, bigOps()) }()
	// The big Send holds the send slot and has written a good part of its
	// frame: more than a MiB has gone out since.
	sentBefore := pa.conn.ConnectionStats().BytesSent
	waitCond(t, 5*time.Second, "the big Send writes", func() (bool, string) {
		sent := pa.conn.ConnectionStats().BytesSent - sentBefore
		return len(pa.sendSlot) == 1 && sent > 1<<20, fmt.Sprintf("slot held %v, %d bytes sent", len(pa.sendSlot) == 1, sent)
	})

	// A second Send waits for its turn, and gives up with its ctx.
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	err := returnsWithin(t, 5*time.Second, "Send waiting for its turn", func() error {
		return pa.Send(ctx, &wire.Progress{Have: map[certs.DeviceID]uint64{{2}: 1}})
	})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Send: %v, want the context's error", err)
	}
	if pa.Context().Err() != nil {
		t.Fatal("a Send that wrote nothing closed the connection")
	}
	// The 6 MiB frame is three times the window of a peer that does not
	// read: it cannot have been sent.
	select {
	case err := <-bigDone:
		t.Fatalf("a 6 MiB frame to a peer that does not read was sent: %v", err)
	default:
	}

	cancelBig()
	err = returnsWithin(t, 5*time.Second, "Send blocked on flow control", func() error { return <-bigDone })
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Send: %v, want the context's error", err)
	}
	if why := closeReason(t, pa); !strings.Contains(why, "cancelled mid-frame") {
		t.Fatalf("connection closed with %q, want the cancelled send as reason", why)
	}
}
