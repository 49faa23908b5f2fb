package content

import (
	"crypto/sha256"
	"encoding/binary"
)

// Content is cut into chunks where its bytes say, not at fixed offsets, so
// that an insertion or deletion moves only the cuts near it and a peer
// that holds the old content fetches only the chunks that changed. The
// chunker is FastCDC's (Xia et al., "FastCDC: a Fast and Efficient
// Content-Defined Chunking Approach for Data Deduplication", USENIX ATC
// 2016) with normalized chunking, in one variation: where FastCDC starts
// its gear hash at zero past a chunk's first MinChunk bytes, this one
// starts it over the 64 bytes before, so the hash at any position is over
// the 64 bytes that end there and nothing else. That lets File cut a
// large file on every core (see parallel.go) and still find exactly the
// cuts one pass would.
//
// The gear hash after byte i is fp(i) = the sum over the 64 bytes b(i-j),
// j = 0..63, of gear[b(i-j)] << j (mod 2^64): computed as fp = fp<<1 +
// gear[b] from fp = 0 over those 64 bytes. A cut follows byte
// i (the chunk ends with it) when the chunk, ending there, would be
//   - longer than MinChunk and at most NormalChunk bytes, and the top
//     smallMaskBits of fp(i) are all zero, or
//   - longer than NormalChunk bytes, and the top largeMaskBits are zero,
//     or
//   - MaxChunk bytes;
//
// and the content's end ends its last chunk. Content of at most MinChunk
// bytes is always one chunk. The small mask's stricter test before
// NormalChunk and the looser one after it draw chunk sizes towards
// NormalChunk (FastCDC's normalized chunking).
const (
	MinChunk      = 64 << 10
	NormalChunk   = 128 << 10
	MaxChunk      = 512 << 10
	smallMaskBits = 18
	largeMaskBits = 15
)

const (
	smallMask = uint64(1<<smallMaskBits-1) << (64 - smallMaskBits)
	largeMask = uint64(1<<largeMaskBits-1) << (64 - largeMaskBits)
)

// gearPrefix seeds the gear table: entry b is the first 8 bytes, big
// endian, of SHA-256(gearPrefix || b). The table is derived rather than
// written out so that anyone can check it; it differs from the FastCDC
// paper's, so the cuts differ from other FastCDC programs' (the vectors in
// testdata/chunks.json pin ours).
const gearPrefix = "drive-node gear v1\x00"

// gearTable is the gear hash's byte table.
type gearTable [256]uint64

// newGearTable derives the table from gearPrefix.
func newGearTable() *gearTable {
	var g gearTable
	for b := range g {
		s := sha256.Sum256(append([]byte(gearPrefix), byte(b)))
		g[b] = binary.BigEndian.Uint64(s[:8])
	}
	return &g
}

// gear is the table every chunker uses; it never changes after start-up.
var gear = newGearTable()

// cutter finds cuts in a stream of bytes given to it in pieces. Its zero
// value starts a content, or a chunk at a cut.
type cutter struct {
	fp uint64 // gear hash once the current chunk is past MinChunk bytes
	n  int64  // bytes of the current chunk so far
	// tail holds the last tn bytes skipped (at most 64): the first MinChunk
	// bytes of a chunk are not hashed, but the gear hash where the search
	// starts is over the 64 bytes before, and a piece may end among them.
	tail [64]byte
	tn   int
}

// keep adds b to the bytes skipped so far.
func (c *cutter) keep(b []byte) {
	if len(b) >= len(c.tail) {
		c.tn = copy(c.tail[:], b[len(b)-len(c.tail):])
		return
	}
	drop := max(0, c.tn+len(b)-len(c.tail))
	copy(c.tail[:], c.tail[drop:c.tn])
	c.tn = c.tn - drop + copy(c.tail[c.tn-drop:], b)
}

// next consumes p up to and including the next cut and reports how many
// bytes it took and whether they end a chunk. Without a cut it takes all
// of p.
func (c *cutter) next(p []byte) (int, bool) {
	g := gear
	fp, n, i := c.fp, c.n, 0
	if n < MinChunk {
		// The first MinChunk bytes of a chunk are skipped; the gear hash
		// starts over the 64 bytes that end them, which makes it the same
		// as a hash over every byte would be there.
		i = min(len(p), int(MinChunk-n))
		n += int64(i)
		if n < MinChunk {
			c.keep(p[:i])
			c.n = n
			return i, false
		}
		fp = 0
		if i < 64 {
			for _, x := range c.tail[c.tn-(64-i) : c.tn] {
				fp = fp<<1 + g[x]
			}
		}
		for _, x := range p[max(0, i-64):i] {
			fp = fp<<1 + g[x]
		}
		c.tn = 0
	}
	if n < NormalChunk && i < len(p) {
		q := p[i:min(len(p), i+int(NormalChunk-n))]
		if k := search(&fp, q, smallMask); k > 0 {
			c.fp, c.n = 0, 0
			return i + k, true
		}
		n += int64(len(q))
		i += len(q)
	}
	if n >= NormalChunk && i < len(p) {
		q := p[i:min(len(p), i+int(MaxChunk-n))]
		if k := search(&fp, q, largeMask); k > 0 {
			c.fp, c.n = 0, 0
			return i + k, true
		}
		n += int64(len(q))
		i += len(q)
	}
	if n == MaxChunk {
		c.fp, c.n = 0, 0
		return i, true
	}
	c.fp, c.n = fp, n
	return i, false
}

// search rolls the gear hash *fp over q and returns the length of q up to
// and including the first byte after which the hash's bits under mask are
// all zero, or 0 when there is none.
func search(fp *uint64, q []byte, mask uint64) int {
	g, h := gear, *fp
	for j, x := range q {
		h = h<<1 + g[x]
		if h&mask == 0 {
			*fp = h
			return j + 1
		}
	}
	*fp = h
	return 0
}
