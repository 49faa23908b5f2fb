// Package quicnet is drive-node's transport: one QUIC connection per paired
// peer, TLS 1.3 with each device's self-signed certificate, a control
// stream for the sync protocol and parallel content streams. LAN discovery
// over mDNS is package quicnet/discovery.
//
// Guarantees:
//   - A sync connection (ALPN) exists only with a device whose certificate
//     key hashes to an ID the Paired callback accepts, checked by both the dialer and
//     the listener during every handshake, resumed ones included; an
//     unpaired device gets no stream and is logged once with its ID (again
//     only after maxLoggedUnpair others), in at most unpairedLogBurst lines
//     a minute.
//   - The listener runs at most maxHandshakes handshakes at once, and
//     maxHandshakesPerSource from one address; from validateAbove on, a
//     new one must first prove its address (QUIC Retry).
//   - At most one connection per peer is handed to OnPeer at a time. When
//     both sides dial at once, both keep the connection dialed by the
//     device with the smaller ID; otherwise a newer connection replaces an
//     older one (a peer that restarted reconnects at once).
//   - Frames are read with the limits of package wire.
//   - With Config.OnPairing set, the listener also answers PairALPN: such
//     a connection needs no pairing, gets no sync stream and no content,
//     only one stream handed to OnPairing, at most maxPairing at once,
//     each closed after pairingDeadline.
//
// The transport knows nothing of files: it moves wire messages and content
// bytes named by hash.
package quicnet

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/drive-node/drive-node/certs"
	"github.com/drive-node/drive-node/content"
	"github.com/drive-node/drive-node/internal/clock"
	"github.com/quic-go/quic-go"
)

// ALPN is the TLS application protocol of drive-node connections. It
// does not follow wire.ProtocolVersion: peers of another version connect
// and are refused at Hello with a clear error, rather than failing the
// handshake with one that does not say why (docs/protocol.md).
const ALPN = "drive-node/1"

// PairALPN is the TLS application protocol of pairing connections (see
// Config.OnPairing).
const PairALPN = "drive-node-pair/1"

// Stream kinds: the first byte of every stream says what it carries.
const (
	streamControl byte = 'C'
	streamContent byte = 'D'
)

// Application error codes used when closing connections.
const (
	codeNormal    quic.ApplicationErrorCode = 0
	codeDuplicate quic.ApplicationErrorCode = 1
	codeProtocol  quic.ApplicationErrorCode = 2
)

// codeStreamDone is the stream error code of a content stream ended early
// by either side: the reader needs no more, or the transfer was abandoned.
const codeStreamDone quic.StreamErrorCode = 0

// ErrUnpaired is wrapped by handshake errors caused by an unpaired device.
var ErrUnpaired = errors.New("device is not paired")

// ContentSource gives the bytes a peer asks for by hash.
type ContentSource interface {
	// OpenContent returns a reader of the content with hash h and its
	// size, or an error wrapping fs.ErrNotExist when this device does not
	// have it. The transport closes the reader.
	OpenContent(ctx context.Context, h content.Hash) (io.ReadSeekCloser, int64, error)
	// OpenChunkList returns a reader of exactly the bytes of the chunk
	// list of the content with hash h and the list's length; nil, 0 and
	// no error when this device has the content but no chunk list for it
	// (the peer fetches it whole); or an error wrapping fs.ErrNotExist
	// when this device does not have the content. The transport closes
	// the reader.
	OpenChunkList(ctx context.Context, h content.Hash) (io.ReadCloser, int64, error)
}

// BatchSource is a ContentSource that finds many contents at once for
// less than it finds them one at a time.
type BatchSource interface {
	ContentSource
	// Batch returns the source a batch request's contents hs are opened
	// from: the transport calls its OpenContent for each of hs in turn,
	// from one goroutine, with a context that ends when the request's
	// stream does.
	Batch(ctx context.Context, hs []content.Hash) ContentSource
}

