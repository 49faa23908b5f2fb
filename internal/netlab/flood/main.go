// Command flood is a hostile device on a lab LAN: it starts QUIC
// handshakes with a drive-node listener at a steady rate, each as a device
// nobody paired (a new self-signed certificate every time). A share of
// them completes the handshake, which costs the listener a key exchange, a
// signature and a check of the certificate before it refuses the device;
// the rest are abandoned half-way: once the listener has answered the
// Initial (after a Retry, if it asks for one), the client goes silent, and
// the listener holds the handshake until it times out. The end-to-end test
// and the benchmark of a handshake flood run it on a third host.
//
//	flood --target ADDR [--rate N] [--duration D] [--abandon F] [--from IP,...] [--timeout D]
//
// Every second it prints one JSON line (netlab.FloodReport) with the
// counts so far, and a last one, with done set, once every handshake it
// started has ended. It stops after --duration, or on SIGINT or SIGTERM.
package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/qlog"
	"github.com/quic-go/quic-go/qlogwriter"
	"github.com/spf13/pflag"

	"github.com/drive-node/drive-node/internal/netlab"
	"github.com/drive-node/drive-node/quicnet"
)

func main() {
	// quic-go warns that it cannot enlarge the buffers of the sockets it
	// is given; a handshake needs none.
	os.Setenv("QUIC_GO_DISABLE_RECEIVE_BUFFER_WARNING", "true")
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "flood:", err)
		os.Exit(1)
	}
}

// counts is the report being filled in by the handshakes.
type counts struct {
	started, ended, completed, accepted, held, refused, retried, timedOut, failed atomic.Int64

	mu       sync.Mutex
	firstErr string
}

func (c *counts) report(began time.Time, rate float64, done bool) netlab.FloodReport {
	r := netlab.FloodReport{
		Elapsed: time.Since(began).Seconds(), Rate: rate, Done: done,
		Started: c.started.Load(), Ended: c.ended.Load(), Completed: c.completed.Load(), Accepted: c.accepted.Load(),
		Held: c.held.Load(), Refused: c.refused.Load(), Retried: c.retried.Load(), TimedOut: c.timedOut.Load(), Failed: c.failed.Load(),
	}
	c.mu.Lock()
	r.FirstError = c.firstErr
	c.mu.Unlock()
	return r
}

// config is what the flags say.
type config struct {
	target   netip.AddrPort
	rate     float64
	duration time.Duration
	abandon  float64
	from     []netip.Addr
	timeout  time.Duration
	// acceptWait is how long a connection the client has completed may
	// stay open before it counts as accepted: past the listener's
	// handshake timeout, a handshake it has not finished is over.
	acceptWait time.Duration
}

// run floods until the duration is over or ctx ends, printing reports to
// out.
func run(ctx context.Context, args []string, out io.Writer) error {
	fl := pflag.NewFlagSet("flood", pflag.ContinueOnError)
	target := fl.String("target", "", "the listener's UDP address, IP:PORT")
	rate := fl.Float64("rate", 1000, "handshakes started per second")
	duration := fl.Duration("duration", 0, "how long to flood; 0 until a signal")
	abandon := fl.Float64("abandon", 0.5, "share of the handshakes abandoned half-way, 0 to 1")
	from := fl.String("from", "", "comma-separated source addresses to use in turn; empty for the system's choice")
	timeout := fl.Duration("timeout", 2*time.Second, "how long a handshake may wait for an answer")
	if err := fl.Parse(args); err != nil {
		return err
	}
	cfg := config{rate: *rate, duration: *duration, abandon: *abandon, timeout: *timeout, acceptWait: 5 * time.Second}
	var err error
	if cfg.target, err = netip.ParseAddrPort(*target); err != nil {
		return fmt.Errorf("--target: %w", err)
	}
	if cfg.rate <= 0 || cfg.abandon < 0 || cfg.abandon > 1 || cfg.timeout <= 0 {
		return errors.New("--rate and --timeout must be positive and --abandon between 0 and 1")
	}
	for _, s := range strings.Split(*from, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return fmt.Errorf("--from: %w", err)
		}
		cfg.from = append(cfg.from, a)
	}
	if len(cfg.from) == 0 {
		cfg.from = []netip.Addr{{}}
	}
	return flood(ctx, cfg, out)
}

