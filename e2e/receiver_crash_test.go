package e2e

import (
	"fmt"
	"io/fs"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestReceiverCrashDuringSync kills the receiving daemon with SIGKILL at
// random moments while it fetches and applies thousands of small files
// and some larger ones, restarts it each time, and then requires: the
// folders converge, the receiver's database records exactly what is on
// its disk, and no conflict copy appeared (a file placed before a crash
// but not yet recorded is not mistaken for an edit of the receiver's own).
func TestReceiverCrashDuringSync(t *testing.T) {
	p := newPair(t)
	rng := rand.New(rand.NewSource(testSeed(t)))
	writeFile(t, filepath.Join(p.dirA, "hello.txt"), []byte("connected\n"))
	converge(t, "connected", p.dirA, p.dirB, 20*time.Second)

	var killed []string // the logs of B's earlier runs
	stage := t.TempDir()
	for round := 0; round < 4; round++ {
		// Each round moves a fresh tree into A: many small files, a few
		// larger ones, and edits and deletions of what earlier rounds made.
		tree := filepath.Join(stage, fmt.Sprintf("round%d", round))
		for i := 0; i < 1500; i++ {
			writeFile(t, filepath.Join(tree, fmt.Sprintf("d%02d/f%04d.txt", i%30, i)), []byte(fmt.Sprintf("round %d file %d %d\n", round, i, rng.Int())))
		}
		for i := 0; i < 3; i++ {
			writeFile(t, filepath.Join(tree, fmt.Sprintf("big%d.bin", i)), randomBytes(t, 2<<20+rng.Intn(1<<20)))
		}
		if err := os.Rename(tree, filepath.Join(p.dirA, filepath.Base(tree))); err != nil {
			t.Fatal(err)
		}
		if round > 0 {
			prev := filepath.Join(p.dirA, fmt.Sprintf("round%d", round-1))
			for i := 0; i < 100; i++ {
				f := filepath.Join(prev, fmt.Sprintf("d%02d/f%04d.txt", i%30, rng.Intn(1500)))
				if rng.Intn(2) == 0 {
					os.Remove(f)
				} else {
					writeFile(t, f, []byte(fmt.Sprintf("edited in round %d\n", round)))
				}
			}
		}
		time.Sleep(time.Duration(200+rng.Intn(1200)) * time.Millisecond)
		p.pb.Kill()
		killed = append(killed, p.pb.Log())
		p.pb = p.start(t, p.b, p.dirB, "B")
	}
	converge(t, "after the receiver crashed four times", p.dirA, p.dirB, 120*time.Second)

	p.pb.Signal(syscall.SIGTERM)
	if code, err := p.pb.Wait(10 * time.Second); code != 0 || err != nil {
		t.Fatalf("B's stop: exit %d %v", code, err)
	}
	checkRecorded(t, p.dirB)
	for _, dir := range []string{p.dirA, p.dirB} {
		filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err == nil && strings.Contains(d.Name(), ".conflict-") {
				rel, _ := filepath.Rel(dir, path)
				original := filepath.ToSlash(rel)
				original = original[:strings.Index(original, ".conflict-")]
				t.Errorf("conflict copy %s: nothing was edited concurrently; what B's runs logged of %s:\n%s",
					path, original, linesAbout(original, append(killed, p.pb.Log())))
			}
			return nil
		})
	}
}

// linesAbout returns the lines of the logs that mention name, each run's
// under a header.
func linesAbout(name string, logs []string) string {
	var b strings.Builder
	for i, l := range logs {
		fmt.Fprintf(&b, "-- run %d\n", i+1)
		for _, line := range strings.Split(l, "\n") {
			if strings.Contains(line, name) {
				b.WriteString(line + "\n")
			}
		}
	}
	return b.String()
}