// Config configures a Transport.
type Config struct {
	Identity *certs.Identity
	// Listen is the UDP address, e.g. ":22000" or "10.0.0.2:0".
	Listen string
	// PacketConn, when set, is the socket to use instead of listening on
	// Listen: a program embedding the engine can hand in one it opened
	// itself (bound to one interface, say, or an in-memory network). The
	// transport owns it from then on and closes it on Close.
	PacketConn net.PacketConn
	// Paired reports whether id may connect. It is called at every
	// handshake, so pairing takes effect without a restart.
	Paired func(id certs.DeviceID) bool
	// OnUnpaired, if not nil, is told of each device refused at a
	// handshake because it is not paired, with the address it came from
	// or was dialled at ("" if unknown). It runs in the handshake's path.
	OnUnpaired func(id certs.DeviceID, addr string)
	// OnPairing, if not nil, serves pairing connections (PairALPN) on the
	// listener: it runs in its own goroutine with the connection's one
	// stream, its context ends at pairingDeadline, and the transport
	// closes the connection when it returns.
	OnPairing func(ctx context.Context, s *PairingStream)
	// Content serves content requests from peers.
	Content ContentSource
	// OnPeer runs the sync protocol on a connection, in its own goroutine.
	// Its context ends when the connection closes or is replaced; it
	// should return then.
	OnPeer func(ctx context.Context, p *Peer)
	// ContentStreams bounds the content streams each peer connection
	// fetches on at once; default 16.
	ContentStreams int
	// Clock times the redial backoff and how long connections lasted;
	// default the system clock. (Stream deadlines are quic-go's, on the
	// system clock.)
	Clock  clock.Clock
	Logger *slog.Logger
}

// Transport owns the UDP socket, the QUIC listener and the connections.
type Transport struct {
	cfg  Config
	log  *slog.Logger
	udp  net.PacketConn
	tr   *quic.Transport
	ln   *quic.Listener
	qcfg *quic.Config
	// The bounds on content streams (see contentRequestWait); tests
	// shorten them.
	requestWait, openWait, streamIdle time.Duration

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	hs      *handshakes   // the listener's handshakes in flight
	pairing chan struct{} // a place for each pairing connection served
	// pairingFrom holds the sources with a pairing connection served (at
	// most one each), under mu.
	pairingFrom map[netip.Prefix]bool

	mu           sync.Mutex
	peers        map[certs.DeviceID]*Peer
	loggedUnpair map[certs.DeviceID]bool // at most maxLoggedUnpair
	unpairedLog  logLimit
	redialers    []*Redialer // told when a connection starts or ends
}

// maxLoggedUnpair bounds the set of unpaired devices already logged:
// anyone who reaches the UDP port can dial with new keys. A full set is
// emptied, so a device in it may be logged once more.
const maxLoggedUnpair = 256

// quicConfig is tuned for a LAN: receive windows that let one stream fill a
// gigabit link at LAN round-trip times, keep-alives so idle peers stay
// connected, and an idle timeout that notices a peer gone without a word
// (a crash, a cut cable) within 30 s. A peer that stops or restarts says
// so at once (CONNECTION_CLOSE, or its new connection replaces the old
// one), so the timeout only bounds the silent case. The keep-alive is
// half the timeout, the longest quic-go allows: each one wakes both
// daemons, and at every 5 s they were a good part of what two idle
// daemons cost.
func quicConfig() *quic.Config {
	return &quic.Config{
		HandshakeIdleTimeout:           5 * time.Second,
		MaxIdleTimeout:                 quicIdleTimeout,
		KeepAlivePeriod:                quicIdleTimeout / 2,
		InitialStreamReceiveWindow:     2 << 20,
		MaxStreamReceiveWindow:         16 << 20,
		InitialConnectionReceiveWindow: 4 << 20,
		MaxConnectionReceiveWindow:     32 << 20,
		MaxIncomingStreams:             256,
		MaxIncomingUniStreams:          -1,
	}
}

// quicIdleTimeout is how long a connection that hears nothing from its
// peer lives (see quicConfig).
const quicIdleTimeout = 30 * time.Second

// udpBuffer is the socket buffer size requested; the kernel caps it at
// net.core.rmem_max / wmem_max unless the process may override that.
const udpBuffer = 8 << 20

