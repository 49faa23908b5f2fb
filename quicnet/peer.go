package quicnet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/drive-node/drive-node/certs"
	"github.com/drive-node/drive-node/wire"
	"github.com/quic-go/quic-go"
)

// ErrNotFound is returned by Fetch when the peer does not have the content.
var ErrNotFound = errors.New("peer does not have that content")

// Peer is one live connection to a paired device.
type Peer struct {
	// ID is the peer's device ID, proven by the TLS handshake.
	ID certs.DeviceID

	t       *Transport
	conn    *quic.Conn
	dialed  bool
	started time.Time
	ctx     context.Context
	cancel  context.CancelFunc

	control     *quic.Stream
	controlOnce sync.Once
	controlCh   chan struct{} // closed when control is set
	sendSlot    chan struct{} // held by the one Send writing; a slot, so waiting for it honours ctx

	fetchSlots chan struct{}
}

// PublicKey returns the peer's public key, PKIX-encoded, as its
// certificate presented it in the handshake: the key whose SHA-256 is ID.
func (p *Peer) PublicKey() []byte {
	return p.conn.ConnectionState().TLS.PeerCertificates[0].RawSubjectPublicKeyInfo
}

func newPeer(t *Transport, conn *quic.Conn, id certs.DeviceID, dialed bool) *Peer {
	ctx, cancel := context.WithCancel(context.WithValue(t.ctx, requesterKey{}, id))
	watch := func() {
		select {
		case <-conn.Context().Done():
		case <-ctx.Done():
		}
		cancel()
	}
	if !t.spawn(watch) {
		cancel() // closing: register closes conn
	}
	return &Peer{
		ID: id, t: t, conn: conn, dialed: dialed, started: t.cfg.Clock.Now(), ctx: ctx, cancel: cancel,
		controlCh: make(chan struct{}), sendSlot: make(chan struct{}, 1), fetchSlots: make(chan struct{}, t.cfg.ContentStreams),
	}
}

// RemoteAddr returns the peer's UDP address.
func (p *Peer) RemoteAddr() net.Addr { return p.conn.RemoteAddr() }

// Context ends when the connection closes; Requester(ctx) names the peer.
func (p *Peer) Context() context.Context { return p.ctx }

func (p *Peer) close(code quic.ApplicationErrorCode, why string) {
	p.cancel()
	p.conn.CloseWithError(code, why)
}

// CloseWithError closes the connection, telling the peer why.
func (p *Peer) CloseWithError(why string) { p.close(codeProtocol, why) }

func (p *Peer) setControl(s *quic.Stream) bool {
	set := false
	p.controlOnce.Do(func() {
		p.control = s
		close(p.controlCh)
		set = true
	})
	return set
}

func (p *Peer) openControl() error {
	s, err := p.conn.OpenStreamSync(p.ctx)
	if err != nil {
		return fmt.Errorf("quicnet: %s: open control stream: %w", p.ID.Short(), err)
	}
	// The marker makes the stream visible to the peer at once.
	if _, err := s.Write([]byte{streamControl}); err != nil {
		return fmt.Errorf("quicnet: %s: open control stream: %w", p.ID.Short(), err)
	}
	p.setControl(s)
	return nil
}

func (p *Peer) waitControl(ctx context.Context) error {
	select {
	case <-p.controlCh:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-p.ctx.Done():
		return fmt.Errorf("quicnet: %s: connection closed", p.ID.Short())
	}
}

