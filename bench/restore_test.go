package bench

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/drive-node/drive-node/internal/netlab"
)

// restoreFigures are the restore figure's results: seconds to restore a
// tree of small files and one big file on B from A's version store.
type restoreFigures struct {
	small, big time.Duration
}

// restoreFromPeer measures drive-node's restore from a peer's store: A
// puts restoreFiles small files and a bigSize file in its folder; once B
// has them B deletes them, so A moves them into its version store (the
// brake holds B's run of deletions, and the run is approved as a user
// would); B, which keeps no versions of its own deletions, then restores
// them as they were before, fetching every byte from A's store. Syncthing
// has no restore from a peer: it gets no figure.
func restoreFromPeer(b *testing.B, bin string, loc func(dir string) []string, stage, dirA, dirB string, a, h *netlab.Host) restoreFigures {
	makeTree(b, filepath.Join(stage, "rest"), restoreFiles, smallSize)
	writeRandom(b, filepath.Join(stage, "rest-big.bin"), bigSize)
	syscall.Sync()
	for _, name := range []string{"rest", "rest-big.bin"} {
		if err := os.Rename(filepath.Join(stage, name), filepath.Join(dirA, name)); err != nil {
			b.Fatal(err)
		}
	}
	waitFiles(b, filepath.Join(dirB, "rest"), "", restoreFiles, 10*time.Minute)
	waitSize(b, filepath.Join(dirB, "rest-big.bin"), bigSize, 10*time.Minute)
	want := sum(b, filepath.Join(dirB, "rest-big.bin"))
	before := time.Now().UTC()
	time.Sleep(1100 * time.Millisecond) // the deletions are recorded after before, on the second
	if err := os.RemoveAll(filepath.Join(dirB, "rest")); err != nil {
		b.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dirB, "rest-big.bin")); err != nil {
		b.Fatal(err)
	}
	// A holds the run (more than 1,000 files) or has applied it.
	deadline := time.Now().Add(5 * time.Minute)
	for countFiles(filepath.Join(dirA, "rest")) > 0 {
		if time.Now().After(deadline) {
			b.Fatal("A never applied B's deletions")
		}
		out, err := a.Command(b.Context(), bin, append(append([]string{"status"}, loc(dirA)...), "--json")...).Output()
		var st struct{ Held []json.RawMessage }
		if err == nil && json.Unmarshal(out, &st) == nil && len(st.Held) > 0 {
			a.Run(b, bin, append([]string{"approve"}, loc(dirA)...)...)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if _, err := os.Stat(filepath.Join(dirA, "rest-big.bin")); err == nil {
		waitGone(b, filepath.Join(dirA, "rest-big.bin"), time.Minute)
	}
	at := before.Format(time.RFC3339Nano)
	var f restoreFigures
	for _, step := range []struct {
		path string
		took *time.Duration
	}{{"rest", &f.small}, {"rest-big.bin", &f.big}} {
		start := time.Now()
		out := h.Run(b, bin, append(append([]string{"restore"}, loc(dirB)...), "--at", at, step.path)...)
		*step.took = time.Since(start)
		b.Logf("drive-node: restore %s from A's store took %.2f s: %s", step.path, step.took.Seconds(), lastLine(out))
		// The restore is a change A takes in turn; the next figure is
		// timed once it has.
		if step.path == "rest" {
			waitFiles(b, filepath.Join(dirA, "rest"), "", restoreFiles, 5*time.Minute)
		} else {
			waitSize(b, filepath.Join(dirA, "rest-big.bin"), bigSize, 5*time.Minute)
		}
	}
	if n := countFiles(filepath.Join(dirB, "rest")); n != restoreFiles {
		b.Fatalf("B holds %d of the %d restored files", n, restoreFiles)
	}
	if got := sum(b, filepath.Join(dirB, "rest-big.bin")); got != want {
		b.Fatalf("B's restored big file hashes to %s, want %s", got, want)
	}
	return f
}

const restoreFiles = 1000

// waitGone waits until path does not exist.
func waitGone(b *testing.B, path string, limit time.Duration) {
	deadline := time.Now().Add(limit)
	for {
		if _, err := os.Stat(path); os.IsNotExist(err) {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("%s still exists after %v", path, limit)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func lastLine(s string) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	return l[len(l)-1]
}