// Listen opens the UDP socket and starts accepting connections.
func Listen(ctx context.Context, cfg Config) (*Transport, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.ContentStreams <= 0 {
		cfg.ContentStreams = 16
	}
	cfg.Clock = clock.Or(cfg.Clock)
	udp, err := listenUDP(cfg)
	if err != nil {
		return nil, err
	}
	t := &Transport{
		cfg: cfg, log: cfg.Logger, udp: udp, qcfg: quicConfig(), requestWait: contentRequestWait, openWait: streamOpenWait, streamIdle: streamIdle,
		peers: map[certs.DeviceID]*Peer{}, loggedUnpair: map[certs.DeviceID]bool{},
		hs: newHandshakes(maxHandshakes, maxHandshakesPerSource, validateAbove), pairing: make(chan struct{}, maxPairing), pairingFrom: map[netip.Prefix]bool{},
	}
	// A reset key derived from the device key lets a restarted node reset
	// connections its previous run left in peers, so they reconnect at once.
	key := resetKey(cfg.Identity)
	// Both hooks run for incoming connections only, before any
	// cryptography: a handshake over the bounds costs one packet.
	t.tr = &quic.Transport{Conn: udp, StatelessResetKey: &key, VerifySourceAddress: t.hs.mustValidate, ConnContext: t.hs.admit}
	t.ln, err = t.tr.Listen(t.listenerTLSConfig(), t.qcfg)
	if err != nil {
		udp.Close()
		return nil, fmt.Errorf("quicnet: listen on %s: %w", udp.LocalAddr(), err)
	}
	t.ctx, t.cancel = context.WithCancel(context.Background())
	t.spawn(t.acceptLoop)
	return t, nil
}

// listenUDP returns the socket cfg names: the one handed in, or a new one
// listening on cfg.Listen with large buffers.
func listenUDP(cfg Config) (net.PacketConn, error) {
	if cfg.PacketConn != nil {
		return cfg.PacketConn, nil
	}
	addr, err := net.ResolveUDPAddr("udp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("quicnet: listen address %q: %w", cfg.Listen, err)
	}
	udp, err := net.ListenUDP("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("quicnet: listen on %s: %w", cfg.Listen, err)
	}
	udp.SetReadBuffer(udpBuffer)
	udp.SetWriteBuffer(udpBuffer)
	return udp, nil
}

func resetKey(id *certs.Identity) quic.StatelessResetKey {
	h := sha256.New()
	h.Write([]byte("drive-node stateless reset key"))
	der, _ := x509.MarshalPKCS8PrivateKey(id.Certificate.PrivateKey)
	h.Write(der)
	var key quic.StatelessResetKey
	copy(key[:], h.Sum(nil))
	return key
}

// Addr returns the local UDP address. For a socket handed in through
// Config.PacketConn whose address is not a UDP one, it is the address its
// String parses to, or the zero address.
func (t *Transport) Addr() *net.UDPAddr {
	switch a := t.udp.LocalAddr().(type) {
	case *net.UDPAddr:
		return a
	default:
		ap, _ := netip.ParseAddrPort(a.String())
		return net.UDPAddrFromAddrPort(ap)
	}
}

// Close closes every connection and the socket, and waits for the
// transport's goroutines to return: OnPeer calls, Redialer attempts and
// the serving of content streams (a Config.Content call that is running
// is waited for; its context has ended). No call into Config is made
// after Close returns, and Dial fails from the moment Close starts.
func (t *Transport) Close() error {
	t.mu.Lock()
	t.cancel() // under mu: spawn starts nothing from here on
	for _, p := range t.peers {
		p.conn.CloseWithError(codeNormal, "shutting down")
	}
	t.mu.Unlock()
	t.ln.Close()
	err := t.tr.Close()
	t.wg.Wait()
	// quic-go leaves a socket it was given open.
	return errors.Join(err, t.udp.Close())
}

// spawn runs f in a goroutine that Close waits for, unless the transport
// is closing: then f does not run and spawn reports false. Every
// goroutine the transport starts goes through spawn, so none is added to
// the WaitGroup once Close waits on it (sync.WaitGroup forbids an Add
// from zero concurrent with Wait) and none outlives Close.
func (t *Transport) spawn(f func()) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ctx.Err() != nil {
		return false
	}
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		f()
	}()
	return true
}

