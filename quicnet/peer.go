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
	sendMu      sync.Mutex

	fetchSlots chan struct{}
}

func newPeer(t *Transport, conn *quic.Conn, id certs.DeviceID, dialed bool) *Peer {
	ctx, cancel := context.WithCancel(t.ctx)
	go func() {
		select {
		case <-conn.Context().Done():
		case <-ctx.Done():
		}
		cancel()
	}()
	return &Peer{
		ID: id, t: t, conn: conn, dialed: dialed, started: time.Now(), ctx: ctx, cancel: cancel,
		controlCh: make(chan struct{}), fetchSlots: make(chan struct{}, t.cfg.ContentStreams),
	}
}

// RemoteAddr returns the peer's UDP address.
func (p *Peer) RemoteAddr() net.Addr { return p.conn.RemoteAddr() }

// Context ends when the connection closes.
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

// Send writes m on the control stream. It is safe for concurrent use.
func (p *Peer) Send(ctx context.Context, m wire.Message) error {
	if err := p.waitControl(ctx); err != nil {
		return err
	}
	p.sendMu.Lock()
	defer p.sendMu.Unlock()
	if err := wire.WriteFrame(p.control, m); err != nil {
		return fmt.Errorf("quicnet: send %s to %s: %w", m.Type(), p.ID.Short(), err)
	}
	return nil
}

// Recv reads the next message from the control stream. Only one goroutine
// may call it at a time.
func (p *Peer) Recv(ctx context.Context) (wire.Message, error) {
	if err := p.waitControl(ctx); err != nil {
		return nil, err
	}
	m, err := wire.ReadFrame(p.control)
	if err != nil {
		return nil, fmt.Errorf("quicnet: receive from %s: %w", p.ID.Short(), err)
	}
	return m, nil
}

// acceptStreams routes the streams the peer opens: the control stream to
// Recv, content streams to the content server.
func (p *Peer) acceptStreams() {
	for {
		s, err := p.conn.AcceptStream(p.ctx)
		if err != nil {
			return
		}
		go p.routeStream(s)
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
