package quicnet

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drive-node/drive-node/certs"
	"github.com/drive-node/drive-node/content"
	"github.com/drive-node/drive-node/internal/clock"
	"github.com/drive-node/drive-node/wire"
	"github.com/quic-go/quic-go"
)

// memContent serves contents from a map.
type memContent map[content.Hash][]byte

func (m memContent) OpenContent(_ context.Context, h content.Hash) (io.ReadSeekCloser, int64, error) {
	b, ok := m[h]
	if !ok {
		return nil, 0, fs.ErrNotExist
	}
	return nopCloser{bytes.NewReader(b)}, int64(len(b)), nil
}

// OpenChunkList implements ContentSource: no content has a chunk list.
func (m memContent) OpenChunkList(_ context.Context, h content.Hash) (io.ReadCloser, int64, error) {
	if _, ok := m[h]; !ok {
		return nil, 0, fs.ErrNotExist
	}
	return nil, 0, nil
}

type nopCloser struct{ *bytes.Reader }

func (nopCloser) Close() error { return nil }

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

type testNode struct {
	id     *certs.Identity
	t      *Transport
	logs   *syncBuffer
	mu     sync.Mutex
	paired map[certs.DeviceID]bool
	peers  chan *Peer
	// verifying, when set, is called as a handshake asks Paired, before
	// it gets its answer.
	verifying func()
}

func newTestNode(t *testing.T, data ContentSource) *testNode {
	t.Helper()
	return newTestNodeWith(t, nil, data, nil)
}

// newTestNodeAs is newTestNode with a given identity: the same device in a
// new process.
func newTestNodeAs(t *testing.T, id *certs.Identity, data ContentSource) *testNode {
	t.Helper()
	return newTestNodeWith(t, id, data, nil)
}

// newTestNodeWith is newTestNodeAs with tweak applied to the Config
// before Listen; a nil id is a new device.
func newTestNodeWith(t *testing.T, id *certs.Identity, data ContentSource, tweak func(*Config)) *testNode {
	t.Helper()
	if id == nil {
		var err error
		if id, err = certs.LoadOrCreate(t.TempDir()); err != nil {
			t.Fatal(err)
		}
	}
	n := &testNode{id: id, logs: &syncBuffer{}, paired: map[certs.DeviceID]bool{}, peers: make(chan *Peer, 16)}
	cfg := Config{
		Identity: id, Listen: "127.0.0.1:0", Content: data,
		Paired: func(d certs.DeviceID) bool {
			n.mu.Lock()
			ok, hook := n.paired[d], n.verifying
			n.mu.Unlock()
			if hook != nil {
				hook()
			}
			return ok
		},
		OnPeer: func(ctx context.Context, p *Peer) { n.peers <- p; <-ctx.Done() },
		Logger: slog.New(slog.NewTextHandler(n.logs, nil)),
	}
	if tweak != nil {
		tweak(&cfg)
	}
	var err error
	if n.t, err = Listen(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.t.Close() })
	return n
}

// pairedTestNodes returns two test nodes that have paired each other,
// serving aData and bData.
func pairedTestNodes(t *testing.T, aData, bData ContentSource) (*testNode, *testNode) {
	t.Helper()
	a, b := newTestNode(t, aData), newTestNode(t, bData)
	a.pair(b)
	b.pair(a)
	return a, b
}

func (n *testNode) pair(other *testNode) {
	n.mu.Lock()
	n.paired[other.id.ID] = true
	n.mu.Unlock()
}

func (n *testNode) unpair(other *testNode) {
	n.mu.Lock()
	delete(n.paired, other.id.ID)
	n.mu.Unlock()
}

func (n *testNode) addr() netip.AddrPort { return n.t.Addr().AddrPort() }