// tlsConfig verifies the peer's certificate against the pairing list and,
// when expect is not zero, against that one ID.
//
// The check is in VerifyConnection, which crypto/tls runs on every
// handshake: VerifyPeerCertificate is skipped when a session is resumed,
// which would let a device unpaired since it last connected back in with
// its session ticket. Resumption saves nothing worth having on a LAN, so
// tickets are off on both sides (the listener issues none, the dialer
// offers none); the check holds even for a peer that offers one anyway.
func (t *Transport) tlsConfig(expect certs.DeviceID) *tls.Config {
	return &tls.Config{
		Certificates:           []tls.Certificate{t.cfg.Identity.Certificate},
		MinVersion:             tls.VersionTLS13,
		NextProtos:             []string{ALPN},
		ServerName:             "drive-node",
		ClientAuth:             tls.RequireAnyClientCert,
		InsecureSkipVerify:     true, // trust is the pinned key, checked below
		SessionTicketsDisabled: true,
		VerifyConnection:       func(cs tls.ConnectionState) error { return t.verify(cs, expect, "") },
	}
}

// listenerTLSConfig is tlsConfig for the listener: it learns each
// handshake's remote address, and offers PairALPN when pairing is served.
func (t *Transport) listenerTLSConfig() *tls.Config {
	base := t.tlsConfig(certs.DeviceID{})
	if t.cfg.OnPairing != nil {
		base.NextProtos = []string{ALPN, PairALPN}
	}
	base.GetConfigForClient = func(chi *tls.ClientHelloInfo) (*tls.Config, error) {
		addr := ""
		if a := remoteOf(chi.Context()); a != nil {
			addr = a.String()
		}
		c := base.Clone()
		c.GetConfigForClient = nil
		c.VerifyConnection = func(cs tls.ConnectionState) error { return t.verify(cs, certs.DeviceID{}, addr) }
		return c, nil
	}
	return base
}

func (t *Transport) verify(cs tls.ConnectionState, expect certs.DeviceID, addr string) error {
	chain := cs.PeerCertificates
	if len(chain) == 0 {
		return errors.New("quicnet: peer sent no certificate")
	}
	cert := chain[0]
	id := certs.DeviceIDFromCertificate(cert)
	if id == t.cfg.Identity.ID {
		return errors.New("quicnet: connected to myself")
	}
	if !expect.IsZero() && id != expect {
		return fmt.Errorf("quicnet: expected device %s, got %s", expect.Short(), id.Short())
	}
	if cs.NegotiatedProtocol == PairALPN && t.cfg.OnPairing != nil {
		// Pairing is what such a connection is for; it is served nothing
		// else (acceptLoop).
		return nil
	}
	if !t.cfg.Paired(id) {
		if t.cfg.OnUnpaired != nil {
			t.cfg.OnUnpaired(id, addr)
		}
		t.mu.Lock()
		// A device left out by the rate limit is not marked logged: it is
		// logged when it comes back once lines may be written again.
		log, dropped := false, 0
		if !t.loggedUnpair[id] {
			if log, dropped = t.unpairedLog.allow(t.cfg.Clock.Now()); log {
				if len(t.loggedUnpair) >= maxLoggedUnpair {
					clear(t.loggedUnpair)
				}
				t.loggedUnpair[id] = true
			}
		}
		t.mu.Unlock()
		if log {
			args := []any{"id", id.String()}
			if dropped > 0 {
				args = append(args, "others_not_logged", dropped)
			}
			t.log.Warn("refused a device that is not paired; to trust it run: drive-node pair ID", args...)
		}
		return fmt.Errorf("quicnet: %s: %w", id.Short(), ErrUnpaired)
	}
	return nil
}

func (t *Transport) acceptLoop() {
	for {
		conn, err := t.ln.Accept(t.ctx)
		if err != nil {
			return
		}
		accepted(conn)
		if conn.ConnectionState().TLS.NegotiatedProtocol == PairALPN {
			t.servePairing(conn)
			continue
		}
		if !t.spawn(func() { t.register(conn, false) }) {
			conn.CloseWithError(codeNormal, "shutting down")
			return
		}
	}
}

