package quicnet

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drive-node/drive-node/content"
	"github.com/drive-node/drive-node/internal/goroutines"
	"github.com/drive-node/drive-node/wire"
	"github.com/quic-go/quic-go"
)

// connectedPair returns a's peer for b, with b serving data.
func connectedPair(t *testing.T, data ContentSource) *Peer {
	t.Helper()
	a, b := pairedTestNodes(t, memContent{}, data)
	if _, err := a.t.Dial(context.Background(), b.addr(), b.id.ID); err != nil {
		t.Fatal(err)
	}
	waitPeer(t, b)
	return waitPeer(t, a)
}

// TestFetchBatch asks for several contents on one stream, some of which
// the peer lacks, some empty; each arrives whole and in order. An error
// from the callback ends the batch, and the connection still serves the
// next fetch (the abandoned stream does not hold its window).
func TestFetchBatch(t *testing.T) {
	data := memContent{}
	var hs []content.Hash
	for i := 0; i < 40; i++ {
		b := []byte(fmt.Sprintf("content %d ", i))
		for len(b) < i*700 {
			b = append(b, b...)
		}
		h := content.Sum(b)
		data[h] = b
		hs = append(hs, h)
	}
	data[content.EmptyHash] = nil
	missing := content.Sum([]byte("not on the peer"))
	hs = append(hs, missing, content.EmptyHash)
	pa := connectedPair(t, data)
	ctx := context.Background()

	var order []int
	err := pa.FetchBatch(ctx, hs, func(i int, size int64, r io.Reader) error {
		order = append(order, i)
		if hs[i] == missing {
			if size != -1 || r != nil {
				t.Errorf("missing content: size %d", size)
			}
			return nil
		}
		b, err := io.ReadAll(r)
		if err != nil || int64(len(b)) != size || content.Sum(b) != hs[i] {
			t.Errorf("content %d: %d bytes (announced %d), err %v", i, len(b), size, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(order) != len(hs) {
		t.Fatalf("each called for %d of %d contents", len(order), len(hs))
	}
	for i, got := range order {
		if got != i {
			t.Fatalf("order %v", order)
		}
	}

	// A callback that fails part-way, without reading, ends the batch.
	stop := errors.New("disk full")
	calls := 0
	err = pa.FetchBatch(ctx, hs, func(i int, size int64, r io.Reader) error {
		calls++
		if i == 5 {
			return stop
		}
		return nil // unread bytes are skipped
	})
	if !errors.Is(err, stop) || calls != 6 {
		t.Fatalf("got %v after %d calls, want the callback's error after 6", err, calls)
	}
	for range 3 * cap(pa.fetchSlots) {
		if _, err := pa.Fetch(ctx, hs[39], 0, io.Discard); err != nil {
			t.Fatalf("fetch after an abandoned batch: %v", err)
		}
	}
}

// TestContentRequestBounded opens content streams by hand and leaves them
// open: one whose request declares more than wire.MaxContentRequestFrame,
// one whose request stops after its first byte. The server resets each,
// the first for its length (its log names the limit), the second after
// the (shortened) request wait, and the connection still serves a fetch.
func TestContentRequestBounded(t *testing.T) {
	data := []byte("served")
	h := content.Sum(data)
	a, b := pairedTestNodes(t, memContent{}, memContent{h: data})
	b.t.requestWait = 300 * time.Millisecond // before any connection
	ctx := context.Background()
	if _, err := a.t.Dial(ctx, b.addr(), b.id.ID); err != nil {
		t.Fatal(err)
	}
	waitPeer(t, b)
	pa := waitPeer(t, a)

	for _, c := range []struct {
		name, log string
		send      []byte
	}{
		{"over the limit", fmt.Sprintf("(limit %d)", wire.MaxContentRequestFrame),
			binary.BigEndian.AppendUint32([]byte{streamContent}, uint32(wire.MaxContentRequestFrame+1))},
		{"silent", "1 of 40 bytes",
			append(binary.BigEndian.AppendUint32([]byte{streamContent}, 40), byte(wire.TypeContentRequest))},
	} {
		s, err := pa.conn.OpenStreamSync(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Write(c.send); err != nil {
			t.Fatal(err)
		}
		s.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err = s.Read(make([]byte, 1))
		var reset *quic.StreamError
		if !errors.As(err, &reset) || !reset.Remote {
			t.Errorf("%s: read %v, want the server's reset", c.name, err)
		}
		s.CancelRead(0)
		s.CancelWrite(0)
		waitCond(t, 2*time.Second, fmt.Sprintf("%s: a bad request naming %q logged", c.name, c.log), func() (bool, string) {
			return strings.Contains(b.logs.String(), c.log), b.logs.String()
		})
	}
	if _, err := pa.Fetch(ctx, h, 0, io.Discard); err != nil {
		t.Fatalf("fetch after refused requests: %v", err)
	}
}

// blockingContent serves data, each OpenContent blocking until release is
// closed. It records whether a call ran, or returned, after the test
// marked the transport closed.
type blockingContent struct {
	data    memContent
	entered chan struct{} // receives a value as each call starts, if anyone listens
	release chan struct{}

	mu      sync.Mutex
	running int
	closed  bool // set by the test once Close has returned
	late    bool // a call started or was running after closed was set
}

func (c *blockingContent) OpenContent(ctx context.Context, h content.Hash) (io.ReadSeekCloser, int64, error) {
	c.mu.Lock()
	c.running++
	c.late = c.late || c.closed
	c.mu.Unlock()
	select {
	case c.entered <- struct{}{}:
	default:
	}
	<-c.release
	defer func() {
		c.mu.Lock()
		c.running--
		c.late = c.late || c.closed
		c.mu.Unlock()
	}()
	return c.data.OpenContent(ctx, h)
}

func (c *blockingContent) OpenChunkList(ctx context.Context, h content.Hash) (io.ReadCloser, int64, error) {
	return c.data.OpenChunkList(ctx, h)
}

// markClosed records that Close returned and reports how many calls were
// running then.
func (c *blockingContent) markClosed() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	return c.running
}

// TestCloseWaitsForContentServing: Close must not return while serving a
// content stream is in Config.Content (the node closes its database once
// Close returns), and no OpenContent call may come after it.
func TestCloseWaitsForContentServing(t *testing.T) {
	data := memContent{}
	var hs []content.Hash
	for i := range 4 {
		b := []byte(fmt.Sprintf("content %d", i))
		data[content.Sum(b)] = b
		hs = append(hs, content.Sum(b))
	}
	src := &blockingContent{data: data, entered: make(chan struct{}), release: make(chan struct{})}
	a, b := pairedTestNodes(t, memContent{}, src)
	if _, err := a.t.Dial(context.Background(), b.addr(), b.id.ID); err != nil {
		t.Fatal(err)
	}
	waitPeer(t, b)
	pa := waitPeer(t, a)
	fetched := make(chan error, 1)
	go func() {
		fetched <- pa.FetchBatch(context.Background(), hs, func(int, int64, io.Reader) error { return nil })
	}()
	select {
	case <-src.entered:
	case <-time.After(5 * time.Second):
		t.Fatal("OpenContent was not called")
	}

	closed := make(chan int, 1)
	go func() {
		b.t.Close()
		closed <- src.markClosed()
	}()
	// Close gets as far as it can while OpenContent runs: it waits for
	// the transport's goroutines. One that did not wait would have
	// returned by then, with the call still running.
	waitCond(t, 5*time.Second, "Close waits for its goroutines", func() (bool, string) {
		select {
		case running := <-closed:
			close(src.release)
			t.Fatalf("Close returned while OpenContent was running (%d calls)", running)
		default:
		}
		return goroutines.Count("", "(*Transport).Close", "sync.(*WaitGroup).Wait") == 1, "Close is not in WaitGroup.Wait"
	})
	close(src.release)
	select {
	case running := <-closed:
		if running != 0 {
			t.Fatalf("Close returned while %d OpenContent calls were running", running)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return once OpenContent did")
	}
	<-fetched // fails: the connection closed
	// Close has returned: no goroutine of b's is left to serve content.
	if goroutines.Count("", "(*Peer).serveContent")+goroutines.Count("", "(*blockingContent).OpenContent") != 0 {
		t.Fatal("content is still being served after Close returned")
	}
	src.mu.Lock()
	defer src.mu.Unlock()
	if src.late {
		t.Fatal("OpenContent was called after Close returned")
	}
}

// listContent serves contents as memContent does, and for the contents
// in lists their chunk lists.
type listContent struct {
	memContent
	lists map[content.Hash][]byte
}

func (c listContent) OpenChunkList(ctx context.Context, h content.Hash) (io.ReadCloser, int64, error) {
	if l, ok := c.lists[h]; ok {
		return io.NopCloser(bytes.NewReader(l)), int64(len(l)), nil
	}
	return c.memContent.OpenChunkList(ctx, h)
}

// patterned returns n bytes, byte i being i mod 251: bytes taken from the
// wrong place do not match.
func patterned(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i % 251)
	}
	return b
}

// TestFetchChunkList: a list arrives byte for byte, a short one and one
// copied in large pieces; a content the peer holds without a list gives
// 0 and nothing written; one it lacks gives ErrNotFound. A list over the
// caller's limit is refused with nothing of it written, more times than
// there are fetch slots: each refusal gives its slot back.
func TestFetchChunkList(t *testing.T) {
	small, large := patterned(100), patterned(4*largeCopy+7)
	withSmall, withLarge, noList := content.Sum([]byte("a")), content.Sum([]byte("b")), content.Sum([]byte("c"))
	src := listContent{
		memContent: memContent{withSmall: []byte("a"), withLarge: []byte("b"), noList: []byte("c")},
		lists:      map[content.Hash][]byte{withSmall: small, withLarge: large},
	}
	a, b := pairedTestNodes(t, memContent{}, src)
	ctx := context.Background()
	if _, err := a.t.Dial(ctx, b.addr(), b.id.ID); err != nil {
		t.Fatal(err)
	}
	waitPeer(t, b)
	pa := waitPeer(t, a)

	for _, c := range []struct {
		name string
		h    content.Hash
		want []byte
	}{{"short list", withSmall, small}, {"long list", withLarge, large}, {"no list", noList, nil}} {
		var buf bytes.Buffer
		n, err := pa.FetchChunkList(ctx, c.h, int64(len(large)), &buf)
		if err != nil || n != int64(len(c.want)) || !bytes.Equal(buf.Bytes(), c.want) {
			t.Errorf("%s: got %d bytes (%d written), %v; want the %d bytes of the list", c.name, n, buf.Len(), err, len(c.want))
		}
	}
	var buf bytes.Buffer
	if n, err := pa.FetchChunkList(ctx, content.Sum([]byte("missing")), 1<<20, &buf); !errors.Is(err, ErrNotFound) || n != 0 || buf.Len() != 0 {
		t.Errorf("unknown content: %d bytes (%d written), %v; want ErrNotFound", n, buf.Len(), err)
	}
	for range cap(pa.fetchSlots) + 1 {
		n, err := pa.FetchChunkList(ctx, withLarge, int64(len(large))-1, &buf)
		if err == nil || errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "over the limit") || n != 0 || buf.Len() != 0 {
			t.Fatalf("a list over the limit: %d bytes (%d written), %v; want it refused unread", n, buf.Len(), err)
		}
	}
	if n, err := pa.FetchChunkList(ctx, withLarge, int64(len(large)), &buf); err != nil || !bytes.Equal(buf.Bytes(), large) {
		t.Fatalf("fetch after refused lists: %d bytes, %v", n, err)
	}
}

// TestFetchRange: ranges arrive byte for byte, from the middle of a
// content copied in large pieces, a short one, the last byte and the
// whole, each with the content's full size; a range past the content's
// end, and a content the peer lacks, give ErrNotFound with nothing
// written.
func TestFetchRange(t *testing.T) {
	data := patterned(3<<20 + 11)
	h := content.Sum(data)
	pa := connectedPair(t, memContent{h: data})
	ctx := context.Background()
	end := int64(len(data))
	for _, c := range []struct{ off, n int64 }{{1<<20 + 5, 1<<20 + 3}, {1000, 10}, {end - 1, 1}, {0, end}} {
		var buf bytes.Buffer
		size, err := pa.FetchRange(ctx, h, c.off, c.n, &buf)
		if err != nil || size != end || !bytes.Equal(buf.Bytes(), data[c.off:c.off+c.n]) {
			t.Errorf("%d bytes at %d: size %d, %d bytes written, %v; want size %d and the range", c.n, c.off, size, buf.Len(), err, end)
		}
	}
	for _, c := range []struct {
		h      content.Hash
		off, n int64
	}{{h, end, 1}, {h, end - 10, 11}, {h, 1 << 40, 1}, {content.Sum([]byte("missing")), 0, 1}} {
		var buf bytes.Buffer
		if _, err := pa.FetchRange(ctx, c.h, c.off, c.n, &buf); !errors.Is(err, ErrNotFound) || buf.Len() != 0 {
			t.Errorf("%d bytes at %d of %s: %v, %d bytes written; want ErrNotFound", c.n, c.off, c.h.Short(), err, buf.Len())
		}
	}
}

// failingWriter takes n bytes, then fails every write with err.
type failingWriter struct {
	n   int
	err error
}

func (w *failingWriter) Write(b []byte) (int, error) {
	if len(b) <= w.n {
		w.n -= len(b)
		return len(b), nil
	}
	k := w.n
	w.n = 0
	return k, w.err
}

// TestFetchRangeWriteFails: a dst that fails part-way through a range
// ends the fetch with its error; the stream is reset and its slot given
// back, so fetches go on, more of them than there are slots.
func TestFetchRangeWriteFails(t *testing.T) {
	data := patterned(3 << 20)
	h := content.Sum(data)
	pa := connectedPair(t, memContent{h: data})
	ctx := context.Background()
	diskFull := errors.New("disk full")
	for _, n := range []int64{2 << 20, 1000} { // copied in large pieces, and not
		size, err := pa.FetchRange(ctx, h, 1<<20, n, &failingWriter{n: int(n / 3), err: diskFull})
		if !errors.Is(err, diskFull) || size != int64(len(data)) {
			t.Fatalf("%d bytes into a failing dst: size %d, %v; want the dst's error", n, size, err)
		}
	}
	for range 3 * cap(pa.fetchSlots) {
		var buf bytes.Buffer
		if _, err := pa.FetchRange(ctx, h, 5, 100, &buf); err != nil || !bytes.Equal(buf.Bytes(), data[5:105]) {
			t.Fatalf("fetch after a failed one: %v", err)
		}
	}
}

// batchOnly is a BatchSource that holds its contents only for a batch:
// alone, it has none. It records the hashes each Batch call was given.
type batchOnly struct {
	memContent
	mu    sync.Mutex
	calls [][]content.Hash
}

func (b *batchOnly) OpenContent(context.Context, content.Hash) (io.ReadSeekCloser, int64, error) {
	return nil, 0, fs.ErrNotExist
}

func (b *batchOnly) Batch(_ context.Context, hs []content.Hash) ContentSource {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.calls = append(b.calls, slices.Clone(hs))
	return b.memContent
}

// TestBatchOpenedThroughBatchSource serves a batch request from a
// BatchSource: the transport asks it once, with every hash of the
// request, and opens each content from the source it returns; a single
// request still goes to the source itself.
func TestBatchOpenedThroughBatchSource(t *testing.T) {
	src := &batchOnly{memContent: memContent{}}
	var hs []content.Hash
	for i := range 5 {
		b := fmt.Appendf(nil, "small content %d", i)
		h := content.Sum(b)
		src.memContent[h] = b
		hs = append(hs, h)
	}
	pa := connectedPair(t, src)
	ctx := context.Background()
	got := 0
	err := pa.FetchBatch(ctx, hs, func(i int, size int64, r io.Reader) error {
		if size < 0 {
			return nil // not found
		}
		if body, err := io.ReadAll(r); err != nil || content.Sum(body) != hs[i] {
			t.Errorf("content %d: %d bytes, %v", i, len(body), err)
		}
		got++
		return nil
	})
	if err != nil || got != len(hs) {
		t.Fatalf("batch: %d of %d contents, %v", got, len(hs), err)
	}
	src.mu.Lock()
	calls := src.calls
	src.mu.Unlock()
	if len(calls) != 1 || !slices.Equal(calls[0], hs) {
		t.Errorf("Batch called with %v, want once with the request's %d hashes", calls, len(hs))
	}
	if _, err := pa.Fetch(ctx, hs[0], 0, io.Discard); err == nil {
		t.Error("a single request was served from the batch's source")
	}
}
