package quicnet

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/drive-node/drive-node/certs"
	"github.com/drive-node/drive-node/content"
	"github.com/drive-node/drive-node/internal/clock"
	"github.com/drive-node/drive-node/wire"
	"github.com/quic-go/quic-go"
)

// TestStreamCreditComesBackWhenFINArrivesLate opens more content streams
// than the server admits at once, each of which sends its request, reads
// the whole response and only then closes its sending side: the FIN
// reaches the server in a packet of its own, after the server has read the
// request. The server must still end its side so that the stream's credit
// comes back; otherwise the client can open no more streams and every
// later fetch waits for ever.
func TestStreamCreditComesBackWhenFINArrivesLate(t *testing.T) {
	data := []byte("late fin")
	h := content.Sum(data)
	pa := connectedPair(t, memContent{h: data})
	rounds := quicConfig().MaxIncomingStreams + 44
	for i := range rounds {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		s, err := pa.conn.OpenStreamSync(ctx)
		if err != nil {
			cancel()
			t.Fatalf("stream %d of %d: %v (the server kept earlier streams open)", i+1, rounds, err)
		}
		if _, err := s.Write([]byte{streamContent}); err != nil {
			t.Fatal(err)
		}
		if err := wire.WriteFrame(s, &wire.ContentRequest{Hash: h}); err != nil {
			t.Fatal(err)
		}
		s.SetReadDeadline(time.Now().Add(10 * time.Second))
		resp, err := readResponse(s)
		if err != nil || !resp.Found || resp.Size != int64(len(data)) {
			t.Fatalf("stream %d: response %+v, %v", i+1, resp, err)
		}
		if _, err := io.ReadAll(s); err != nil {
			t.Fatalf("stream %d: %v", i+1, err)
		}
		s.Close() // the FIN goes out only now, after the whole response
		cancel()
	}
}