// flood starts handshakes at cfg.rate until the duration is over or ctx
// ends, then waits for those under way to end. Handshake i is abandoned
// when the running share of abandoned ones is below cfg.abandon, so the
// mix is even over any second. The abandoned and the completed ones each
// go round cfg.from, so that every source sends both kinds.
func flood(ctx context.Context, cfg config, out io.Writer) error {
	if cfg.duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.duration)
		defer cancel()
	}
	enc := json.NewEncoder(out)
	var c counts
	var wg sync.WaitGroup
	began := time.Now()
	// The handshakes due by now are started every millisecond: a ticker
	// at the rate itself would drift, and a late tick (a busy machine)
	// would lose its handshakes instead of catching up.
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	second := time.NewTicker(time.Second)
	defer second.Stop()
	var turn [2]int // the next source for handshakes completed and abandoned
	abandoned := 0
	for i := 0; ; {
		select {
		case <-ctx.Done():
			// The last report's time is the flood's, not the wait for its
			// last handshakes.
			r := c.report(began, cfg.rate, true)
			wg.Wait()
			final := c.report(began, cfg.rate, true)
			final.Elapsed = r.Elapsed
			return enc.Encode(final)
		case <-second.C:
			if err := enc.Encode(c.report(began, cfg.rate, false)); err != nil {
				return err
			}
		case <-tick.C:
		}
		for due := int(cfg.rate * time.Since(began).Seconds()); i < due; i++ {
			abandon, kind := float64(abandoned) < cfg.abandon*float64(i+1), 0
			if abandon {
				abandoned, kind = abandoned+1, 1
			}
			from := cfg.from[turn[kind]%len(cfg.from)]
			turn[kind]++
			c.started.Add(1)
			wg.Go(func() {
				handshake(cfg, from, abandon, &c)
				c.ended.Add(1)
			})
		}
	}
}

// handshake makes one handshake from from (a zero address: any) to the
// target and counts how it ended.
func handshake(cfg config, from netip.Addr, abandon bool, c *counts) {
	var laddr *net.UDPAddr
	if from.IsValid() {
		laddr = net.UDPAddrFromAddrPort(netip.AddrPortFrom(from, 0))
	}
	udp, err := net.ListenUDP("udp", laddr)
	if err != nil {
		c.fail(err)
		return
	}
	sock := &socket{PacketConn: udp, abandon: abandon}
	tr := &quic.Transport{Conn: sock}
	defer udp.Close() // quic-go leaves a socket it was given open
	defer tr.Close()

	var sentCert atomic.Bool
	conf := &tls.Config{
		MinVersion:         tls.VersionTLS13,
		NextProtos:         []string{quicnet.ALPN},
		ServerName:         "drive-node",
		InsecureSkipVerify: true, // any listener will do: the flood only wants its handshakes
		// X25519 alone: Go's default adds an ML-KEM share, whose key
		// generation made a sixth of the flood's own work.
		CurvePreferences: []tls.CurveID{tls.X25519},
		// Asked for once the listener has sent its certificate and
		// signature: the listener has done its costly part. An abandoned
		// handshake, silent already, ends here on this side.
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			if abandon {
				return nil, errors.New("flood: abandoned")
			}
			sentCert.Store(true)
			return newDevice()
		},
	}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.timeout)
	defer cancel()
	var seen trace
	qconf := &quic.Config{
		HandshakeIdleTimeout: cfg.timeout, MaxIdleTimeout: cfg.timeout,
		Tracer: func(context.Context, bool, quic.ConnectionID) qlogwriter.Trace { return &seen },
	}
	conn, err := tr.Dial(ctx, net.UDPAddrFromAddrPort(cfg.target), conf, qconf)
	if sock.retried.Load() {
		c.retried.Add(1)
	}
	switch {
	case abandon && seen.answered.Load():
		c.held.Add(1)
	case err == nil:
		// The client is done. The listener checks the certificate on
		// receiving the client's Finished, and then closes the
		// connection (refused) or confirms the handshake (accepted). One
		// too busy to do either in cfg.acceptWait has not answered.
		closed := true
		select {
		case <-conn.Context().Done():
		case <-time.After(cfg.acceptWait):
			closed = false
		}
		switch {
		case seen.confirmed.Load():
			c.accepted.Add(1)
		case closed:
			c.count(context.Cause(conn.Context()), true)
		default:
			c.timedOut.Add(1)
		}
		conn.CloseWithError(0, "")
	default:
		c.count(err, sentCert.Load())
	}
}

