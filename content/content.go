// Package content names file contents by their hash and hashes files in
// a streaming fashion, so a file of any size is hashed in constant memory.
//
// A content is cut into content-defined chunks (chunker.go). A content of
// one chunk (every content of at most MinChunk bytes) is named by the
// SHA-256 of its bytes. A longer content is named by the SHA-512/256 of
// its chunk list: each chunk's size and SHA-256, in order (chunklist.go).
// A peer that holds an older version of a file fetches the new version's
// list, checks it against the name, and then fetches only the chunks it
// finds nowhere on its own disk. A large file is cut and hashed on every
// core at once (parallel.go): the op that announces a new file waits for
// its name.
//
// SHA-256 is used because it is hardware-accelerated on the machines
// drive-node runs on (x86 SHA extensions, Apple silicon, ARMv8 crypto
// extensions on a Raspberry Pi 5 and most NAS chips) and is in the standard
// library. Cutting costs a table look-up, a shift and an add per byte,
// several times cheaper than SHA-256 (BenchmarkChunking).
//
// Contents of more than MinChunk bytes recorded before chunking (protocol
// version 3 and earlier) have older names; LegacyHasher computes those,
// so such a content can still be fetched whole and checked.
package content

import (
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"runtime"
	"sync"
)

// Size is the length in bytes of a Hash.
const Size = sha256.Size

// Hash is the SHA-256 digest of a file's bytes. The zero value means "no
// content" (a directory, a deletion) and never names real content.
type Hash [Size]byte

// EmptyHash is the hash of a zero-length file.
var EmptyHash = Hash(sha256.Sum256(nil))

// IsZero reports whether h is the zero value.
func (h Hash) IsZero() bool { return h == Hash{} }

// String returns the hash in lower-case hex.
func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// Short returns the first 12 hex digits, for logs.
func (h Hash) Short() string { return hex.EncodeToString(h[:6]) }

// ParseHash parses a 64-digit hex string.
func ParseHash(s string) (Hash, error) {
	var h Hash
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != Size {
		return h, fmt.Errorf("content: malformed hash %q", s)
	}
	copy(h[:], b)
	return h, nil
}

// BlockSize is the size of a block of the older names' content tree:
// content longer than this was named by the tree of its blocks' hashes.
const BlockSize = 8 << 20

// treePrefix starts the input of a tree's root, so that the root names
// only trees of that scheme.
const treePrefix = "drive-node content tree v1\x00"

// Sum returns the name of the content b.
func Sum(b []byte) Hash {
	if len(b) <= MinChunk {
		return Hash(sha256.Sum256(b))
	}
	h := NewHasher()
	h.Write(b)
	return h.Sum()
}

// newRoot returns the hash that combines a legacy tree's block hashes,
// written to it in order.
func newRoot() hash.Hash {
	r := sha512.New512_256()
	io.WriteString(r, treePrefix)
	return r
}

// Hasher accumulates a content's bytes and yields its name, in constant
// memory, optionally writing its chunk list as it goes. Its zero value is
// not usable; call NewHasher or NewListHasher.
type Hasher struct {
	chunks *chunkHasher
	list   lister
	done   bool
	sum    Hash
}

// NewHasher returns a Hasher with nothing written yet.
func NewHasher() *Hasher { return NewListHasher(nil) }

// NewListHasher returns a Hasher that writes the content's chunk list to
// list (nothing, for a content of one chunk). list's first error is
// returned by ListErr.
func NewListHasher(list io.Writer) *Hasher {
	h := &Hasher{list: lister{w: list}}
	h.chunks = newChunkHasher(h.list.add)
	return h
}

// Write adds p to the content. It never fails; it panics after Sum.
func (h *Hasher) Write(p []byte) (int, error) {
	if h.done {
		panic("content: Hasher written after Sum")
	}
	return h.chunks.Write(p)
}

// Sum ends the content and returns its name; it may be called again, but
// nothing may be written after it.
func (h *Hasher) Sum() Hash {
	if !h.done {
		h.chunks.close()
		h.sum, h.done = h.list.name(), true
	}
	return h.sum
}

// ListErr is the first error writing the chunk list, if any.
func (h *Hasher) ListErr() error { return h.list.err }

// LegacyHasher accumulates bytes and yields their name as protocol
// version 3 and earlier gave it: SHA-256 up to BlockSize bytes, above it
// the tree of BlockSize blocks. Its zero value is not usable; call
// NewLegacyHasher.
type LegacyHasher struct {
	leaf   hash.Hash // the current block's SHA-256
	inLeaf int64     // bytes of the current block written
	// root has the hashes of the blocks before the current one written
	// to it; it is nil until a block is closed. A block is closed only
	// when a byte beyond it arrives: content of exactly BlockSize bytes
	// is not a tree.
	root hash.Hash
}

// NewLegacyHasher returns a LegacyHasher with nothing written yet.
func NewLegacyHasher() *LegacyHasher { return &LegacyHasher{leaf: sha256.New()} }

