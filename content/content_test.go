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
	for _, size := range []int{0, 1, bufSize - 1, bufSize, bufSize + 1, 3*bufSize + 17,
		BlockSize - 1, BlockSize, BlockSize + 1, 3*BlockSize + 17} {
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
	}
	if Sum(nil) != EmptyHash {
		t.Fatal("EmptyHash is not the hash of no bytes")
	}
}

// TestTreeNaming pins the naming scheme: peers of other builds must name
// the same bytes the same way.
func TestTreeNaming(t *testing.T) {
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
		if got := Sum(data); got != want {
			t.Errorf("size %d: Sum = %v, want %v", size, got.Short(), want.Short())
		}
	}
}

func TestHasherChunkingDoesNotMatter(t *testing.T) {
	data := make([]byte, 2*BlockSize+1000)
	rand.Read(data)
	want := Sum(data)
	r := mrand.New(mrand.NewPCG(1, 2))
	for round := 0; round < 3; round++ {
		h := NewHasher()
		for off := 0; off < len(data); {
			k := min(len(data)-off, 1+r.IntN(3<<20))
			h.Write(data[off : off+k])
			off += k
			// A Sum on the way is right and does not change what follows.
			if got := h.Sum(); got != Sum(data[:off]) {
				t.Fatalf("round %d: Sum after %d bytes = %v, want %v", round, off, got.Short(), Sum(data[:off]).Short())
			}
		}
		if got := h.Sum(); got != want {
			t.Fatalf("round %d: %v, want %v", round, got.Short(), want.Short())
		}
	}
}

// TestBlocksHashesExactlySize: Open hashes the size a file has when it
// starts; bytes beyond (the file grew) are left out, and a file that
// ends early (it shrank) is reported.
func TestBlocksHashesExactlySize(t *testing.T) {
	long := make([]byte, 3*BlockSize)
	rand.Read(long)
	size := int64(2*BlockSize + 1)
	if h, err := blocks(context.Background(), bytes.NewReader(long), size); err != nil || h != Sum(long[:size]) {
		t.Fatalf("blocks of the first %d bytes = %v, %v; want %v", size, h.Short(), err, Sum(long[:size]).Short())
	}
	short := make([]byte, BlockSize+10)
	_, err := blocks(context.Background(), bytes.NewReader(short), 3*BlockSize)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("blocks of a reader shorter than size = %v, want io.ErrUnexpectedEOF", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := blocks(ctx, bytes.NewReader(make([]byte, 2*BlockSize)), 2*BlockSize); !errors.Is(err, context.Canceled) {
		t.Fatalf("blocks with a cancelled context = %v", err)
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

// BenchmarkHash measures streamed hashing throughput on one core; the target
// is at least 1 GiB/s.
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

// BenchmarkFile measures hashing a 64 MiB file, its blocks on every core.
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
