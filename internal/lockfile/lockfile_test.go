package lockfile

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// TestLockHeldByAnotherProcess takes the lock in a child process (flock
// locks are per open file, so a second Acquire in this process would also
// conflict; a real second process is what the daemon meets).
func TestLockHeldByAnotherProcess(t *testing.T) {
	if os.Getenv("LOCKFILE_CHILD") != "" {
		l, err := Acquire(os.Getenv("LOCKFILE_CHILD"))
		if err != nil {
			os.Exit(3)
		}
		os.Stdout.WriteString("locked\n")
		os.Stdin.Read(make([]byte, 1)) // hold until the parent closes stdin
		l.Release()
		os.Exit(0)
	}
	path := filepath.Join(t.TempDir(), "lock")
	cmd := exec.Command(os.Args[0], "-test.run=TestLockHeldByAnotherProcess")
	cmd.Env = append(os.Environ(), "LOCKFILE_CHILD="+path)
	stdin, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 7)
	if _, err := out.Read(buf); err != nil || string(buf) != "locked\n" {
		t.Fatalf("child did not lock: %q %v", buf, err)
	}
	_, err := Acquire(path)
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "pid") {
		t.Fatalf("got %v, want ErrLocked naming the pid", err)
	}
	if !Held(path) {
		t.Fatal("Held says free while child holds it")
	}
	if got, want := HolderPID(path), cmd.Process.Pid; got != want {
		t.Fatalf("HolderPID = %d after probing, want the holder's %d", got, want)
	}
	stdin.Close()
	cmd.Wait()
	l, err := Acquire(path)
	if err != nil {
		t.Fatalf("lock not released when holder exited: %v", err)
	}
	l.Release()
	if Held(path) {
		t.Fatal("Held says held after release")
	}
}

// Probes running at once (two `drive-node status` runs) never take each
// other for the holder, and leave the file's pid alone.
func TestConcurrentProbesOfAFreeLock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lock")
	l, err := Acquire(path)
	if err != nil {
		t.Fatal(err)
	}
	l.Release()
	pid := HolderPID(path)
	var wrong atomic.Int32
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 2000 {
				if Held(path) {
					wrong.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if n := wrong.Load(); n > 0 {
		t.Fatalf("no process holds the lock, yet Held said true %d times", n)
	}
	if got := HolderPID(path); got != pid {
		t.Fatalf("probes changed the pid in the lock file from %d to %d", pid, got)
	}
	if Held(filepath.Join(t.TempDir(), "never")) {
		t.Fatal("Held says true for a lock file that does not exist")
	}
}