// Write adds p to the hashed stream. It never fails.
func (h *LegacyHasher) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		if h.inLeaf == BlockSize {
			if h.root == nil {
				h.root = newRoot()
			}
			leaf := sumOf(h.leaf)
			h.root.Write(leaf[:])
			h.leaf.Reset()
			h.inLeaf = 0
		}
		k := min(int64(len(p)), BlockSize-h.inLeaf)
		h.leaf.Write(p[:k])
		h.inLeaf += k
		p = p[k:]
	}
	return n, nil
}

// Sum returns the hash of everything written so far; more may be written
// after it.
func (h *LegacyHasher) Sum() Hash {
	if h.root == nil {
		return sumOf(h.leaf)
	}
	r, err := h.root.(hash.Cloner).Clone()
	if err != nil {
		panic("content: the standard library's SHA-512/256 cannot be cloned: " + err.Error())
	}
	leaf := sumOf(h.leaf)
	r.Write(leaf[:])
	return sumOf(r)
}

func sumOf(h hash.Hash) Hash {
	var out Hash
	h.Sum(out[:0])
	return out
}

// bufSize is the read size used when hashing files: large enough to
// amortise syscalls, small enough to keep memory flat.
const bufSize = 256 << 10

// bufs recycles hashing buffers: a burst of thousands of small files
// would otherwise allocate a buffer per file and keep the collector busy.
// It holds no state a caller can observe.
var bufs = sync.Pool{New: func() any { return new([bufSize]byte) }}

// Reader names everything read from r, reading bufSize bytes at a time,
// and returns the name and the number of bytes read. It checks ctx
// between reads.
func Reader(ctx context.Context, r io.Reader) (Hash, int64, error) {
	return readInto(ctx, r, NewHasher())
}

// ListReaderOf names everything read from r as Reader does and writes
// its chunk list to list (nothing for a content of one chunk).
func ListReaderOf(ctx context.Context, r io.Reader, list io.Writer) (Hash, int64, error) {
	h := NewListHasher(list)
	sum, n, err := readInto(ctx, r, h)
	if err == nil {
		err = h.ListErr()
	}
	return sum, n, err
}

// readInto copies r into h and returns h's sum.
func readInto(ctx context.Context, r io.Reader, h interface {
	io.Writer
	Sum() Hash
}) (Hash, int64, error) {
	b := bufs.Get().(*[bufSize]byte)
	defer bufs.Put(b)
	buf := b[:]
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return Hash{}, n, err
		}
		m, err := r.Read(buf)
		if m > 0 {
			h.Write(buf[:m])
			n += int64(m)
		}
		if errors.Is(err, io.EOF) {
			return h.Sum(), n, nil
		}
		if err != nil {
			return Hash{}, n, err
		}
	}
}

// File names the file at path; see Open.
func File(ctx context.Context, path string) (Hash, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return Hash{}, 0, fmt.Errorf("content: hash %s: %w", path, err)
	}
	defer f.Close()
	h, n, err := Open(ctx, f)
	if err != nil {
		return Hash{}, n, fmt.Errorf("content: hash %s: %w", path, err)
	}
	return h, n, nil
}

// Open names the open file f from its start (a pipe or device from where
// it is), a large regular file on every core.
// It names the size f has when Open begins and returns that size: a file
// that grows meanwhile is named up to it, and the caller, comparing the
// size, sees that the file changed. A file that shrinks meanwhile is
// named again to its end, as Reader would.
func Open(ctx context.Context, f *os.File) (Hash, int64, error) {
	return OpenList(ctx, f, nil)
}

// OpenList names f as Open does and writes its chunk list to list (when
// list is not nil and the content has more than one chunk).
func OpenList(ctx context.Context, f *os.File, list io.Writer) (Hash, int64, error) {
	st, err := f.Stat()
	if err != nil {
		return Hash{}, 0, err
	}
	if !st.Mode().IsRegular() {
		return ListReaderOf(ctx, f, list) // no ReadAt on a pipe or device
	}
	size := st.Size()
	if size < parallelFrom || runtime.GOMAXPROCS(0) == 1 {
		return ListReaderOf(ctx, io.NewSectionReader(f, 0, 1<<62), list)
	}
	h, err := parallel(ctx, f, size, list)
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return ListReaderOf(ctx, io.NewSectionReader(f, 0, 1<<62), list)
	}
	if err != nil {
		return Hash{}, 0, err
	}
	return h, size, nil
}

// Checker names a stream both ways, as Hasher and as LegacyHasher, so
// that a content announced under either name can be checked: a file
// recorded before chunking keeps its older name until it changes. Its
// zero value is not usable; call NewChecker.
type Checker struct {
	cur *Hasher
	old *LegacyHasher // nil when both names are one (one chunk)
}

// NewChecker returns a Checker for a content of size bytes.
func NewChecker(size int64) *Checker {
	c := &Checker{cur: NewHasher()}
	if size > MinChunk {
		c.old = NewLegacyHasher()
	}
	return c
}

// Write adds p to the content. It never fails.
func (c *Checker) Write(p []byte) (int, error) {
	c.cur.Write(p)
	if c.old != nil {
		c.old.Write(p)
	}
	return len(p), nil
}

// Matches ends the content and reports whether h names it either way.
func (c *Checker) Matches(h Hash) bool {
	return c.cur.Sum() == h || (c.old != nil && c.old.Sum() == h)
}
