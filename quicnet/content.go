package quicnet

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sync"
	"time"

	"github.com/drive-node/drive-node/content"
	"github.com/drive-node/drive-node/wire"
	"github.com/quic-go/quic-go"
)

// contentStream is an open content stream: the request is sent and the
// sending side closed. done must be called once the caller is finished
// with it, whatever happened.
//
// A QUIC stream returns its credit to the peer (lets it open another) only
// once both of its sides have ended on both ends; a stream left half open
// holds one of the connection's MaxIncomingStreams for as long as the
// connection lives, and once they are all held every later fetch waits.
// done therefore always stops reading (the response, or what the caller
// needed of it, has been read; the peer's FIN may not have): that also
// hands back the connection flow-control window the unread bytes held, and
// asks the peer to stop sending. On an incomplete transfer it resets the
// sending side as well.
type contentStream struct {
	idleStream
	release func()
}

func (cs *contentStream) done(complete bool) {
	cs.CancelRead(codeStreamDone)
	if !complete {
		cs.CancelWrite(codeStreamDone)
	}
	cs.release()
}

// idleStream reads and writes a content stream with an idle deadline on
// each call: a peer that sends nothing, or takes nothing (its flow control
// stays shut), for idle fails the call, naming how long, instead of
// holding the transfer (and its slot) for ever.
type idleStream struct {
	*quic.Stream
	idle time.Duration
}

func (s idleStream) Read(b []byte) (int, error) {
	s.SetReadDeadline(time.Now().Add(s.idle))
	n, err := s.Stream.Read(b)
	if isTimeout(err) {
		err = fmt.Errorf("%w: the peer sent nothing for %s", ErrStalled, s.idle)
	}
	return n, err
}

func (s idleStream) Write(b []byte) (int, error) {
	s.SetWriteDeadline(time.Now().Add(s.idle))
	n, err := s.Stream.Write(b)
	if isTimeout(err) {
		err = fmt.Errorf("%w: the peer took nothing for %s", ErrStalled, s.idle)
	}
	return n, err
}

// ErrStalled is wrapped by errors of content streams on which the peer
// sent (or took) nothing for the transport's idle bound.
var ErrStalled = errors.New("content stream stalled")

// isTimeout reports whether err is a stream deadline that passed (not the
// connection's idle timeout, which also says Timeout: that is a dead
// connection, reported as such).
func isTimeout(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }

// openContent takes one of the peer's fetch slots, opens a content stream
// and sends req on it. Waiting for the slot honours ctx; opening the
// stream is bounded by Transport.openWait as well, since the peer grants
// streams only as earlier ones end.
func (p *Peer) openContent(ctx context.Context, req wire.Message) (*contentStream, error) {
	select {
	case p.fetchSlots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-p.ctx.Done():
		return nil, errors.New("connection closed")
	}
	octx, cancel := context.WithTimeout(ctx, p.t.openWait)
	s, err := p.conn.OpenStreamSync(octx)
	cancel()
	if err != nil {
		<-p.fetchSlots
		if ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("%w: the peer granted no stream for %s", ErrStalled, p.t.openWait)
		}
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { s.CancelRead(codeStreamDone); s.CancelWrite(codeStreamDone) })
	cs := &contentStream{idleStream: idleStream{s, p.t.streamIdle}, release: func() { stop(); <-p.fetchSlots }}
	if _, err = cs.Write([]byte{streamContent}); err == nil {
		err = wire.WriteFrame(cs, req)
	}
	if err != nil {
		cs.done(false)
		return nil, err
	}
	s.Close() // our side is done writing
	return cs, nil
}

// Fetch asks the peer for the content with hash h from offset on and
// copies it to dst, returning the content's full size. At most
// Config.ContentStreams fetches run at once per peer; others wait. The
// caller verifies the hash.
func (p *Peer) Fetch(ctx context.Context, h content.Hash, offset int64, dst io.Writer) (int64, error) {
	cs, err := p.openContent(ctx, &wire.ContentRequest{Hash: h, Offset: offset})
	if err != nil {
		return 0, fmt.Errorf("quicnet: fetch %s from %s: %w", h.Short(), p.ID.Short(), err)
	}
	complete := false
	defer func() { cs.done(complete) }()
	resp, err := readResponse(cs)
	if err != nil {
		return 0, fmt.Errorf("quicnet: fetch %s from %s: %w", h.Short(), p.ID.Short(), ctxOr(ctx, err))
	}
	if !resp.Found {
		complete = true
		return 0, fmt.Errorf("quicnet: fetch %s from %s: %w", h.Short(), p.ID.Short(), ErrNotFound)
	}
	want := resp.Size - offset
	n, err := copyContent(dst, cs, want)
	if err != nil {
		return resp.Size, fmt.Errorf("quicnet: fetch %s from %s: %d of %d bytes: %w", h.Short(), p.ID.Short(), n, want, ctxOr(ctx, err))
	}
	complete = true
	return resp.Size, nil
}

