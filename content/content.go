// Package content names file contents by their SHA-256 digest and hashes
// files in a streaming fashion, so a file of any size is hashed in constant
// memory.
//
// SHA-256 is used because it is hardware-accelerated on the machines
// drive-node runs on (x86 SHA extensions, Apple silicon, ARMv8 crypto
// extensions on a Raspberry Pi 5 and most NAS chips) and is in the standard
// library; on a Raspberry Pi 4, which lacks those instructions, it still
// hashes faster than its gigabit link delivers data.
package content

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
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

// Sum returns the hash of b.
func Sum(b []byte) Hash { return Hash(sha256.Sum256(b)) }

// Hasher accumulates bytes and yields their Hash. Its zero value is not
// usable; call NewHasher.
type Hasher struct{ h hash.Hash }

// NewHasher returns a Hasher with nothing written yet.
func NewHasher() *Hasher { return &Hasher{h: sha256.New()} }

// Write adds p to the hashed stream. It never fails.
func (h *Hasher) Write(p []byte) (int, error) { return h.h.Write(p) }

// Sum returns the hash of everything written so far.
func (h *Hasher) Sum() Hash {
	var out Hash
	h.h.Sum(out[:0])
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

// File hashes the file at path. The returned size is the number of bytes
// that were hashed.
func File(ctx context.Context, path string) (Hash, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return Hash{}, 0, fmt.Errorf("content: hash %s: %w", path, err)
	}
	defer f.Close()
	h, n, err := Reader(ctx, f)
	if err != nil {
		return Hash{}, n, fmt.Errorf("content: hash %s: %w", path, err)
	}
	return h, n, nil
}
