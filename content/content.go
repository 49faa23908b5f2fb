// Package content names file contents by their hash and hashes files in
// a streaming fashion, so a file of any size is hashed in constant memory.
//
// Content of up to BlockSize bytes is named by the SHA-256 of its bytes.
// Longer content is named by a tree: the SHA-256 of each BlockSize block,
// combined by SHA-512/256 under a fixed prefix. The blocks of a file are
// independent, so a large file is hashed on every core at once; the op
// that announces a new file waits for its hash, and on a gigabit link a
// single core's hashing of a large file is a noticeable part of the time
// until a peer has it (on a board without SHA instructions, most of it).
// The root is a different function from the leaves, so a tree's name is
// never the SHA-256 of some other (short) content.
//
// SHA-256 is used because it is hardware-accelerated on the machines
// drive-node runs on (x86 SHA extensions, Apple silicon, ARMv8 crypto
// extensions on a Raspberry Pi 5 and most NAS chips) and is in the standard
// library.
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
	"sync/atomic"
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

// BlockSize is the size of a block of the content tree: content longer
// than this is named by the tree of its blocks' hashes.
const BlockSize = 8 << 20

// treePrefix starts the input of a tree's root, so that the root names
// only trees of this scheme.
const treePrefix = "drive-node content tree v1\x00"

// Sum returns the hash of b.
func Sum(b []byte) Hash {
	if len(b) <= BlockSize {
		return Hash(sha256.Sum256(b))
	}
	h := NewHasher()
	h.Write(b)
	return h.Sum()
}

// newRoot returns the hash that combines a tree's block hashes, written
// to it in order.
func newRoot() hash.Hash {
	r := sha512.New512_256()
	io.WriteString(r, treePrefix)
	return r
}

// root combines the hashes of a tree's blocks, in order.
func root(leaves []Hash) Hash {
	r := newRoot()
	for _, l := range leaves {
		r.Write(l[:])
	}
	return sumOf(r)
}

// Hasher accumulates bytes and yields their Hash, in constant memory.
// Its zero value is not usable; call NewHasher.
type Hasher struct {
	leaf   hash.Hash // the current block's SHA-256
	inLeaf int64     // bytes of the current block written
	// root has the hashes of the blocks before the current one written
	// to it; it is nil until a block is closed. A block is closed only
	// when a byte beyond it arrives: content of exactly BlockSize bytes
	// is not a tree.
	root hash.Hash
}

// NewHasher returns a Hasher with nothing written yet.
func NewHasher() *Hasher { return &Hasher{leaf: sha256.New()} }

// Write adds p to the hashed stream. It never fails.
func (h *Hasher) Write(p []byte) (int, error) {
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
func (h *Hasher) Sum() Hash {
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

// Reader hashes everything read from r in bufSize chunks and returns the hash
// and the number of bytes read. It checks ctx between chunks.
func Reader(ctx context.Context, r io.Reader) (Hash, int64, error) {
	h := NewHasher()
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

// File hashes the file at path; see Open.
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

// Open hashes the open file f from its start (a pipe or device from where
// it is), a regular file's blocks on every core.
// It hashes the size f has when Open begins and returns that size: a file
// that grows meanwhile is hashed up to it, and the caller, comparing the
// size, sees that the file changed. A file that shrinks meanwhile is
// hashed again to its end, as Reader would.
func Open(ctx context.Context, f *os.File) (Hash, int64, error) {
	st, err := f.Stat()
	if err != nil {
		return Hash{}, 0, err
	}
	if !st.Mode().IsRegular() {
		return Reader(ctx, f) // no ReadAt on a pipe or device
	}
	size := st.Size()
	if size <= BlockSize {
		return Reader(ctx, io.NewSectionReader(f, 0, 1<<62))
	}
	h, err := blocks(ctx, f, size)
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return Reader(ctx, io.NewSectionReader(f, 0, 1<<62))
	}
	if err != nil {
		return Hash{}, 0, err
	}
	return h, size, nil
}

// blocks hashes the first size bytes of r (size > BlockSize) as a tree,
// with one worker per core. It returns io.ErrUnexpectedEOF if r ends
// before size.
func blocks(ctx context.Context, r io.ReaderAt, size int64) (Hash, error) {
	leaves := make([]Hash, (size+BlockSize-1)/BlockSize)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, min(runtime.GOMAXPROCS(0), len(leaves)))
	for w := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(len(leaves)) {
					return
				}
				off := i * BlockSize
				n := min(BlockSize, size-off)
				h, got, err := Reader(ctx, io.NewSectionReader(r, off, n))
				if err == nil && got != n {
					err = io.ErrUnexpectedEOF
				}
				if err != nil {
					errs[w] = err
					next.Store(int64(len(leaves))) // the others stop too
					return
				}
				leaves[i] = h
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return Hash{}, err
	}
	return root(leaves), nil
}