// FetchChunkList asks the peer for the chunk list of the content with
// hash h and copies it to dst, returning its length. It returns 0 and no
// error when the peer has the content but no chunk list for it (fetch it
// whole), and an error wrapping ErrNotFound when the peer does not have
// the content. A list longer than limit is refused before any of it is
// read, and the stream reset. It takes a fetch slot as Fetch does. The
// caller checks the list against h.
func (p *Peer) FetchChunkList(ctx context.Context, h content.Hash, limit int64, dst io.Writer) (int64, error) {
	cs, err := p.openContent(ctx, &wire.ChunkListRequest{Hash: h})
	if err != nil {
		return 0, fmt.Errorf("quicnet: fetch chunk list of %s from %s: %w", h.Short(), p.ID.Short(), err)
	}
	complete := false
	defer func() { cs.done(complete) }()
	resp, err := readMessage[*wire.ChunkListResponse](cs)
	if err != nil {
		return 0, fmt.Errorf("quicnet: fetch chunk list of %s from %s: %w", h.Short(), p.ID.Short(), ctxOr(ctx, err))
	}
	if !resp.Found {
		complete = true
		return 0, fmt.Errorf("quicnet: fetch chunk list of %s from %s: %w", h.Short(), p.ID.Short(), ErrNotFound)
	}
	if resp.Length > limit {
		return 0, fmt.Errorf("quicnet: fetch chunk list of %s from %s: a list of %d bytes, over the limit of %d", h.Short(), p.ID.Short(), resp.Length, limit)
	}
	n, err := copyContent(dst, cs, resp.Length)
	if err != nil {
		return n, fmt.Errorf("quicnet: fetch chunk list of %s from %s: %d of %d bytes: %w", h.Short(), p.ID.Short(), n, resp.Length, ctxOr(ctx, err))
	}
	complete = true
	return resp.Length, nil
}

// FetchRange asks the peer for length bytes of the content with hash h
// from offset on and copies them to dst, returning the content's full
// size. It fails wrapping ErrNotFound when the peer does not have the
// content or it ends before offset+length; when the stream ends short or
// a write to dst fails, the stream is reset. It takes a fetch slot as
// Fetch does. The caller verifies the bytes.
func (p *Peer) FetchRange(ctx context.Context, h content.Hash, offset, length int64, dst io.Writer) (int64, error) {
	cs, err := p.openContent(ctx, &wire.RangeRequest{Hash: h, Offset: offset, Length: length})
	if err != nil {
		return 0, fmt.Errorf("quicnet: fetch %s bytes %d+%d from %s: %w", h.Short(), offset, length, p.ID.Short(), err)
	}
	complete := false
	defer func() { cs.done(complete) }()
	resp, err := readResponse(cs)
	if err != nil {
		return 0, fmt.Errorf("quicnet: fetch %s bytes %d+%d from %s: %w", h.Short(), offset, length, p.ID.Short(), ctxOr(ctx, err))
	}
	if !resp.Found {
		complete = true
		return 0, fmt.Errorf("quicnet: fetch %s bytes %d+%d from %s: %w", h.Short(), offset, length, p.ID.Short(), ErrNotFound)
	}
	n, err := copyContent(dst, cs, length)
	if err != nil {
		return resp.Size, fmt.Errorf("quicnet: fetch %s bytes %d+%d from %s: %d of %d bytes: %w", h.Short(), offset, length, p.ID.Short(), n, length, ctxOr(ctx, err))
	}
	complete = true
	return resp.Size, nil
}

// FetchBatch asks the peer for the whole contents hs (at most
// wire.MaxBatch) on one stream, and calls each for them in order: with
// the content's size and a reader of exactly its bytes, or with size -1
// and a nil reader when the peer does not have it. each must not keep r.
// It uses one fetch slot. An error from each, or from the transport,
// ends the batch; the contents each was not called for are then still
// missing, and the caller asks again (one by one, as Fetch). The caller
// verifies the hashes.
func (p *Peer) FetchBatch(ctx context.Context, hs []content.Hash, each func(i int, size int64, r io.Reader) error) error {
	cs, err := p.openContent(ctx, &wire.ContentBatchRequest{Hashes: hs})
	if err != nil {
		return fmt.Errorf("quicnet: fetch %d contents from %s: %w", len(hs), p.ID.Short(), err)
	}
	complete := false
	defer func() { cs.done(complete) }()
	br := bufio.NewReaderSize(cs, 64<<10)
	for i, h := range hs {
		resp, err := readResponse(br)
		if err != nil {
			return fmt.Errorf("quicnet: fetch %s from %s: %w", h.Short(), p.ID.Short(), ctxOr(ctx, err))
		}
		if !resp.Found {
			if err := each(i, -1, nil); err != nil {
				return err
			}
			continue
		}
		lr := &io.LimitedReader{R: br, N: resp.Size}
		if err := each(i, resp.Size, lr); err != nil {
			return err
		}
		if lr.N > 0 {
			if _, err := io.Copy(io.Discard, lr); err != nil || lr.N > 0 {
				return fmt.Errorf("quicnet: fetch %s from %s: %d bytes short: %w", h.Short(), p.ID.Short(), lr.N, ctxOr(ctx, errOr(err, io.ErrUnexpectedEOF)))
			}
		}
	}
	complete = true
	return nil
}

