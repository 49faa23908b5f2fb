package e2e

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/drive-node/drive-node/internal/netlab"
)

// stagingDir is where a daemon assembles what it receives, in its folder.
const stagingDir = ".drive-node-tmp-staged"

// stagedSize returns the size of the temp file a transfer is being written
// to in dir's staging directory, or -1.
func stagedSize(dir string) int64 {
	m, _ := filepath.Glob(filepath.Join(dir, stagingDir, ".drive-node-tmp-*"))
	for _, p := range m {
		if st, err := os.Stat(p); err == nil {
			return st.Size()
		}
	}
	return -1
}

// TestStopDuringTransferAndResume stops B with SIGTERM in the middle of a
// large transfer: it must exit 0 within 5 s, leave no torn file in the
// folder, and after a restart resume the transfer where it stopped.
func TestStopDuringTransferAndResume(t *testing.T) {
	const size = 768 << 20
	p := newPair(t)
	src := filepath.Join(filepath.Dir(p.dirA), "big.bin")
	f, err := os.Create(src)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.NewChaCha8([32]byte{9})
	buf := make([]byte, 4<<20)
	for n := 0; n < size; n += len(buf) {
		rng.Read(buf)
		f.Write(buf)
	}
	f.Close()
	if err := os.Rename(src, filepath.Join(p.dirA, "big.bin")); err != nil {
		t.Fatal(err)
	}
	netlab.Eventually(t, 60*time.Second, "transfer under way on B", func() (bool, string) {
		s := stagedSize(p.dirB)
		return s > 64<<20, strconv.FormatInt(s, 10)
	})
	start := time.Now()
	if err := p.pb.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	code, err := p.pb.Wait(5 * time.Second)
	if err != nil {
		t.Fatalf("B did not stop within 5 s of SIGTERM: %v\n%s", err, p.pb.Log())
	}
	t.Logf("B stopped %.2fs after SIGTERM, exit code %d", time.Since(start).Seconds(), code)
	if code != 0 {
		t.Fatalf("exit code %d after SIGTERM\n%s", code, p.pb.Log())
	}
	if _, err := os.Stat(filepath.Join(p.dirB, "big.bin")); err == nil {
		t.Fatal("a partial big.bin is in B's folder")
	}
	kept := stagedSize(p.dirB)
	if kept <= 0 {
		t.Fatal("the partial transfer was not kept for resuming")
	}

	p.pb = startDaemon(t, p.b, p.bin, p.dirB, "B")
	netlab.Eventually(t, 2*time.Minute, "big.bin complete on B after the restart", func() (bool, string) {
		st, err := os.Stat(filepath.Join(p.dirB, "big.bin"))
		return err == nil && st.Size() == size, ""
	})
	if fileSHA(t, filepath.Join(p.dirA, "big.bin")) != fileSHA(t, filepath.Join(p.dirB, "big.bin")) {
		t.Fatal("B's copy differs from A's")
	}
	// The file is assembled from chunks, several runs at once: what B
	// had checks out chunk by chunk, and is not fetched again.
	m := regexp.MustCompile(`resumed a transfer.*kept=(\d+)`).FindStringSubmatch(p.pb.Log())
	if m == nil {
		t.Fatalf("B did not resume the transfer:\n%s", lastLines(p.pb.Log(), 30))
	}
	had, _ := strconv.ParseInt(m[1], 10, 64)
	if had <= 0 || had > kept {
		t.Fatalf("resumed with %d bytes of chunks, but the temp file had %d", had, kept)
	}
	t.Logf("%d MiB were on disk at the stop and not sent again; %d MiB were sent after the restart", had>>20, (size-had)>>20)
}

func lastLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