// noPeer fails the test if n got a connection before now: a device
// paired with n dials it, and that connection must be the next, and only,
// one n gets. (A connection n wrongly accepted before would have reached
// OnPeer first.)
func noPeer(t *testing.T, n *testNode) {
	t.Helper()
	fence := newTestNode(t, memContent{})
	fence.pair(n)
	n.pair(fence)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := fence.t.Dial(ctx, n.addr(), n.id.ID); err != nil {
		t.Fatalf("a paired device's dial: %v", err)
	}
	if p := waitPeer(t, n); p.ID != fence.id.ID {
		t.Fatalf("device %s got a connection before the paired one", p.ID.Short())
	}
	select {
	case p := <-n.peers:
		t.Fatalf("device %s got a connection", p.ID.Short())
	default:
	}
}

// livePeers adds the peers n got since the last call to seen and returns
// those still connected.
func livePeers(n *testNode, seen *[]*Peer) []*Peer {
	for more := true; more; {
		select {
		case p := <-n.peers:
			*seen = append(*seen, p)
		default:
			more = false
		}
	}
	var out []*Peer
	for _, p := range *seen {
		if p.Context().Err() == nil {
			out = append(out, p)
		}
	}
	return out
}

func waitPeer(t *testing.T, n *testNode) *Peer {
	t.Helper()
	select {
	case p := <-n.peers:
		return p
	case <-time.After(5 * time.Second):
		t.Fatal("no peer connected")
		return nil
	}
}

func TestPairedPeersTalkAndFetch(t *testing.T) {
	data := []byte(strings.Repeat("drive-node ", 100000))
	h := content.Sum(data)
	a, b := pairedTestNodes(t, memContent{}, memContent{h: data})
	ctx := context.Background()
	if _, err := a.t.Dial(ctx, b.addr(), b.id.ID); err != nil {
		t.Fatal(err)
	}
	pa, pb := waitPeer(t, a), waitPeer(t, b)
	if pa.ID != b.id.ID || pb.ID != a.id.ID {
		t.Fatal("peer IDs do not match the certificates")
	}
	if err := pa.Send(ctx, &wire.Hello{Version: wire.ProtocolVersion, Name: "a"}); err != nil {
		t.Fatal(err)
	}
	m, err := pb.Recv(ctx)
	if err != nil || m.(*wire.Hello).Name != "a" {
		t.Fatalf("recv: %v %v", m, err)
	}
	// Both directions work on the control stream.
	if err := pb.Send(ctx, &wire.Progress{Have: map[certs.DeviceID]uint64{b.id.ID: 3}}); err != nil {
		t.Fatal(err)
	}
	if m, err := pa.Recv(ctx); err != nil || m.(*wire.Progress).Have[b.id.ID] != 3 {
		t.Fatalf("recv progress: %v %v", m, err)
	}
	var got bytes.Buffer
	size, err := pa.Fetch(ctx, h, 0, &got)
	if err != nil || size != int64(len(data)) || content.Sum(got.Bytes()) != h {
		t.Fatalf("fetch: size %d err %v", size, err)
	}
	got.Reset()
	if _, err := pa.Fetch(ctx, h, 1000, &got); err != nil || !bytes.Equal(got.Bytes(), data[1000:]) {
		t.Fatalf("fetch from offset: %v", err)
	}
	if _, err := pa.Fetch(ctx, content.Sum([]byte("missing")), 0, io.Discard); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing content: %v", err)
	}
}

