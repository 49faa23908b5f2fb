package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drive-node/drive-node/internal/netlab"
)

// TestEmbeddedEngine runs examples/received, a program of its own that
// embeds the engine, on host B against a drive-node daemon on host A: it
// syncs as a daemon does, and prints a line for each file received and
// for the conflict copy that concurrent edits make.
func TestEmbeddedEngine(t *testing.T) {
	lab := netlab.New(t, 2)
	bin := netlab.BuildBinary(t, "github.com/drive-node/drive-node/cmd/drive-node")
	example := netlab.BuildBinary(t, "github.com/drive-node/drive-node/examples/received")
	a, b := lab.Host(0), lab.Host(1)
	dirA, dirB := filepath.Join(t.TempDir(), "A"), filepath.Join(t.TempDir(), "B")
	for _, d := range []string{dirA, dirB} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	pairHosts(t, bin, a, b, dirA, dirB, nil)
	pa := startDaemon(t, a, bin, dirA, "A")
	pb := b.Start(t, example, "--folder", dirB, "--listen", ":22000")
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("A's log:\n%s\nthe example's output:\n%s", pa.Log(), pb.Log())
		}
	})
	printed := func(what, line string) {
		t.Helper()
		netlab.Eventually(t, 30*time.Second, what, func() (bool, string) {
			return strings.Contains(pb.Log(), line), lastLines(pb.Log(), 10)
		})
	}
	writeFile(t, filepath.Join(dirA, "report.txt"), []byte("first draft\n"))
	printed("the example prints the file it received", "received report.txt")
	arrives(t, "report.txt on B", filepath.Join(dirB, "report.txt"), []byte("first draft\n"), 10*time.Second)

	lab.Cut(t, b)
	writeFile(t, filepath.Join(dirA, "report.txt"), []byte("A's edit\n"))
	writeFile(t, filepath.Join(dirB, "report.txt"), []byte("B's edit\n"))
	waitOps(t, a, bin, dirA, 2)
	lab.Heal(t, b)
	printed("the example prints the conflict copy", "conflict report.txt")
}
