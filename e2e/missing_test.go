package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drive-node/drive-node/internal/netlab"
)

func pausedReason(t *testing.T, p *pair, h *netlab.Host, dir string) string {
	t.Helper()
	out, err := h.Command(t.Context(), p.bin, append([]string{"status", "--folder", dir, "--json"}, p.loc(dir)...)...).Output()
	if err != nil {
		return ""
	}
	var st struct{ Paused string }
	json.Unmarshal(out, &st)
	return st.Paused
}

// opsOf returns how many ops the node of dir has in its log, as its
// status tells.
func opsOf(t *testing.T, p *pair, h *netlab.Host, dir string) uint64 {
	t.Helper()
	out, err := h.Command(t.Context(), p.bin, append([]string{"status", "--folder", dir, "--json"}, p.loc(dir)...)...).Output()
	if err != nil {
		t.Fatalf("status of %s: %v", dir, err)
	}
	var st struct{ Ops uint64 }
	if err := json.Unmarshal(out, &st); err != nil {
		t.Fatalf("status of %s: %v", dir, err)
	}
	return st.Ops
}

// settledOps waits until B's op log holds as many ops as A's and returns
// that count.
func settledOps(t *testing.T, p *pair) uint64 {
	t.Helper()
	var n uint64
	netlab.Eventually(t, 20*time.Second, "B's op log catches up with A's", func() (bool, string) {
		n = opsOf(t, p, p.b, p.dirB)
		a := opsOf(t, p, p.a, p.dirA)
		return n == a, fmt.Sprintf("B has %d ops, A %d", n, a)
	})
	return n
}

func countTree(dir string) int {
	s, err := snapshot(dir)
	if err != nil {
		return -1
	}
	return len(s)
}

// TestMissingFolderPauses makes B's folder look empty twice — an empty
// tmpfs mounted over it and B restarted (a disk that did not mount), then
// the folder moved away and replaced by an empty directory — and checks
// that A keeps every file, B's status says why it is paused, and B resumes
// by itself when the real folder is back. A wrong deletion would be
// recorded in B's op log before it could travel: B's op count, unchanged
// once B says it is paused, shows none was.
func TestMissingFolderPauses(t *testing.T) {
	p := newPairWith(t, true)
	for i := 0; i < 20; i++ {
		writeFile(t, filepath.Join(p.dirA, fmt.Sprintf("docs/file%02d.txt", i)), []byte(fmt.Sprintf("keep me %d\n", i)))
	}
	converge(t, "20 files on both", p.dirA, p.dirB, 20*time.Second)
	want := countTree(p.dirA)
	opsB := settledOps(t, p)
	if opsB < 20 {
		t.Fatalf("B's status counts %d ops for 20 files", opsB)
	}

	// (a) An empty disk mounted over the folder, and B restarted.
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", p.dirB).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v %s", err, out)
	}
	mounted := true
	defer func() {
		if mounted {
			exec.Command("umount", p.dirB).Run()
		}
	}()
	p.pb.Kill()
	p.pb = p.start(t, p.b, p.dirB, "B")
	netlab.Eventually(t, 20*time.Second, "B reports the folder paused", func() (bool, string) {
		r := pausedReason(t, p, p.b, p.dirB)
		return strings.Contains(r, ".drive-node-folder"), r + " | B log: " + lastLines(p.pb.Log(), 5)
	})
	if got := opsOf(t, p, p.b, p.dirB); got != opsB {
		t.Fatalf("B recorded %d ops on the empty disk, with %d before", got, opsB)
	}
	if got := countTree(p.dirA); got != want {
		t.Fatalf("A lost files while B's disk was missing: %d of %d", got, want)
	}
	if out, err := exec.Command("umount", p.dirB).CombinedOutput(); err != nil {
		t.Fatalf("umount: %v %s", err, out)
	}
	mounted = false
	// B runs in the mount namespace `ip netns exec` made for it, where the
	// unmount does not show; a restart (as after a reboot) sees the real
	// disk. Resuming without a restart is checked in (b).
	p.pb.Kill()
	p.pb = p.start(t, p.b, p.dirB, "B")
	writeFile(t, filepath.Join(p.dirA, "after-mount.txt"), []byte("the disk is back\n"))
	defer func() {
		if t.Failed() {
			t.Logf("B's log at the end:\n%s", lastLines(p.pb.Log(), 40))
		}
	}()
	converge(t, "(a) disk back: B resumed and has A's new edit", p.dirA, p.dirB, 30*time.Second)
	if r := pausedReason(t, p, p.b, p.dirB); r != "" {
		t.Fatalf("B still paused: %s", r)
	}
	opsB = settledOps(t, p)

	// (b) The folder moved away and an empty one put in its place, while
	// B runs.
	away := p.dirB + ".away"
	if err := os.Rename(p.dirB, away); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(p.dirB, 0o755); err != nil {
		t.Fatal(err)
	}
	netlab.Eventually(t, 30*time.Second, "B reports the replaced folder paused", func() (bool, string) {
		r := pausedReason(t, p, p.b, p.dirB)
		return r != "", r
	})
	if got := opsOf(t, p, p.b, p.dirB); got != opsB {
		t.Fatalf("B recorded %d ops in the replaced folder, with %d before", got, opsB)
	}
	if got := countTree(p.dirA); got != want+1 {
		t.Fatalf("A lost files while B's folder was replaced: %d of %d", got, want+1)
	}
	if err := os.Remove(p.dirB); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(away, p.dirB); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(p.dirA, "after-move.txt"), []byte("the folder is back\n"))
	converge(t, "(b) folder back: B resumed and has A's new edit", p.dirA, p.dirB, 30*time.Second)
}
