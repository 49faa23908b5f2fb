package content

import (
	"bytes"
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"testing"
)

func TestFileMatchesSum(t *testing.T) {
	for _, size := range []int{0, 1, bufSize - 1, bufSize, bufSize + 1, 3*bufSize + 17} {
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
	}
	if Sum(nil) != EmptyHash {
		t.Fatal("EmptyHash is not the hash of no bytes")
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
