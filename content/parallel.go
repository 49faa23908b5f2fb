package content

import (
	"context"
	"io"
	"runtime"
	"slices"
	"sync"
)

// A large file is cut and hashed on every core. The file is taken in
// rounds of one segment per worker. The first worker starts at a true cut
// (the content's start, or the last cut of the round before). Every other
// worker starts at its segment's start as if a cut were there: because the
// gear hash at a position depends only on the 64 bytes ending there, its
// cuts soon fall where a single pass would have put them, and from the
// first cut the two share they are the same. Each worker but the last goes
// on cutting up to overlap bytes into the next segment; stitching keeps the
// previous worker's chunks up to the first cut both found, then the next
// worker's. When they share none in the overlap (a long run of one byte
// value has no cut but every MaxChunk bytes, wherever one starts), that
// segment is cut again, in one pass, from the last true cut. The result is
// always the cuts of one pass from the start; the tests check it.
const (
	// parallelFrom is the size from which a file is cut on every core.
	parallelFrom = 16 << 20
	// segmentSize is what one worker cuts in a round.
	segmentSize = 16 << 20
	// overlap is how far a worker cuts into the next segment.
	overlap = 4 * MaxChunk
)

// parallel names the first size bytes of r, cutting and hashing on every
// core, and writes its chunk list to list when list is not nil. It
// returns io.ErrUnexpectedEOF if r ends before size.
func parallel(ctx context.Context, r io.ReaderAt, size int64, list io.Writer) (Hash, error) {
	l := lister{w: list}
	workers := runtime.GOMAXPROCS(0)
	for pos := int64(0); pos < size; {
		var starts []int64
		for k := 0; k < workers && pos+int64(k)*segmentSize < size; k++ {
			starts = append(starts, pos+int64(k)*segmentSize)
		}
		roundEnd := min(size, pos+int64(len(starts))*segmentSize)
		stopOf := func(k int) int64 {
			if k == len(starts)-1 {
				return roundEnd
			}
			return starts[k+1] + overlap
		}
		cuts := make([][]Chunk, len(starts))
		errs := make([]error, len(starts))
		var wg sync.WaitGroup
		for k := range starts {
			wg.Add(1)
			go func() {
				defer wg.Done()
				cuts[k], errs[k] = cutRange(ctx, r, size, starts[k], stopOf(k))
			}()
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				return Hash{}, err
			}
		}
		chain := cuts[0]
		for k := 1; k < len(starts); k++ {
			if joined, ok := stitch(chain, cuts[k], starts[k]); ok {
				chain = joined
				continue
			}
			again, err := cutRange(ctx, r, size, chain[len(chain)-1].End(), stopOf(k))
			if err != nil {
				return Hash{}, err
			}
			chain = append(chain, again...)
		}
		for _, c := range chain {
			l.add(c)
		}
		pos = chain[len(chain)-1].End()
	}
	if l.err != nil {
		return Hash{}, l.err
	}
	return l.name(), nil
}

// stitch joins the true chunks chain with next, cut from from as if a cut
// were there: chain's chunks up to the first cut past from that both
// have, then next's. It reports false when they share no such cut.
func stitch(chain, next []Chunk, from int64) ([]Chunk, bool) {
	for i, c := range chain {
		if c.End() <= from {
			continue
		}
		j, found := slices.BinarySearchFunc(next, c.End(), func(n Chunk, end int64) int {
			return int(n.End() - end)
		})
		if found {
			return append(chain[:i+1:i+1], next[j+1:]...), true
		}
	}
	return nil, false
}

// cutRange cuts and hashes r from start, taken to be a cut, until the
// first cut at or after stop (or the content's end at size), and returns
// the chunks.
func cutRange(ctx context.Context, r io.ReaderAt, size, start, stop int64) ([]Chunk, error) {
	var chunks []Chunk
	ch := newChunkHasher(func(c Chunk) { chunks = append(chunks, c) })
	ch.start = start
	b := bufs.Get().(*[bufSize]byte)
	defer bufs.Put(b)
	for pos := start; pos < size; {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		p := b[:min(bufSize, size-pos)]
		if err := readFull(r, p, pos); err != nil {
			return nil, err
		}
		for len(p) > 0 {
			k, cut := ch.cut.next(p)
			ch.sha.Write(p[:k])
			ch.n += int64(k)
			p, pos = p[k:], pos+int64(k)
			if cut {
				ch.close()
				if pos >= stop {
					return chunks, nil
				}
			}
		}
	}
	ch.close()
	return chunks, nil
}

// readFull fills p from r at off; a file that ends first is
// io.ErrUnexpectedEOF.
func readFull(r io.ReaderAt, p []byte, off int64) error {
	n, err := r.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
