package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/drive-node/drive-node/internal/netlab"
)

// TestFullDisk puts B's folder on a 4 MiB tmpfs: a 12 MiB file from A
// cannot fit. B must say "disk full" in its status, damage nothing already
// there, and finish the sync by itself once there is room.
func TestFullDisk(t *testing.T) {
	p := newPairWith(t, true)
	writeFile(t, filepath.Join(p.dirA, "small.txt"), []byte("fits\n"))
	converge(t, "a small file on both", p.dirA, p.dirB, 20*time.Second)

	// Move B's folder onto a small disk (marker included, so it is the
	// synced folder, not a missing one).
	marker, err := os.ReadFile(filepath.Join(p.dirB, ".drive-node-folder"))
	if err != nil {
		t.Fatal(err)
	}
	p.b.KillAll()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", p.dirB).CombinedOutput(); err != nil {
		t.Fatalf("mount: %v %s", err, out)
	}
	defer exec.Command("umount", p.dirB).Run()
	writeFile(t, filepath.Join(p.dirB, ".drive-node-folder"), marker)
	writeFile(t, filepath.Join(p.dirB, "small.txt"), []byte("fits\n"))
	st, _ := os.Stat(filepath.Join(p.dirA, "small.txt"))
	os.Chtimes(filepath.Join(p.dirB, "small.txt"), st.ModTime(), st.ModTime())
	p.pb = p.start(t, p.b, p.dirB, "B")

	writeFile(t, filepath.Join(p.dirA, "big.bin"), randomBytes(t, 12<<20))
	writeFile(t, filepath.Join(p.dirA, "after.txt"), []byte("also fits\n"))
	netlab.Eventually(t, 30*time.Second, "B's status says the disk is full", func() (bool, string) {
		out, err := p.b.Command(t.Context(), p.bin, append([]string{"status", "--folder", p.dirB, "--json"}, p.loc(p.dirB)...)...).Output()
		var s struct {
			DiskFull string `json:"disk_full"`
		}
		if err == nil {
			json.Unmarshal(out, &s)
		}
		return s.DiskFull != "", string(out)
	})
	if b, err := os.ReadFile(filepath.Join(p.dirB, "small.txt")); err != nil || string(b) != "fits\n" {
		t.Fatalf("a file already on the full disk was damaged: %q %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(p.dirB, "big.bin")); err == nil {
		t.Fatal("a partial big.bin is in the folder")
	}

	if out, err := exec.Command("mount", "-o", "remount,size=64m", p.dirB).CombinedOutput(); err != nil {
		t.Fatalf("remount: %v %s", err, out)
	}
	defer func() {
		if t.Failed() {
			p.pb.Signal(syscall.SIGQUIT)
			time.Sleep(time.Second)
			os.WriteFile("/tmp/diskfull-B.log", []byte(p.pb.Log()), 0o644)
		}
	}()
	converge(t, "space freed: the sync completes by itself", p.dirA, p.dirB, 30*time.Second)
}