// trace is a handshake's qlog trace, of which it keeps only what the
// flood counts: whether a Handshake packet came from the listener (it
// answered the Initial with its certificate and signature, and so holds
// the handshake until it ends or times out), and whether the handshake
// was confirmed (the listener sent HANDSHAKE_DONE, which it does once it
// has accepted the client's certificate).
type trace struct {
	answered, confirmed atomic.Bool
}

func (t *trace) AddProducer() qlogwriter.Recorder { return t }

func (t *trace) RecordEvent(e qlogwriter.Event) {
	switch e := e.(type) {
	case qlog.PacketReceived:
		if e.Header.PacketType == qlog.PacketTypeHandshake {
			t.answered.Store(true)
		}
	case qlog.ConnectionStateUpdated:
		if e.State == qlog.ConnectionStateHandshakeConfirmed {
			t.confirmed.Store(true)
		}
	}
}

func (t *trace) Close() error { return nil }

// count counts a handshake that ended with err; sentCert says whether
// the client sent its certificate.
func (c *counts) count(err error, sentCert bool) {
	var te *quic.TransportError
	switch {
	case errors.As(err, &te) && te.Remote && te.ErrorCode == quic.ConnectionRefused:
		c.refused.Add(1)
	case errors.As(err, &te) && te.Remote && te.ErrorCode.IsCryptoError() && sentCert:
		c.completed.Add(1)
	case isTimeout(err):
		c.timedOut.Add(1)
	default:
		c.fail(err)
	}
}

// fail counts a handshake that failed for another reason than the
// listener's answer or silence.
func (c *counts) fail(err error) {
	c.failed.Add(1)
	c.mu.Lock()
	if c.firstErr == "" {
		c.firstErr = err.Error()
	}
	c.mu.Unlock()
}

func isTimeout(err error) bool {
	var idle *quic.IdleTimeoutError
	var hs *quic.HandshakeTimeoutError
	return errors.Is(err, context.DeadlineExceeded) || errors.As(err, &idle) || errors.As(err, &hs)
}

// socket is one handshake's UDP socket. For a handshake to abandon, it
// drops everything the client writes once the listener has answered with
// anything but a Retry: the listener then hears nothing more, as from a
// client that vanished after its Initial. It notes whether a Retry came.
type socket struct {
	net.PacketConn
	abandon         bool
	silent, retried atomic.Bool
}

func (s *socket) ReadFrom(p []byte) (int, net.Addr, error) {
	n, addr, err := s.PacketConn.ReadFrom(p)
	if n > 0 {
		if isRetry(p[0]) {
			s.retried.Store(true)
		} else if s.abandon {
			// Before quic-go sees the packet: no answer to it gets out.
			s.silent.Store(true)
		}
	}
	return n, addr, err
}

func (s *socket) WriteTo(p []byte, addr net.Addr) (int, error) {
	if s.silent.Load() {
		return len(p), nil
	}
	return s.PacketConn.WriteTo(p, addr)
}

// isRetry reports whether a datagram's first byte starts a QUIC version 1
// Retry packet: long header, fixed bit, type 3 (RFC 9000, 17.2.5). A Retry
// is never coalesced with other packets.
func isRetry(first byte) bool { return first&0xf0 == 0xf0 }

// newDevice returns a certificate for a new key, made the way a
// drive-node device makes its own: a device no listener has paired.
func newDevice() (*tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "drive-node"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, err
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}