func TestUnpairedDeviceIsRefusedAndLoggedOnce(t *testing.T) {
	a, b := newTestNode(t, memContent{}), newTestNode(t, memContent{})
	a.pair(b) // b has not paired a
	for i := 0; i < 3; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		_, err := a.t.Dial(ctx, b.addr(), certs.DeviceID{})
		cancel()
		if err == nil {
			// The dialer may finish its side of the handshake before the
			// listener's refusal arrives; the connection must die at once.
			p := waitPeer(t, a)
			select {
			case <-p.Context().Done():
			case <-time.After(3 * time.Second):
				t.Fatal("connection to a device that refused us stayed up")
			}
		}
	}
	noPeer(t, b)
	if n := strings.Count(b.logs.String(), a.id.ID.String()); n != 1 {
		t.Fatalf("unpaired device logged %d times, want once:\n%s", n, b.logs.String())
	}
	// The dialer refuses an unpaired listener too.
	c := newTestNode(t, memContent{})
	c.pair(a)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if _, err := b.t.Dial(ctx, c.addr(), certs.DeviceID{}); err == nil {
		t.Fatal("dialer accepted an unpaired listener")
	}
	if !strings.Contains(b.logs.String(), c.id.ID.String()) {
		t.Fatal("dialer did not log the unpaired listener's ID")
	}
}

// TestSimultaneousDialsLeaveOneConnection has two devices dial each
// other at once: both handshakes are held at their first certificate
// check until both have got that far, so that each really makes a
// connection. Both sides must end with one connection, the same one, the
// one dialed by the device with the smaller ID; once it is there no
// other can replace it.
func TestSimultaneousDialsLeaveOneConnection(t *testing.T) {
	for i := 0; i < 5; i++ {
		a, b := pairedTestNodes(t, memContent{}, memContent{})
		var checks sync.WaitGroup
		checks.Add(2)
		var mu sync.Mutex
		asked := 0
		hold := func() {
			mu.Lock()
			asked++
			first := asked <= 2
			mu.Unlock()
			if first {
				checks.Done()
				checks.Wait()
			}
		}
		a.verifying, b.verifying = hold, hold
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		var wg sync.WaitGroup
		wg.Add(2)
		var errA, errB error
		go func() { defer wg.Done(); _, errA = a.t.Dial(ctx, b.addr(), b.id.ID) }()
		go func() { defer wg.Done(); _, errB = b.t.Dial(ctx, a.addr(), a.id.ID) }()
		wg.Wait()
		cancel()
		if errA != nil || errB != nil {
			t.Fatalf("round %d: dials: %v, %v", i, errA, errB)
		}
		aSmaller := bytes.Compare(a.id.ID[:], b.id.ID[:]) < 0
		var seenA, seenB []*Peer
		waitCond(t, 5*time.Second, fmt.Sprintf("round %d: one connection, dialed by the smaller ID", i), func() (bool, string) {
			pa, pb := livePeers(a, &seenA), livePeers(b, &seenB)
			if len(pa) != 1 || len(pb) != 1 {
				return false, fmt.Sprintf("%d live connections on a, %d on b", len(pa), len(pb))
			}
			// The same connection is dialed on one side and accepted on
			// the other.
			if pa[0].dialed == pb[0].dialed || pa[0].dialed != aSmaller {
				return false, fmt.Sprintf("a keeps the one it dialed: %v, b: %v; a's ID is the smaller: %v", pa[0].dialed, pb[0].dialed, aSmaller)
			}
			return true, ""
		})
	}
}