// ctxOr returns ctx's error when ctx ended: a stream cut short because the
// caller gave up fails with the caller's reason, not the reset it caused.
func ctxOr(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return cerr
	}
	return err
}

func errOr(err, otherwise error) error {
	if err != nil {
		return err
	}
	return otherwise
}

func readResponse(r io.Reader) (*wire.ContentResponse, error) {
	return readMessage[*wire.ContentResponse](r)
}

// readMessage reads one frame and returns it as an M, or an error naming
// what came instead.
func readMessage[M wire.Message](r io.Reader) (M, error) {
	var want M
	m, err := wire.ReadFrame(r)
	if err != nil {
		return want, err
	}
	got, ok := m.(M)
	if !ok {
		return want, fmt.Errorf("got %s, want %s", m.Type(), want.Type())
	}
	return got, nil
}

// Bounds on content streams (Transport fields that tests shorten):
//   - contentRequestWait: how long a request may take to arrive after the
//     stream's kind; the opener writes both at once, so only a peer holding
//     streams open without asking waits this long;
//   - streamOpenWait: how long opening a stream may wait for the peer's
//     stream credit; a peer grants a new stream as soon as an earlier one
//     ends, and at most Config.ContentStreams are open per peer, far below
//     the credit, so a healthy connection never waits;
//   - streamIdle: how long one read or write on a content stream (at most
//     largeCopy bytes) may take before the stream is reset: a read returns
//     as soon as anything arrives, so for the receiver this is the time the
//     peer may send nothing; a serving peer reads from its disk, and a USB
//     disk that spins up takes seconds, not this long.
const (
	contentRequestWait = 10 * time.Second
	streamOpenWait     = 20 * time.Second
	streamIdle         = 30 * time.Second
)

// serveContent answers one content stream: a single content (from an
// offset), a byte range of one, a batch of whole contents, or a chunk
// list. The request is read within wire.MaxContentRequestFrame and
// Transport.requestWait; a stream whose request is longer, late or bad
// is reset both ways, so it holds neither memory nor one of the
// connection's streams.
func (p *Peer) serveContent(s *quic.Stream) {
	defer s.Close()
	s.SetReadDeadline(time.Now().Add(p.t.requestWait))
	m, err := wire.ReadFrameLimit(s, wire.MaxContentRequestFrame)
	// Nothing more is read from the stream: its receiving side ends here,
	// so it ends on this side as soon as the peer's FIN (or reset) is in,
	// even when that comes after the request in a packet of its own.
	s.CancelRead(codeStreamDone)
	if err != nil {
		p.t.log.Warn("bad content request", "peer", p.ID.Short(), "err", err)
		s.CancelWrite(codeStreamDone)
		return
	}
	w := idleStream{s, p.t.streamIdle}
	// What the source does for the request ends when the stream does: a
	// peer that gave up holds nothing here.
	ctx := context.WithValue(s.Context(), requesterKey{}, p.ID)
	switch req := m.(type) {
	case *wire.ContentRequest:
		p.sendTimed(ctx, w, req.Hash, req.Offset, -1)
	case *wire.RangeRequest:
		p.sendTimed(ctx, w, req.Hash, req.Offset, req.Length)
	case *wire.ChunkListRequest:
		start := time.Now()
		if !p.sendChunkList(ctx, w, req.Hash) {
			s.CancelWrite(codeStreamDone)
		}
		p.t.log.Debug("chunk list sent", "peer", p.ID.Short(), "hash", req.Hash.Short(), "took", time.Since(start))
	case *wire.ContentBatchRequest:
		// Small contents are gathered into few large writes.
		bw := bufio.NewWriterSize(w, 64<<10)
		bctx := context.WithValue(ctx, batchKey{}, true)
		src := p.t.cfg.Content
		if bs, ok := src.(BatchSource); ok {
			src = bs.Batch(bctx, req.Hashes)
		}
		for _, h := range req.Hashes {
			if !p.sendContent(bctx, bw, src, h, 0, -1) {
				s.CancelWrite(codeStreamDone)
				return
			}
		}
		if bw.Flush() != nil {
			s.CancelWrite(codeStreamDone)
		}
	default:
		p.t.log.Warn("unexpected message on a content stream", "peer", p.ID.Short(), "type", m.Type())
		s.CancelWrite(codeStreamDone)
	}
}