// Send writes m on the control stream. It is safe for concurrent use: one
// Send writes at a time, the others wait their turn.
//
// Send honours ctx while it is blocked, waiting for its turn or for the
// peer's flow control (a peer that does not read): it then returns an
// error wrapping ctx.Err(). A write that ctx cut short after part of the
// frame went out leaves the stream in the middle of a frame, which cannot
// be resumed: the connection is closed then, saying why.
func (p *Peer) Send(ctx context.Context, m wire.Message) error {
	if err := p.waitControl(ctx); err != nil {
		return err
	}
	select {
	case p.sendSlot <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("quicnet: send %s to %s: %w", m.Type(), p.ID.Short(), ctx.Err())
	case <-p.ctx.Done():
		return fmt.Errorf("quicnet: send %s to %s: connection closed", m.Type(), p.ID.Short())
	}
	defer func() { <-p.sendSlot }()
	w := &counted{rw: p.control}
	err := untilDone(ctx, p.control.SetWriteDeadline, func() error { return wire.WriteFrame(w, m) })
	if err != nil && ctx.Err() != nil {
		if w.n > 0 {
			p.close(codeProtocol, fmt.Sprintf("control stream: sending %s was cancelled mid-frame", m.Type()))
		}
		err = ctx.Err()
	}
	if err != nil {
		return fmt.Errorf("quicnet: send %s to %s: %w", m.Type(), p.ID.Short(), err)
	}
	return nil
}

// Recv reads the next message from the control stream. Only one goroutine
// may call it at a time.
//
// Recv honours ctx while it is blocked: it then returns an error wrapping
// ctx.Err(). A read that ctx cut short after part of a frame was read
// leaves the stream in the middle of a frame: the connection is closed
// then, saying why. One cut short before any byte leaves the stream as it
// was.
func (p *Peer) Recv(ctx context.Context) (wire.Message, error) {
	if err := p.waitControl(ctx); err != nil {
		return nil, err
	}
	r := &counted{rw: p.control}
	var m wire.Message
	err := untilDone(ctx, p.control.SetReadDeadline, func() (err error) {
		m, err = wire.ReadFrame(r)
		return err
	})
	if err != nil && ctx.Err() != nil {
		if r.n > 0 {
			p.close(codeProtocol, "control stream: a receive was cancelled mid-frame")
		}
		err = ctx.Err()
	}
	if err != nil {
		return nil, fmt.Errorf("quicnet: receive from %s: %w", p.ID.Short(), err)
	}
	return m, nil
}

// untilDone runs call, a blocking read or write on a stream, so that ctx
// ending cuts it short: setDeadline(now) makes the stream call return. The
// deadline is cleared again before untilDone returns, so the next call on
// the stream starts without one. call is not started when ctx is already
// done.
func untilDone(ctx context.Context, setDeadline func(time.Time) error, call func() error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		setDeadline(time.Now())
		close(fired)
	})
	err := call()
	if !stop() {
		<-fired
		setDeadline(time.Time{})
	}
	return err
}

// counted counts the bytes read or written through it, so that a call cut
// short can tell whether it left part of a frame behind.
type counted struct {
	rw io.ReadWriter
	n  int64
}

func (c *counted) Write(b []byte) (int, error) {
	n, err := c.rw.Write(b)
	c.n += int64(n)
	return n, err
}

func (c *counted) Read(b []byte) (int, error) {
	n, err := c.rw.Read(b)
	c.n += int64(n)
	return n, err
}

// acceptStreams routes the streams the peer opens: the control stream to
// Recv, content streams to the content server.
func (p *Peer) acceptStreams() {
	for {
		s, err := p.conn.AcceptStream(p.ctx)
		if err != nil {
			return
		}
		if !p.t.spawn(func() { p.routeStream(s) }) {
			s.CancelRead(0)
			s.CancelWrite(0)
			return
		}
	}
}

func (p *Peer) routeStream(s *quic.Stream) {
	var kind [1]byte
	s.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(s, kind[:]); err != nil {
		s.CancelRead(0)
		s.CancelWrite(0)
		return
	}
	s.SetReadDeadline(time.Time{})
	switch kind[0] {
	case streamControl:
		if !p.setControl(s) {
			p.t.log.Warn("peer opened a second control stream", "peer", p.ID.Short())
			s.CancelRead(0)
			s.CancelWrite(0)
		}
	case streamContent:
		p.serveContent(s)
	default:
		p.t.log.Warn("peer opened a stream of unknown kind", "peer", p.ID.Short(), "kind", kind[0])
		s.CancelRead(0)
		s.CancelWrite(0)
	}
}