// TestRedialAfterRestartReplacesOldConnection has a peer dial, then come
// back at once as a new process with the same identity (the old one is
// gone without closing its connection) and dial again: the new connection
// must win on the other side whatever the order of the device IDs, since
// two connections in one direction are never a simultaneous dial.
func TestRedialAfterRestartReplacesOldConnection(t *testing.T) {
	for i := 0; i < 4; i++ {
		a, b := pairedTestNodes(t, memContent{}, memContent{})
		ctx := context.Background()
		if _, err := b.t.Dial(ctx, a.addr(), a.id.ID); err != nil {
			t.Fatal(err)
		}
		first := waitPeer(t, a)

		// The same device, restarted: a new transport with b's identity.
		old := waitPeer(t, b)
		restarted := newTestNodeAs(t, b.id, memContent{})
		restarted.pair(a)
		if _, err := restarted.t.Dial(ctx, a.addr(), a.id.ID); err != nil {
			t.Fatalf("round %d: the restarted peer's dial: %v", i, err)
		}
		second := waitPeer(t, a)
		select {
		case <-first.Context().Done():
		case <-time.After(5 * time.Second):
			t.Fatalf("round %d: the connection from before the restart is still open", i)
		}
		// The old process's end closes too: nothing is left that could
		// replace the restarted peer's connection.
		select {
		case <-old.Context().Done():
		case <-time.After(5 * time.Second):
			t.Fatalf("round %d: the old process's end of the replaced connection is still open", i)
		}
		onRestarted := waitPeer(t, restarted)
		if second.Context().Err() != nil || onRestarted.Context().Err() != nil {
			t.Fatalf("round %d: the restarted peer's connection was refused\n%s", i, a.logs)
		}
		a.t.mu.Lock()
		kept := a.t.peers[b.id.ID]
		a.t.mu.Unlock()
		if kept != second {
			t.Fatalf("round %d: a does not keep the restarted peer's connection", i)
		}
		if got := second.RemoteAddr().String(); got != restarted.t.Addr().String() {
			t.Fatalf("round %d: the surviving connection comes from %s, want the restarted peer at %s", i, got, restarted.t.Addr())
		}
	}
}

// TestCloseReleasesTheSocket: a transport closed in a process that goes on
// (a node restarted in place) must give its port back.
func TestCloseReleasesTheSocket(t *testing.T) {
	n := newTestNode(t, memContent{})
	addr := n.addr().String()
	if err := n.t.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	again, err := Listen(context.Background(), Config{Identity: n.id, Listen: addr, Content: memContent{},
		Paired: func(certs.DeviceID) bool { return false }, OnPeer: func(context.Context, *Peer) {}})
	if err != nil {
		t.Fatalf("listening again on %s after Close: %v", addr, err)
	}
	again.Close()
}

// dialAs connects to n as the device whose certificate is cert, the way
// any QUIC client may: with a TLS session cache, so that a second dial
// offers the session ticket of the first.
func dialAs(ctx context.Context, n *testNode, cert tls.Certificate, cache tls.ClientSessionCache) (*quic.Conn, error) {
	return quic.DialAddr(ctx, n.addr().String(), &tls.Config{
		Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13, NextProtos: []string{ALPN},
		ServerName: "drive-node", InsecureSkipVerify: true, ClientSessionCache: cache,
	}, quicConfig())
}

