//go:build linux

package netlab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Command returns a command that runs name inside the host's namespace in
// a process group of its own.
func (h *Host) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", h.Name, name}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	return cmd
}

// Run runs name inside the host to completion and returns its stdout; a
// non-zero exit fails the test with the output.
func (h *Host) Run(t testing.TB, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := h.Command(ctx, name, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("netlab: %s on %s %s: %v\nstdout: %s\nstderr: %s", name, h.Name, strings.Join(args, " "), err, out, stderr.String())
	}
	return string(out)
}

// IfaceCounter reads a statistics counter of h's LAN interface
// ("tx_bytes", "tx_packets", …).
func (h *Host) IfaceCounter(t testing.TB, name string) int64 {
	t.Helper()
	out := h.Run(t, "cat", "/sys/class/net/"+h.Iface+"/statistics/"+name)
	n, err := strconv.ParseInt(strings.TrimSpace(out), 10, 64)
	if err != nil {
		t.Fatalf("%s counter %s: %q", h.Name, name, out)
	}
	return n
}

// Pids returns the processes running in the host's namespace.
func (h *Host) Pids() []int {
	out, _ := exec.Command("ip", "netns", "pids", h.Name).Output()
	var pids []int
	for _, f := range strings.Fields(string(out)) {
		if n, err := strconv.Atoi(f); err == nil {
			pids = append(pids, n)
		}
	}
	return pids
}

// KillAll sends SIGKILL to every process in the host's namespace: what a
// power cut does, including to children that left their process group.
func (h *Host) KillAll() {
	for _, pid := range h.Pids() {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	for i := 0; i < 100; i++ {
		if out, _ := exec.Command("ip", "netns", "pids", h.Name).Output(); len(strings.TrimSpace(string(out))) == 0 {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Process is a command started on a host, its output captured to a file.
type Process struct {
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
	mu      sync.Mutex
	err     error
	killed  bool
}

// Start starts name inside the host in its own process group; it is killed
// (the whole group) when the test ends.
func (h *Host) Start(t testing.TB, name string, args ...string) *Process {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), filepath.Base(name)+"-*.log")
	if err != nil {
		t.Fatal(err)
	}
	cmd := h.Command(context.Background(), name, args...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("netlab: start %s on %s: %v", name, h.Name, err)
	}
	p := &Process{cmd: cmd, logPath: f.Name(), done: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		f.Close()
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		close(p.done)
	}()
	t.Cleanup(p.Kill)
	return p
}

// Pid returns the process id (of `ip netns exec`, which execs the command,
// so it is the command's own).
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Kill sends SIGKILL to the whole process group — also when the leader
// has exited already, so children it left behind go too — and waits for
// the leader's exit.
func (p *Process) Kill() {
	p.mu.Lock()
	p.killed = true
	p.mu.Unlock()
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

// Signal sends sig to the process.
func (p *Process) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

// Exited reports whether the process has ended.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Wait waits up to timeout for the process to end and returns its exit
// code.
func (p *Process) Wait(timeout time.Duration) (int, error) {
	select {
	case <-p.done:
	case <-time.After(timeout):
		return -1, fmt.Errorf("netlab: still running after %v", timeout)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode(), nil
	}
	if p.err != nil {
		return -1, p.err
	}
	return 0, nil
}

// Log returns the output captured so far.
func (p *Process) Log() string {
	b, _ := os.ReadFile(p.logPath)
	return string(b)
}
