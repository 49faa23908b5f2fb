package node

import (
	"bufio"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"

	"github.com/drive-node/drive-node/content"
	"github.com/drive-node/drive-node/quicnet"
)

// chunkFetcher is a peer that can send a content's chunk list and ranges
// of its bytes (a *quicnet.Peer).
type chunkFetcher interface {
	FetchChunkList(ctx context.Context, h content.Hash, limit int64, dst io.Writer) (int64, error)
	FetchRange(ctx context.Context, h content.Hash, offset, length int64, dst io.Writer) (int64, error)
}

// errNoList says that no chunk list of a content is to be had: it is
// fetched whole (a content named before chunking, or one a peer holds
// without its list).
var errNoList = errors.New("no chunk list")

// Missing chunks are fetched in runs of adjacent chunks, at most runBytes
// long, several at once, spread over the peers that have the content.
const (
	runBytes     = 16 << 20
	runsInFlight = 4
	// sourcesPerChunk bounds the places the index offers for one chunk.
	sourcesPerChunk = 4
)

// assemble makes the content h of size bytes, which has a chunk list,
// available as a complete, fsynced, verified temp file in the staging directory
// (stagedName) and returns its name. It takes the list from the list
// store or a peer, then each chunk: already in the temp file (an earlier
// attempt), or copied from a content this device holds that has it (the
// chunk index), or else fetched from a peer, in runs of adjacent chunks,
// several runs at once. Every chunk is checked against the list and the
// list against h, so the whole is h. A failed attempt keeps the temp file
// for the next one. It returns errNoList when no peer has a list for h.
func (n *Node) assemble(ctx context.Context, h content.Hash, size int64, peers []contentFetcher) (string, error) {
	if err := n.obtainList(ctx, h, size, peers); err != nil {
		return "", err
	}
	name := stagedName(h)
	f, err := n.createStaged(name, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return "", fmt.Errorf("open %s: %w", name, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("stat %s: %w", name, err)
	}
	// An earlier attempt's chunks lie below had. The file is not made
	// full size ahead: on a disk without sparse files (exFAT, FAT) that
	// would write every byte twice.
	had := st.Size()
	if had > size {
		if err := f.Truncate(size); err != nil {
			return "", fmt.Errorf("size %s: %w", name, err)
		}
	}
	lf, _, err := n.lists.open(h)
	if err != nil {
		return "", fmt.Errorf("chunk list of %s: %w", h.Short(), err)
	}
	defer lf.Close()
	a := &assembly{n: n, h: h, f: f, had: min(had, size), peers: chunkPeers(peers), sources: map[content.Hash][]io.ReaderAt{}}
	// With no other content indexed (a first sync), no chunk is looked
	// up, thousands of look-ups finding nothing, unless this device holds
	// h itself (a copy).
	a.lookup, _ = n.db.ChunksBesides(ctx, h)
	if r, _, err := n.openContent(ctx, h); err == nil {
		r.Close()
		a.lookup = true
	}
	a.wb = newWriteBehind(f, 0)
	a.wb.flush = func() error { return n.flushData(f) }
	defer a.wb.stop()
	defer a.closeSources()
	done := n.busyWith()
	err = a.run(ctx, content.NewListReader(lf))
	done()
	if err != nil {
		if errors.Is(err, syscall.ENOSPC) {
			a.wb.stop()
			f.Close()
			n.folderRoot().Remove(name) // the space back; retried from scratch
			return "", fmt.Errorf("content %s: %w: %w", h.Short(), ErrDiskFull, err)
		}
		return "", fmt.Errorf("content %s: %w", h.Short(), err)
	}
	if a.resumed > 0 {
		n.log.Info("resumed a transfer", "hash", h.Short(), "kept", a.resumed, "copied", a.copied, "fetched", a.fetched)
	}
	n.log.Debug("content assembled", "hash", h.Short(), "size", size, "resumed", a.resumed, "copied", a.copied, "fetched", a.fetched)
	if err := n.syncReceived(a.wb, name, h, size); err != nil {
		return "", err
	}
	return name, nil
}

// chunkPeers returns the peers that can send chunks.
func chunkPeers(peers []contentFetcher) []chunkFetcher {
	var out []chunkFetcher
	for _, p := range peers {
		if cf, ok := p.(chunkFetcher); ok {
			out = append(out, cf)
		}
	}
	return out
}

// obtainList makes sure the list store holds a list naming h, of a
// content of size bytes: the one it has, or one fetched from a peer and
// checked as it arrives. It returns errNoList when the peers that have h
// have no list for it.
func (n *Node) obtainList(ctx context.Context, h content.Hash, size int64, peers []contentFetcher) error {
	if n.lists == nil {
		return errNoList
	}
	if f, _, err := n.lists.open(h); err == nil {
		ok := listNames(f, h, size) == nil
		f.Close()
		if ok {
			return nil
		}
		n.lists.remove(h.String())
	}
	cps := chunkPeers(peers)
	if len(cps) == 0 {
		if len(peers) == 0 {
			return fmt.Errorf("content %s: %w: no connected peer to fetch it from", h.Short(), ErrContentUnavailable)
		}
		return errNoList
	}
	var errs []error
	noList := 0
	for _, p := range cps {
		finished := n.transfer(p, h, size)
		err := n.fetchList(ctx, h, size, p)
		finished(err)
		if err == nil {
			n.indexSoon(ctx, h)
			return nil
		}
		if errors.Is(err, errNoList) {
			noList++
			continue
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		n.log.Warn("fetching a chunk list failed", "hash", h.Short(), "err", err)
		errs = append(errs, err)
	}
	if noList > 0 || len(cps) < len(peers) {
		return errNoList // a peer that can send it whole may have it
	}
	why := ErrContentUnavailable
	if allNotFound(errs) {
		why = ErrContentNowhere
	}
	return fmt.Errorf("content %s: %w: %w", h.Short(), why, errors.Join(errs...))
}

// fetchList fetches h's list from p into the list store, checking that it
// names h and adds up to size.
func (n *Node) fetchList(ctx context.Context, h content.Hash, size int64, p chunkFetcher) error {
	tmp, tmpName, err := n.lists.create()
	if err != nil {
		return fmt.Errorf("chunk list of %s: %w", h.Short(), err)
	}
	defer n.lists.remove(tmpName)
	bw := bufio.NewWriterSize(tmp, 64<<10)
	length, err := p.FetchChunkList(ctx, h, content.MaxListBytes(size), bw)
	if err == nil {
		err = bw.Flush()
	}
	if err == nil && length == 0 {
		err = errNoList
	}
	if err == nil {
		_, err = tmp.Seek(0, io.SeekStart)
	}
	if err == nil {
		err = listNames(tmp, h, size)
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return n.lists.keep(tmpName, h)
}

// listNames reads the list r holds and checks that it names h and adds up
// to size.
func listNames(r io.Reader, h content.Hash, size int64) error {
	lr := content.NewListReader(r)
	for {
		if _, err := lr.Next(); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return err
		}
	}
	if lr.Name() != h {
		return fmt.Errorf("the chunk list names %s, not %s: %w", lr.Name().Short(), h.Short(), ErrHashMismatch)
	}
	if lr.Size() != size {
		return fmt.Errorf("the chunk list adds up to %d bytes, the op says %d: %w", lr.Size(), size, ErrSizeMismatch)
	}
	return nil
}

// assembly is one assemble of a content into its temp file.
type assembly struct {
	n     *Node
	h     content.Hash
	f     File
	had   int64 // the temp file's size before: chunks below may be there
	peers []chunkFetcher
	wb    *writeBehind
	wbMu  sync.Mutex

	// sources are the contents opened to copy chunks from, nil for one
	// that could not be opened. Only the planning goroutine uses them.
	sources map[content.Hash][]io.ReaderAt
	closers []io.Closer
	buf     [content.MaxChunk]byte

	lookup bool // the chunk index may place chunks in other contents

	resumed, copied, fetched int64 // bytes, for the log
}

// run goes through the list, taking each chunk from the temp file or this
// device, and fetches the rest in runs.
func (a *assembly) run(ctx context.Context, lr *content.ListReader) error {
	// The first run that fails ends the others: the peer is gone or
	// failing, and the next attempt resumes from what is assembled.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	runs := make(chan []content.Chunk)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	// The simulation fetches one thing at a time, so a seed's
	// changes come in one order.
	for range min(runsInFlight, max(1, a.n.fetchWorkers)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for run := range runs {
				if err := a.fetchRun(ctx, run); err != nil {
					mu.Lock()
					if len(errs) == 0 || ctx.Err() == nil {
						errs = append(errs, err)
					}
					mu.Unlock()
					cancel()
				}
			}
		}()
	}
	var run []content.Chunk
	var runLen int64
	flush := func() {
		if len(run) > 0 {
			select {
			case runs <- run:
			case <-ctx.Done():
			}
			run, runLen = nil, 0
		}
	}
	var err error
	for err == nil {
		var c content.Chunk
		c, err = lr.Next()
		if err != nil {
			break
		}
		if ctx.Err() != nil {
			err = ctx.Err()
			break
		}
		var found bool
		found, err = a.local(ctx, c)
		if err != nil || found {
			flush()
			continue
		}
		if len(run) > 0 && (run[len(run)-1].End() != c.Offset || runLen+c.Size > runBytes) {
			flush()
		}
		run = append(run, c)
		runLen += c.Size
	}
	flush()
	close(runs)
	wg.Wait()
	if !errors.Is(err, io.EOF) {
		return err
	}
	if lr.Name() != a.h {
		return fmt.Errorf("the chunk list changed: it names %s: %w", lr.Name().Short(), ErrHashMismatch)
	}
	return errors.Join(errs...)
}

// local writes chunk c from this device into the temp file, if it is
// here: in the temp file already, or in a content the chunk index names.
func (a *assembly) local(ctx context.Context, c content.Chunk) (bool, error) {
	b := a.buf[:c.Size]
	if c.End() <= a.had {
		if _, err := a.f.ReadAt(b, c.Offset); err == nil && content.Hash(sha256.Sum256(b)) == c.Hash {
			a.resumed += c.Size
			return true, nil
		}
	}
	if !a.lookup {
		return false, nil
	}
	srcs, err := a.n.db.ChunkSources(ctx, c.Hash, c.Size, sourcesPerChunk)
	if err != nil {
		return false, nil // the index only spares fetches
	}
	for _, s := range srcs {
		for _, r := range a.source(ctx, s.Content) {
			if _, err := r.ReadAt(b, s.Offset); err != nil || content.Hash(sha256.Sum256(b)) != c.Hash {
				continue
			}
			if err := a.writeAt(b, c.Offset); err != nil {
				return false, err
			}
			a.copied += c.Size
			return true, nil
		}
	}
	return false, nil
}

// source opens the content h to read chunks from: a recorded file that
// holds it or its copy in the version store (a copy of a content held
// here is assembled from it whole), else a transfer's temp file (this
// one's included: a chunk that recurs is copied from where it was
// assembled).
func (a *assembly) source(ctx context.Context, h content.Hash) []io.ReaderAt {
	if rs, ok := a.sources[h]; ok {
		return rs
	}
	var rs []io.ReaderAt
	if rc, _, err := a.n.openContent(ctx, h); err == nil {
		if ra, ok := rc.(io.ReaderAt); ok {
			rs = append(rs, ra)
		}
		a.closers = append(a.closers, rc)
	}
	if h == a.h {
		rs = append(rs, a.f)
	} else if f, err := a.n.folderRoot().Open(stagedName(h)); err == nil {
		rs = append(rs, f)
		a.closers = append(a.closers, f)
	}
	a.sources[h] = rs
	return rs
}

func (a *assembly) closeSources() {
	for _, c := range a.closers {
		c.Close()
	}
}

// writeAt writes b at off in the temp file, starting its writeback, and
// has it flushed in the background every flushStep bytes (see
// writeBehind).
func (a *assembly) writeAt(b []byte, off int64) error {
	if _, err := a.f.WriteAt(b, off); err != nil {
		return fmt.Errorf("write %s: %w", stagedName(a.h), err)
	}
	startWriteback(a.f, off, int64(len(b)))
	a.wbMu.Lock()
	defer a.wbMu.Unlock()
	a.wb.off += int64(len(b))
	if a.wb.off-a.wb.flushedAt >= a.wb.flushStep {
		a.wb.flushedAt = a.wb.off
		a.wb.startFlush()
	}
	return nil
}

// fetchRun fetches the adjacent chunks run, trying each peer (starting
// with one picked by the run's place, so runs spread over the peers)
// twice at most. A peer that sends a chunk that is not what the list
// says is cut off at that chunk and the run asked of the next.
func (a *assembly) fetchRun(ctx context.Context, run []content.Chunk) error {
	if len(a.peers) == 0 {
		return fmt.Errorf("%w: no connected peer to fetch chunks from", ErrContentUnavailable)
	}
	start, end := run[0].Offset, run[len(run)-1].End()
	first := int(start/runBytes) % len(a.peers)
	var errs []error
	for attempt := range 2 * len(a.peers) {
		p := a.peers[(first+attempt)%len(a.peers)]
		w := &runWriter{a: a, run: run, pos: start, buf: make([]byte, 0, content.MaxChunk)}
		_, err := p.FetchRange(ctx, a.h, start, end-start, w)
		if err == nil && w.pos != end {
			err = io.ErrUnexpectedEOF
		}
		if err == nil {
			a.n.received(p, end-start)
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if errors.Is(err, syscall.ENOSPC) {
			return err
		}
		a.n.log.Warn("fetching chunks failed", "hash", a.h.Short(), "offset", start, "bytes", end-start, "err", err)
		errs = append(errs, err)
	}
	why := ErrContentUnavailable
	if allNotFound(errs) {
		why = ErrContentNowhere
	}
	return fmt.Errorf("bytes %d-%d: %w: %w", start, end, why, errors.Join(errs...))
}

// runWriter takes a run's bytes as they arrive, checks each chunk against
// the list when it is whole and writes it into the temp file. A chunk
// that does not match fails the write, which ends the transfer.
type runWriter struct {
	a   *assembly
	run []content.Chunk
	pos int64 // offset of the next byte
	buf []byte
}

func (w *runWriter) Write(p []byte) (int, error) {
	total := len(p)
	for len(p) > 0 {
		if len(w.run) == 0 {
			return total - len(p), fmt.Errorf("the peer sent more: %w", ErrSizeMismatch)
		}
		c := w.run[0]
		k := min(len(p), int(c.Size)-len(w.buf))
		w.buf = append(w.buf, p[:k]...)
		p = p[k:]
		if int64(len(w.buf)) < c.Size {
			continue
		}
		if content.Hash(sha256.Sum256(w.buf)) != c.Hash {
			return total - len(p), fmt.Errorf("chunk at %d: %w", c.Offset, ErrHashMismatch)
		}
		if err := w.a.writeAt(w.buf, c.Offset); err != nil {
			return total - len(p), err
		}
		w.a.fetchedAdd(c.Size)
		w.pos = c.End()
		w.run = w.run[1:]
		w.buf = w.buf[:0]
	}
	return total, nil
}

func (a *assembly) fetchedAdd(n int64) {
	a.wbMu.Lock()
	a.fetched += n
	a.wbMu.Unlock()
}

var _ chunkFetcher = (*quicnet.Peer)(nil)
