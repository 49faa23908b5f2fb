package content

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"io"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

func TestFileMatchesSum(t *testing.T) {
	for _, size := range []int{0, 1, MinChunk, MinChunk + 1, bufSize + 1, 3*MaxChunk + 17,
		parallelFrom - 1, parallelFrom, parallelFrom + 1, 3*segmentSize + 17} {
		data := make([]byte, size)
		rand.Read(data)
		p := filepath.Join(t.TempDir(), "f")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		h, n, err := File(context.Background(), p)
		if err != nil {
			t.Fatal(err)
		}
		if n != int64(size) || h != Sum(data) {
			t.Fatalf("size %d: got (%v,%d), want (%v,%d)", size, h, n, Sum(data), size)
		}
		if r, _, err := Reader(context.Background(), bytes.NewReader(data)); err != nil || r != h {
			t.Fatalf("size %d: Reader gives %v (%v), File %v", size, r, err, h)
		}
		if size <= MinChunk && h != Hash(sha256.Sum256(data)) {
			t.Fatalf("size %d: one chunk is not named by its SHA-256", size)
		}
	}
	if Sum(nil) != EmptyHash {
		t.Fatal("EmptyHash is not the hash of no bytes")
	}
}

// TestLegacyNaming pins the names of protocol version 3: a content
// recorded then keeps that name and is checked by it.
func TestLegacyNaming(t *testing.T) {
	for _, size := range []int{0, 5, BlockSize, BlockSize + 1, 2 * BlockSize, 2*BlockSize + 3} {
		data := make([]byte, size)
		rand.Read(data)
		want := Hash(sha256.Sum256(data))
		if size > BlockSize {
			in := []byte("drive-node content tree v1\x00")
			for off := 0; off < size; off += BlockSize {
				leaf := sha256.Sum256(data[off:min(off+BlockSize, size)])
				in = append(in, leaf[:]...)
			}
			want = Hash(sha512.Sum512_256(in))
		}
		h := NewLegacyHasher()
		h.Write(data)
		if got := h.Sum(); got != want {
			t.Errorf("size %d: legacy name = %v, want %v", size, got.Short(), want.Short())
		}
	}
}

func TestHasherPiecesDoNotMatter(t *testing.T) {
	data := make([]byte, 5*MaxChunk+1000)
	rand.Read(data)
	want := Sum(data)
	r := mrand.New(mrand.NewPCG(1, 2))
	for round := 0; round < 5; round++ {
		h := NewHasher()
		for off := 0; off < len(data); {
			k := min(len(data)-off, 1+r.IntN(MaxChunk))
			h.Write(data[off : off+k])
			off += k
		}
		if got := h.Sum(); got != want {
			t.Fatalf("round %d: %v, want %v", round, got.Short(), want.Short())
		}
	}
}

// TestOpenNamesExactlySize: Open names the size a file has when it
// starts; bytes beyond (the file grew) are left out, and a file that
// ends early (it shrank) is reported.
func TestOpenNamesExactlySize(t *testing.T) {
	long := make([]byte, 3*segmentSize)
	rand.Read(long)
	size := int64(2*segmentSize + 1)
	if h, err := parallel(context.Background(), bytes.NewReader(long), size, nil); err != nil || h != Sum(long[:size]) {
		t.Fatalf("parallel over the first %d bytes = %v, %v; want %v", size, h.Short(), err, Sum(long[:size]).Short())
	}
	short := make([]byte, segmentSize+10)
	_, err := parallel(context.Background(), bytes.NewReader(short), 3*segmentSize, nil)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("parallel over a reader shorter than size = %v, want io.ErrUnexpectedEOF", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := parallel(ctx, bytes.NewReader(long), size, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("parallel with a cancelled context = %v", err)
	}
}

func TestParseHashRoundTrip(t *testing.T) {
	h := Sum([]byte("drive-node"))
	got, err := ParseHash(h.String())
	if err != nil || got != h {
		t.Fatalf("round trip: %v %v", got, err)
	}
	if _, err := ParseHash("abc"); err == nil {
		t.Fatal("short hash accepted")
	}
}

func TestReaderHonoursContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := Reader(ctx, bytes.NewReader(make([]byte, 10))); err == nil {
		t.Fatal("cancelled context ignored")
	}
}

// BenchmarkHash measures naming on one core: cutting and SHA-256 in one
// pass.
func BenchmarkHash(b *testing.B) {
	data := make([]byte, 64<<20)
	rand.Read(data)
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, _, err := Reader(context.Background(), bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkChunking measures cutting alone on one core (the cost chunking
// adds to SHA-256).
func BenchmarkChunking(b *testing.B) {
	data := make([]byte, 64<<20)
	rand.Read(data)
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	cuts := 0
	for i := 0; i < b.N; i++ {
		var c cutter
		for p := data; len(p) > 0; {
			k, cut := c.next(p)
			if cut {
				cuts++
			}
			p = p[k:]
		}
	}
	if cuts == 0 {
		b.Fatal("no cuts")
	}
}

// BenchmarkFile measures naming a 64 MiB file on every core.
func BenchmarkFile(b *testing.B) {
	data := make([]byte, 64<<20)
	rand.Read(data)
	p := filepath.Join(b.TempDir(), "f")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, _, err := File(context.Background(), p); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLegacyHash measures the names of protocol version 3 on one
// core (SHA-256 alone), for comparison with BenchmarkHash.
func BenchmarkLegacyHash(b *testing.B) {
	data := make([]byte, 64<<20)
	rand.Read(data)
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		h := NewLegacyHasher()
		h.Write(data)
		h.Sum()
	}
}
