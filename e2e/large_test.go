package e2e

import (
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/drive-node/drive-node/internal/netlab"
)

// peakRSS returns the peak resident set size of pid in bytes.
func peakRSS(t *testing.T, pid int) int64 {
	t.Helper()
	n, err := netlab.MemoryBytes(pid, "VmHWM")
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func fileSHA(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", h.Sum(nil))
}

// TestLargeFileBoundedMemory syncs a 1 GiB file and checks that neither
// daemon's peak RSS grows with the file: content is hashed and moved in
// streams, never held whole.
func TestLargeFileBoundedMemory(t *testing.T) {
	const size = 1 << 30
	const rssLimit = 256 << 20
	p := newPair(t)
	dirA, dirB, pa, pb := p.dirA, p.dirB, p.pa, p.pb

	// Write the file outside the folder, then move it in: a complete file
	// appears at once, as a user's copy-then-move would.
	src := filepath.Join(filepath.Dir(dirA), "big.bin")
	f, err := os.Create(src)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.NewChaCha8([32]byte{1, 2, 3})
	buf := make([]byte, 4<<20)
	for written := 0; written < size; written += len(buf) {
		rng.Read(buf)
		if _, err := f.Write(buf); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()
	if err := os.Rename(src, filepath.Join(dirA, "big.bin")); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	netlab.Eventually(t, 5*time.Minute, "1 GiB file on B", func() (bool, string) {
		st, err := os.Stat(filepath.Join(dirB, "big.bin"))
		if err != nil {
			return false, err.Error()
		}
		return st.Size() == size, fmt.Sprintf("%d bytes", st.Size())
	})
	took := time.Since(start)
	if fileSHA(t, filepath.Join(dirA, "big.bin")) != fileSHA(t, filepath.Join(dirB, "big.bin")) {
		t.Fatal("B's copy differs from A's")
	}
	rssA, rssB := peakRSS(t, pa.Pid()), peakRSS(t, pb.Pid())
	t.Logf("1 GiB synced in %.1fs (%.0f MiB/s, hashing on A included); peak RSS: A %d MiB, B %d MiB",
		took.Seconds(), float64(size>>20)/took.Seconds(), rssA>>20, rssB>>20)
	if rssA > rssLimit || rssB > rssLimit {
		t.Fatalf("peak RSS over %d MiB: A %d MiB, B %d MiB", rssLimit>>20, rssA>>20, rssB>>20)
	}
}
