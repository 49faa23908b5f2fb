package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/drive-node/drive-node/internal/netlab"
	"github.com/drive-node/drive-node/state"
	"golang.org/x/sys/unix"
)

// fillDisk allocates a ballast file in dir leaving about leave bytes free
// (none when leave is 0: it then writes until the disk refuses).
func fillDisk(t *testing.T, dir string, leave int64) string {
	t.Helper()
	var s unix.Statfs_t
	if err := unix.Statfs(dir, &s); err != nil {
		t.Fatal(err)
	}
	free := int64(s.Bavail) * int64(s.Bsize)
	path := filepath.Join(dir, "ballast")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if n := free - max(leave, 1<<20); n > 0 {
		if err := syscall.Fallocate(int(f.Fd()), 0, 0, n); err != nil {
			t.Fatalf("fallocate %d: %v", n, err)
		}
	}
	if leave == 0 {
		page := make([]byte, 4096)
		for {
			if _, err := f.Write(page); err != nil {
				break
			}
		}
		f.Sync()
	}
	return path
}

// checkStateSound opens a stopped node's op log and database and runs
// their full checks: every op present without a gap, SQLite's integrity
// check clean.
func checkStateSound(t *testing.T, stateDir string) {
	t.Helper()
	ctx := context.Background()
	log, _ := openStoppedLog(t, stateDir)
	defer log.Close()
	if err := log.Check(ctx); err != nil {
		t.Fatal(err)
	}
	db, err := state.Open(ctx, filepath.Join(stateDir, "state.db"))
	if err != nil {
		t.Fatalf("database does not open: %v", err)
	}
	defer db.Close()
	if err := db.CheckIntegrity(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("state dir %s sound: %d ops", stateDir, log.Count())
}

// TestStateDiskFull puts B's state dir on a 48 MiB tmpfs and fills it:
// (1) with the default reserve, B pauses before its op log could fail, says
// why in status, persists nothing from A meanwhile, and resumes by itself
// when space is back; (2) with no reserve (--min-state-free 0), the disk
// fills for real under the op log and the database: B stops with exit
// code 2, and after space is freed and B is started again both stores pass
// their full checks and the folders converge with no change lost.
func TestStateDiskFull(t *testing.T) {
	p := newPairWith(t, true)
	stateB := p.dirB + ".state"
	writeFile(t, filepath.Join(p.dirA, "before.txt"), []byte("synced before\n"))
	converge(t, "initial sync", p.dirA, p.dirB, 20*time.Second)

	// Move B's state onto a small disk.
	p.pb.Signal(syscall.SIGTERM)
	if code, err := p.pb.Wait(10 * time.Second); code != 0 || err != nil {
		t.Fatalf("B's stop: exit %d %v", code, err)
	}
	if err := os.Rename(stateB, stateB+".orig"); err != nil {
		t.Fatal(err)
	}
	os.Mkdir(stateB, 0o700)
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=48m,mode=0700", "tmpfs", stateB).CombinedOutput(); err != nil {
		t.Fatalf("mount: %v %s", err, out)
	}
	defer exec.Command("umount", "-l", stateB).Run()
	if out, err := exec.Command("cp", "-a", stateB+".orig/.", stateB).CombinedOutput(); err != nil {
		t.Fatalf("copy state: %v %s", err, out)
	}

	// (1) Below the reserve: pause, resume.
	ballast := fillDisk(t, stateB, 8<<20)
	p.pb = p.start(t, p.b, p.dirB, "B")
	netlab.Eventually(t, 20*time.Second, "B's status says its state disk is nearly full", func() (bool, string) {
		why := pausedReason(t, p, p.b, p.dirB)
		return strings.Contains(why, "disk nearly full"), why
	})
	writeFile(t, filepath.Join(p.dirA, "from-a.txt"), []byte("made on A while B's state disk is full\n"))
	writeFile(t, filepath.Join(p.dirB, "from-b.txt"), []byte("made on B while its state disk is full\n"))
	netlab.Eventually(t, 20*time.Second, "A's op reaches B and is held back", func() (bool, string) {
		return strings.Contains(p.pb.Log(), "holding back ops from a peer"), ""
	})
	if _, err := os.Stat(filepath.Join(p.dirB, "from-a.txt")); err == nil {
		t.Fatal("B applied A's file while its state disk was nearly full")
	}
	if _, err := os.Stat(filepath.Join(p.dirB, "from-b.txt")); err != nil {
		t.Fatalf("B's own file is gone: %v", err)
	}
	os.Remove(ballast)
	converge(t, "(1) space back: both changes sync", p.dirA, p.dirB, 30*time.Second)
	if why := pausedReason(t, p, p.b, p.dirB); why != "" {
		t.Fatalf("B still paused: %s", why)
	}

	// (2) No reserve: the disk fills for real under both stores.
	p.pb.Signal(syscall.SIGTERM)
	if code, err := p.pb.Wait(10 * time.Second); code != 0 || err != nil {
		t.Fatalf("B's stop: exit %d %v", code, err)
	}
	p.pb = startDaemon(t, p.b, p.bin, p.dirB, "B", append(p.loc(p.dirB), "--min-state-free", "0")...)
	netlab.Eventually(t, 20*time.Second, "B reconnects", func() (bool, string) {
		return strings.Contains(p.pb.Log(), "start-up scan complete"), ""
	})
	ballast = fillDisk(t, stateB, 0)
	for i := 0; i < 300; i++ {
		writeFile(t, filepath.Join(p.dirB, fmt.Sprintf("full/b%03d.txt", i)), []byte(fmt.Sprintf("B's file %d, made on a full state disk\n", i)))
		writeFile(t, filepath.Join(p.dirA, fmt.Sprintf("full/a%03d.txt", i)), []byte(fmt.Sprintf("A's file %d\n", i)))
	}
	// The op log treats a failed write as fatal: B stops by itself with
	// exit code 2 (systemd restarts it), having logged why.
	code, err := p.pb.Wait(60 * time.Second)
	if err != nil {
		p.pb.Kill()
		t.Fatalf("B kept running on a full state disk with --min-state-free 0: %v\nlog: %s", err, lastLines(p.pb.Log(), 20))
	}
	if code != 2 {
		t.Fatalf("B exited with code %d on a full state disk, want 2\nlog: %s", code, lastLines(p.pb.Log(), 20))
	}
	if l := p.pb.Log(); !strings.Contains(l, "no space left on device") {
		t.Fatalf("B exited with code 2 without logging the full disk:\n%s", lastLines(l, 20))
	}
	os.Remove(ballast)
	checkStateSound(t, stateB)

	p.pb = startDaemon(t, p.b, p.bin, p.dirB, "B", p.loc(p.dirB)...)
	converge(t, "(2) space back, B restarted: nothing lost", p.dirA, p.dirB, 60*time.Second)
	for _, name := range []string{"full/b000.txt", "full/b299.txt", "from-b.txt"} {
		if _, err := os.Stat(filepath.Join(p.dirA, name)); err != nil {
			t.Fatalf("B's %s did not reach A: %v", name, err)
		}
	}
	p.pb.Signal(syscall.SIGTERM)
	if code, err := p.pb.Wait(10 * time.Second); code != 0 || err != nil {
		t.Fatalf("B's stop: exit %d %v", code, err)
	}
	checkStateSound(t, stateB)
}