// TestUnpairedDeviceCannotResumeSession: a device that connected while it
// was paired, and is unpaired since, must be refused when it dials again
// offering the session ticket of its earlier connection.
func TestUnpairedDeviceCannotResumeSession(t *testing.T) {
	a, b := pairedTestNodes(t, memContent{}, memContent{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cache := tls.NewLRUClientSessionCache(4)
	conn, err := dialAs(ctx, a, b.id.Certificate, cache)
	if err != nil {
		t.Fatal(err)
	}
	// A round trip on the control stream: a session ticket the listener
	// sent after its handshake has arrived by then.
	s, err := conn.OpenStreamSync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Write([]byte{streamControl}); err != nil {
		t.Fatal(err)
	}
	pa := waitPeer(t, a)
	if err := pa.Send(ctx, &wire.Hello{Version: wire.ProtocolVersion, Name: "a"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Read(make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	conn.CloseWithError(0, "")
	<-pa.Context().Done()

	a.unpair(b)
	again, err := dialAs(ctx, a, b.id.Certificate, cache)
	if err == nil {
		// The dialer may finish its side of the handshake before the
		// listener's refusal arrives; the connection must die at once.
		if again.ConnectionState().TLS.DidResume {
			t.Error("the unpaired device resumed its session")
		}
		select {
		case <-again.Context().Done():
		case <-time.After(5 * time.Second):
			t.Error("the unpaired device's connection stayed up")
		}
	}
	noPeer(t, a)
}

// tlsRound runs one TLS handshake between server and client configs over
// loopback TCP, and has the client read one byte so that it takes the
// session ticket sent after the handshake.
func tlsRound(t *testing.T, server, client *tls.Config) (resumed bool, serverErr, clientErr error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	sc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	sc.SetDeadline(time.Now().Add(5 * time.Second))
	cc.SetDeadline(time.Now().Add(5 * time.Second))
	done := make(chan error, 1)
	go func() {
		s := tls.Server(sc, server)
		err := s.Handshake()
		if err == nil {
			_, err = s.Write([]byte{1})
		}
		sc.Close()
		done <- err
	}()
	c := tls.Client(cc, client)
	clientErr = c.Handshake()
	if clientErr == nil {
		_, clientErr = c.Read(make([]byte, 1))
		resumed = c.ConnectionState().DidResume
	}
	cc.Close()
	return resumed, <-done, clientErr
}

// TestPairingCheckedOnResumedHandshakes: with session resumption turned
// on, each side still refuses a device unpaired since the session began,
// the listener as well as the dialer.
func TestPairingCheckedOnResumedHandshakes(t *testing.T) {
	a, b := pairedTestNodes(t, memContent{}, memContent{})
	server := a.t.tlsConfig(certs.DeviceID{})
	server.SessionTicketsDisabled = false
	client := b.t.tlsConfig(a.id.ID)
	client.SessionTicketsDisabled = false
	client.ClientSessionCache = tls.NewLRUClientSessionCache(4)
	for i := 0; i < 2; i++ {
		resumed, serr, cerr := tlsRound(t, server, client)
		if serr != nil || cerr != nil {
			t.Fatalf("round %d while paired: server %v, client %v", i, serr, cerr)
		}
		if resumed != (i == 1) {
			t.Fatalf("round %d: resumed %v", i, resumed)
		}
	}

	a.unpair(b)
	if _, serr, _ := tlsRound(t, server, client); !errors.Is(serr, ErrUnpaired) {
		t.Fatalf("listener let a resumed session of an unpaired device in: %v", serr)
	}

	a.pair(b)
	if resumed, serr, cerr := tlsRound(t, server, client); serr != nil || cerr != nil || !resumed {
		t.Fatalf("paired again: resumed %v, server %v, client %v", resumed, serr, cerr)
	}
	b.unpair(a)
	if _, _, cerr := tlsRound(t, server, client); !errors.Is(cerr, ErrUnpaired) {
		t.Fatalf("dialer resumed a session with an unpaired listener: %v", cerr)
	}
}

// TestUnpairedLogIsBounded: anyone who reaches the port can make new keys
// and dial. The lines saying so are rate-limited, the next line written
// counting those left out, and a device left out is logged when it comes
// back later; the set of devices already logged stays bounded; and each
// refused handshake gives back its place among those in flight.
func TestUnpairedLogIsBounded(t *testing.T) {
	clk := clock.NewFake(time.Unix(1_700_000_000, 0))
	n := newTestNodeWith(t, nil, memContent{}, func(c *Config) { c.Clock = clk })
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	lines := func() int { return strings.Count(n.logs.String(), "refused a device") }
	logged := func() int { n.t.mu.Lock(); defer n.t.mu.Unlock(); return len(n.t.loggedUnpair) }
	dialNew := func() *certs.Identity {
		t.Helper()
		id, err := certs.LoadOrCreate(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		dialUnpaired(ctx, t, n, id)
		return id
	}

	var first *certs.Identity
	for i := 0; i < 3*unpairedLogBurst; i++ {
		if id := dialNew(); i == unpairedLogBurst {
			first = id // the first left out
		}
	}
	if got := lines(); got != unpairedLogBurst {
		t.Fatalf("%d unpaired devices within a minute logged in %d lines, want %d", 3*unpairedLogBurst, got, unpairedLogBurst)
	}
	clk.Advance(unpairedLogWindow)
	dialUnpaired(ctx, t, n, first)
	logs := n.logs.String()
	if !strings.Contains(logs, first.ID.String()) || !strings.Contains(logs, fmt.Sprintf("others_not_logged=%d", 2*unpairedLogBurst)) {
		t.Fatalf("a minute on, a device left out came back: its line does not name it or count the %d left out:\n%s", 2*unpairedLogBurst, logs)
	}

	for i := 0; i < maxLoggedUnpair+20; i++ {
		clk.Advance(unpairedLogWindow)
		dialNew()
		if got := logged(); got > maxLoggedUnpair {
			t.Fatalf("after %d unpaired devices, %d are kept as logged", i+1, got)
		}
	}
	waitCond(t, 5*time.Second, "every refused handshake's place given back", func() (bool, string) {
		total := n.t.hs.stats().total
		return total == 0, fmt.Sprintf("%d in flight", total)
	})
}

// dialUnpaired dials n as id, which n has not paired, and waits for n to
// refuse it.
func dialUnpaired(ctx context.Context, t *testing.T, n *testNode, id *certs.Identity) {
	t.Helper()
	if conn, err := dialAs(ctx, n, id.Certificate, nil); err == nil {
		// The listener refuses the dialer after checking it.
		select {
		case <-conn.Context().Done():
		case <-ctx.Done():
			t.Fatal("the listener did not refuse an unpaired device")
		}
	}
}

// TestDialAfterClose: once Close has returned, Dial fails at once with an
// error wrapping net.ErrClosed, and a Redialer made then never dials.
func TestDialAfterClose(t *testing.T) {
	a, b := pairedTestNodes(t, memContent{}, memContent{})
	if err := a.t.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	_, err := a.t.Dial(ctx, b.addr(), b.id.ID)
	if !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Dial after Close: %v, want an error wrapping net.ErrClosed", err)
	}
	if took := time.Since(start); took > time.Second {
		t.Fatalf("Dial after Close took %v", took)
	}
	var trace redialTrace
	r := a.t.newRedialer(ctx, clock.Real{}, trace.hooks())
	r.Found(b.id.ID, []netip.AddrPort{b.addr()})
	r.dialDue(ctx) // what its loop, had it started, would do
	if n := trace.dialCount(); n != 0 {
		t.Fatalf("a Redialer made after Close started %d attempts", n)
	}
	noPeer(t, b)
}

// TestDialRacingClose dials while the transport closes: Close returns,
// and Dial either connected before Close started or fails with an error
// wrapping net.ErrClosed. Some rounds hold the dial's handshake at its
// certificate check until Close has started, so the dial must fail; the
// others let Close and Dial race freely. Under -race it also checks that
// no goroutine is added to the transport's WaitGroup while Close waits on
// it.
func TestDialRacingClose(t *testing.T) {
	for i := range 10 {
		held := i%2 == 0
		a, b := pairedTestNodes(t, memContent{}, memContent{})
		checking, release := make(chan struct{}), make(chan struct{})
		if held {
			var once sync.Once
			a.verifying = func() {
				once.Do(func() {
					close(checking)
					<-release
				})
			}
		}
		dialed := make(chan error, 1)
		go func() {
			_, err := a.t.Dial(context.Background(), b.addr(), b.id.ID)
			dialed <- err
		}()
		if held {
			<-checking
		}
		closed := make(chan struct{})
		go func() {
			a.t.Close()
			close(closed)
		}()
		if held {
			waitCond(t, 5*time.Second, "Close starts", func() (bool, string) { return a.t.ctx.Err() != nil, "not yet" })
			close(release)
		}
		select {
		case <-closed:
		case <-time.After(10 * time.Second):
			t.Fatalf("round %d: Close did not return", i)
		}
		err := <-dialed
		if err != nil && !errors.Is(err, net.ErrClosed) {
			t.Fatalf("round %d: Dial racing Close: %v", i, err)
		}
		if held && err == nil {
			t.Fatalf("round %d: a dial still in its handshake when Close started succeeded", i)
		}
	}
}