// sendTimed answers a content or range request as sendContent does,
// resetting the stream when it must end early, and logs what the
// transfer cost the connection, for tuning: losses and the congestion
// window explain a slow large transfer.
func (p *Peer) sendTimed(ctx context.Context, w idleStream, h content.Hash, offset, length int64) {
	start, before := time.Now(), p.conn.ConnectionStats()
	if !p.sendContent(ctx, w, p.t.cfg.Content, h, offset, length) {
		w.CancelWrite(codeStreamDone)
	}
	after := p.conn.ConnectionStats()
	p.t.log.Debug("content sent", "peer", p.ID.Short(), "hash", h.Short(), "offset", offset, "length", length, "took", time.Since(start),
		"packets", after.PacketsSent-before.PacketsSent, "lost", after.PacketsLost-before.PacketsLost,
		"cwnd", after.CongestionWindow, "srtt", after.SmoothedRTT)
}

// sendContent writes the response for h and, when src has it,
// length of its bytes from offset on, or all of them from offset on when
// length is negative; a content that ends before is not found. It
// reports false when the stream must end early: the write failed, or the
// file changed or vanished under it (the receiver's hash check refuses
// what it got and asks again).
func (p *Peer) sendContent(ctx context.Context, w io.Writer, src ContentSource, h content.Hash, offset, length int64) bool {
	r, size, err := src.OpenContent(ctx, h)
	if err == nil && length < 0 {
		length = size - offset
	}
	if err != nil || offset > size || length > size-offset {
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			p.t.log.Warn("serving content failed", "peer", p.ID.Short(), "hash", h.Short(), "err", err)
		}
		if r != nil {
			r.Close()
		}
		return wire.WriteFrame(w, &wire.ContentResponse{}) == nil
	}
	defer r.Close()
	if offset > 0 {
		if _, err := r.Seek(offset, io.SeekStart); err != nil {
			return wire.WriteFrame(w, &wire.ContentResponse{}) == nil
		}
	}
	if err := wire.WriteFrame(w, &wire.ContentResponse{Found: true, Size: size}); err != nil {
		return false
	}
	_, err = copyContent(w, r, length)
	return err == nil
}

// sendChunkList writes the response for the chunk list of h and, when
// this device has one, the list. It reports false when the stream must
// end early: the write failed, or the list could not be read whole.
func (p *Peer) sendChunkList(ctx context.Context, w io.Writer, h content.Hash) bool {
	r, n, err := p.t.cfg.Content.OpenChunkList(ctx, h)
	if r != nil {
		defer r.Close()
	}
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			p.t.log.Warn("serving chunk list failed", "peer", p.ID.Short(), "hash", h.Short(), "err", err)
		}
		return wire.WriteFrame(w, &wire.ChunkListResponse{}) == nil
	}
	if r != nil && (n < 0 || n > wire.MaxChunkListBytes) {
		// The content is held: the peer can still fetch it whole.
		p.t.log.Warn("chunk list not served", "peer", p.ID.Short(), "hash", h.Short(), "length", n, "limit", int64(wire.MaxChunkListBytes))
		r, n = nil, 0
	}
	if r == nil || n == 0 {
		return wire.WriteFrame(w, &wire.ChunkListResponse{Found: true}) == nil
	}
	if err := wire.WriteFrame(w, &wire.ChunkListResponse{Found: true, Length: n}); err != nil {
		return false
	}
	_, err = copyContent(w, r, n)
	return err == nil
}

// largeCopy is the piece size in which a large content is copied. The
// sender's stream packs a write into full packets but for its tail, which
// goes alone if the next write is not there yet: with io.Copy's 32 KiB
// writes one packet in 25 was such a tail. The receiver writes the file
// in as few calls.
const largeCopy = 256 << 10

// copyContent copies n bytes from src to dst as io.CopyN does, a content
// of a MiB or more in largeCopy pieces (below, the tails are few, and many
// transfers at once would each hold a buffer).
func copyContent(dst io.Writer, src io.Reader, n int64) (int64, error) {
	if n < 4*largeCopy {
		return io.CopyN(dst, src, n)
	}
	buf := copyBufs.Get().(*[largeCopy]byte)
	defer copyBufs.Put(buf)
	got, err := io.CopyBuffer(dst, io.LimitReader(src, n), buf[:])
	if err == nil && got < n {
		err = io.EOF
	}
	return got, err
}

// copyBufs recycles largeCopy buffers; it holds no state a caller can
// observe.
var copyBufs = sync.Pool{New: func() any { return new([largeCopy]byte) }}