// TestAbandonedFetchesReturnTheirStreams abandons more fetches than the
// peer admits streams at once, each in another way: cancelled part-way
// through a large content, a batch whose callback fails, a single fetch
// whose writer fails. Each stream must end on both sides, so every later
// open finds credit within the (shortened) open bound.
func TestAbandonedFetchesReturnTheirStreams(t *testing.T) {
	big := make([]byte, 4<<20)
	for i := range big {
		big[i] = byte(i * 7)
	}
	small := []byte("small")
	hb, hs := content.Sum(big), content.Sum(small)
	a, b := pairedTestNodes(t, memContent{}, memContent{hb: big, hs: small})
	a.t.openWait = 3 * time.Second
	ctx := context.Background()
	pa := dialPair(t, a, b)
	failed := errors.New("writer failed")
	rounds := quicConfig().MaxIncomingStreams + 44
	for i := range rounds {
		var err error
		switch i % 3 {
		case 0:
			cctx, cancel := context.WithCancel(ctx)
			// The caller gives up part-way: the fetch fails with its reason.
			_, err = pa.Fetch(cctx, hb, 0, writerFunc(func(p []byte) (int, error) { cancel(); return 0, context.Canceled }))
			cancel()
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("round %d: cancelled fetch: %v", i, err)
			}
		case 1:
			err = pa.FetchBatch(ctx, []content.Hash{hs, hs, hs}, func(int, int64, io.Reader) error { return failed })
		case 2:
			_, err = pa.Fetch(ctx, hb, 0, writerFunc(func([]byte) (int, error) { return 0, failed }))
		}
		if i%3 != 0 && !errors.Is(err, failed) {
			t.Fatalf("round %d: got %v, want the callback's error", i, err)
		}
	}
	var got bytes.Buffer
	if _, err := pa.Fetch(ctx, hb, 0, &got); err != nil || content.Sum(got.Bytes()) != hb {
		t.Fatalf("fetch after %d abandoned ones: %v", rounds, err)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// TestFetchFromASilentPeerFails: a peer that accepts a content request
// and then sends nothing fails the fetch after the idle bound, with an
// error saying it stalled, and gives its slot back.
func TestFetchFromASilentPeerFails(t *testing.T) {
	data := []byte("never sent")
	h := content.Sum(data)
	src := &blockingContent{data: memContent{h: data}, release: make(chan struct{})}
	a, b := pairedTestNodes(t, memContent{}, src)
	t.Cleanup(func() { close(src.release) }) // before the transports close
	a.t.streamIdle = 100 * time.Millisecond
	ctx := context.Background()
	pa := dialPair(t, a, b)
	for range cap(pa.fetchSlots) + 1 { // more than the slots: each is given back
		if _, err := pa.Fetch(ctx, h, 0, io.Discard); !errors.Is(err, ErrStalled) {
			t.Fatalf("fetch from a silent peer: %v, want %v", err, ErrStalled)
		}
	}
	err := pa.FetchBatch(ctx, []content.Hash{h}, func(int, int64, io.Reader) error { return nil })
	if !errors.Is(err, ErrStalled) {
		t.Fatalf("batch from a silent peer: %v, want %v", err, ErrStalled)
	}
}

// closeSignal serves one content through a reader that reports its Close.
type closeSignal struct {
	data   []byte
	closed chan struct{}
}

func (c *closeSignal) OpenContent(context.Context, content.Hash) (io.ReadSeekCloser, int64, error) {
	return &signalReader{bytes.NewReader(c.data), c.closed}, int64(len(c.data)), nil
}

func (c *closeSignal) OpenChunkList(context.Context, content.Hash) (io.ReadCloser, int64, error) {
	return nil, 0, nil
}

type signalReader struct {
	*bytes.Reader
	closed chan struct{}
}

func (r *signalReader) Close() error { close(r.closed); return nil }

// TestServerGivesUpOnAReaderThatTakesNothing: a client that asks for a
// content larger than the stream window and then reads nothing holds the
// server's write; after the idle bound the server resets the stream, and
// the client then gets an error instead of the whole content.
func TestServerGivesUpOnAReaderThatTakesNothing(t *testing.T) {
	data := make([]byte, 8<<20)
	h := content.Sum(data)
	src := &closeSignal{data: data, closed: make(chan struct{})}
	a, b := pairedTestNodes(t, memContent{}, src)
	b.t.streamIdle = 200 * time.Millisecond
	ctx := context.Background()
	pa := dialPair(t, a, b)
	s, err := pa.conn.OpenStreamSync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s.Write([]byte{streamContent})
	wire.WriteFrame(s, &wire.ContentRequest{Hash: h})
	s.Close()
	select {
	case <-src.closed:
	case <-time.After(10 * time.Second):
		t.Fatal("the server still writes to a client that reads nothing")
	}
	s.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := io.Copy(io.Discard, s)
	var serr *quic.StreamError
	if !errors.As(err, &serr) || n >= int64(len(data)) {
		t.Fatalf("client read %d bytes and %v; want fewer than %d and a stream reset", n, err, len(data))
	}
}

// dialPair connects a to b, whose transports the test has tuned, and
// returns a's peer for b.
func dialPair(t *testing.T, a, b *testNode) *Peer {
	t.Helper()
	if _, err := a.t.Dial(context.Background(), b.addr(), b.id.ID); err != nil {
		t.Fatal(err)
	}
	waitPeer(t, b)
	return waitPeer(t, a)
}

// TestConnectionLifetimeOnTheConfiguredClock: how long a connection
// lasted, which decides whether its peer is redialled at once or after a
// backoff, is measured on Config.Clock.
func TestConnectionLifetimeOnTheConfiguredClock(t *testing.T) {
	fake := clock.NewFake(time.Unix(1_000_000, 0))
	b := newTestNode(t, memContent{})
	id, err := certs.LoadOrCreate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	peers := make(chan *Peer, 4)
	tr, err := Listen(context.Background(), Config{
		Identity: id, Listen: "127.0.0.1:0", Content: memContent{}, Clock: fake,
		Paired: func(d certs.DeviceID) bool { return d == b.id.ID },
		OnPeer: func(ctx context.Context, p *Peer) { peers <- p; <-ctx.Done() },
		Logger: slog.New(slog.NewTextHandler(logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	b.pair(&testNode{id: id})
	if _, err := tr.Dial(context.Background(), b.addr(), b.id.ID); err != nil {
		t.Fatal(err)
	}
	select {
	case <-peers:
	case <-time.After(10 * time.Second):
		t.Fatal("no connection")
	}
	fake.Advance(time.Hour)
	waitPeer(t, b).CloseWithError("test")
	waitCond(t, 10*time.Second, "the disconnection to report an hour on the fake clock", func() (bool, string) {
		return strings.Contains(logs.String(), "lasted=1h0m0s"), logs.String()
	})
}