// Dial connects to addr. A non-zero expect requires that device; a zero
// one accepts any paired device (static peer addresses). Dialing a peer
// that is already connected returns at once without a new connection. It
// returns the ID of the device that answered. Once Close has started it
// fails with an error wrapping net.ErrClosed.
func (t *Transport) Dial(ctx context.Context, addr netip.AddrPort, expect certs.DeviceID) (certs.DeviceID, error) {
	if t.ctx.Err() != nil {
		return certs.DeviceID{}, fmt.Errorf("quicnet: dial %s: transport closed: %w", addr, net.ErrClosed)
	}
	if !expect.IsZero() && t.Connected(expect) {
		return expect, nil
	}
	conf := t.tlsConfig(expect)
	conf.VerifyConnection = func(cs tls.ConnectionState) error { return t.verify(cs, expect, addr.String()) }
	conn, err := t.tr.Dial(ctx, net.UDPAddrFromAddrPort(addr), conf, t.qcfg)
	if err != nil {
		return certs.DeviceID{}, fmt.Errorf("quicnet: dial %s: %w", addr, err)
	}
	id := certs.DeviceIDFromCertificate(conn.ConnectionState().TLS.PeerCertificates[0])
	if !t.spawn(func() { t.register(conn, true) }) {
		conn.CloseWithError(codeNormal, "shutting down")
		return certs.DeviceID{}, fmt.Errorf("quicnet: dial %s: %s answered as the transport closed: %w", addr, id.Short(), net.ErrClosed)
	}
	return id, nil
}

// Disconnect closes the connection to id, if there is one, telling the
// peer why; it reports whether there was one. A device unpaired meanwhile
// cannot come back: every handshake checks Config.Paired.
func (t *Transport) Disconnect(id certs.DeviceID, why string) bool {
	t.mu.Lock()
	p, ok := t.peers[id]
	t.mu.Unlock()
	if ok {
		p.close(codeNormal, why)
	}
	return ok
}

// Connected reports whether id has a live connection.
func (t *Transport) Connected(id certs.DeviceID) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	_, ok := t.peers[id]
	return ok
}

// simultaneous is how close in time two connections to one peer, one
// dialed and one accepted, must be to count as both sides dialing at once.
const simultaneous = 3 * time.Second

// register decides whether conn survives and, if so, runs OnPeer on it
// until it closes.
func (t *Transport) register(conn *quic.Conn, dialed bool) {
	id := certs.DeviceIDFromCertificate(conn.ConnectionState().TLS.PeerCertificates[0])
	p := newPeer(t, conn, id, dialed)
	t.mu.Lock()
	if t.ctx.Err() != nil {
		t.mu.Unlock()
		conn.CloseWithError(codeNormal, "shutting down")
		return
	}
	if old, ok := t.peers[id]; ok {
		keepOld := false
		// Two connections made in the same direction are never a
		// simultaneous dial: the peer (or this side) dialed again, most
		// likely after a restart, and the older one is dead.
		if old.dialed != p.dialed && p.started.Sub(old.started) < simultaneous {
			// Both dialed at once: both sides keep the connection dialed
			// by the smaller device ID.
			selfSmaller := bytes.Compare(t.cfg.Identity.ID[:], id[:]) < 0
			keepOld = old.dialed == selfSmaller
		}
		if keepOld {
			t.mu.Unlock()
			conn.CloseWithError(codeDuplicate, "duplicate connection")
			return
		}
		old.close(codeDuplicate, "replaced by a newer connection")
	}
	t.peers[id] = p
	redialers := t.redialers
	t.mu.Unlock()
	// A Redialer armed for this peer's next try can drop that timer now.
	for _, r := range redialers {
		r.poke()
	}

	t.log.Info("peer connected", "peer", id.Short(), "addr", conn.RemoteAddr().String(), "dialed", dialed)
	// Refused only when Close has started, which closed conn: it was in
	// t.peers then.
	t.spawn(p.acceptStreams)
	if dialed {
		if err := p.openControl(); err != nil {
			p.close(codeProtocol, "no control stream")
		}
	}
	t.cfg.OnPeer(p.ctx, p)
	p.close(codeNormal, "done")
	t.mu.Lock()
	if t.peers[id] == p {
		delete(t.peers, id)
	}
	redialers = t.redialers
	t.mu.Unlock()
	lasted := t.cfg.Clock.Now().Sub(p.started)
	t.log.Info("peer disconnected", "peer", id.Short(), "addr", conn.RemoteAddr().String(), "lasted", lasted.Round(time.Millisecond))
	// After a connection that lasted, the peer may be back already (a
	// restart): the Redialers dial now rather than at the next due time.
	for _, r := range redialers {
		r.lost(id, lasted)
	}
}
