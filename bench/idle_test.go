package bench

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/drive-node/drive-node/internal/netlab"
)

// cpuSeconds returns the user+system CPU time pid has used.
func cpuSeconds(b *testing.B, pid int) float64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// Fields after the command name, which is in parentheses.
	f := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+2:]))
	ut, err1 := strconv.ParseFloat(f[11], 64)
	st, err2 := strconv.ParseFloat(f[12], 64)
	if err1 != nil || err2 != nil {
		b.Fatalf("/proc/%d/stat: utime %q, stime %q", pid, f[11], f[12])
	}
	return (ut + st) / 100 // clock ticks; USER_HZ is 100 on Linux
}

// peersConnected reports whether the daemon of dir on h is running and
// connected to every peer it has paired, as its status says.
func peersConnected(b *testing.B, h *netlab.Host, bin, dir string) (bool, string) {
	out, err := h.Command(b.Context(), bin, "status", "--folder", dir, "--json").Output()
	if err != nil {
		return false, fmt.Sprintf("status: %v", err)
	}
	var st struct {
		Running bool
		Peers   []struct{ Connected bool }
	}
	if err := json.Unmarshal(out, &st); err != nil {
		return false, fmt.Sprintf("status: %v", err)
	}
	connected := 0
	for _, p := range st.Peers {
		if p.Connected {
			connected++
		}
	}
	return st.Running && len(st.Peers) > 0 && connected == len(st.Peers),
		fmt.Sprintf("running %v, %d of %d peers connected", st.Running, connected, len(st.Peers))
}

// idleWindow is how long the idle daemons are measured.
const idleWindow = 60 * time.Second

// BenchmarkIdleCPU measures the CPU two connected, idle daemons use over
// 60 s: with nothing changing it must be near zero (no busy polling). The
// figure is reported as cpu-s/60s. The benchmark fails unless both
// daemons were connected to each other when the window began and still
// are when it ends, and some CPU time was counted: a daemon that had
// stopped, or a /proc that counts nothing, measures no idleness.
// Run: go test -run '^$' -bench IdleCPU -benchtime 1x ./bench/ (as root).
func BenchmarkIdleCPU(b *testing.B) {
	d := startDaemons(b, 2)
	lab, bin, dirA, dirB, pa, pb := d.lab, d.bin, d.dirA, d.dirB, d.pa, d.pb
	os.WriteFile(filepath.Join(dirA, "hello.txt"), []byte("connected?\n"), 0o644)
	waitFiles(b, dirB, "hello.txt", 1, time.Minute)
	dirs := []string{dirA, dirB}
	for i, d := range dirs {
		netlab.Eventually(b, 30*time.Second, d+" connected", func() (bool, string) {
			return peersConnected(b, lab.Host(i), bin, d)
		})
	}
	before := cpuSeconds(b, pa.Pid()) + cpuSeconds(b, pb.Pid())
	time.Sleep(idleWindow) // the measurement itself, not a wait for an event
	if pa.Exited() || pb.Exited() {
		b.Fatalf("a daemon stopped while idle:\nA: %s\nB: %s", pa.Log(), pb.Log())
	}
	used := cpuSeconds(b, pa.Pid()) + cpuSeconds(b, pb.Pid()) - before
	for i, d := range dirs {
		if ok, why := peersConnected(b, lab.Host(i), bin, d); !ok {
			b.Fatalf("%s after the window: %s", d, why)
		}
	}
	if used <= 0 {
		b.Fatalf("no CPU time counted for two running daemons over %v (%.2f s before)", idleWindow, before)
	}
	if *lanProfile != "" {
		for _, p := range []*netlab.Process{pa, pb} {
			p.Signal(syscall.SIGTERM) // writes the profiles
			p.Wait(10 * time.Second)
		}
	}
	b.ReportMetric(used, "cpu-s/60s")
	fmt.Printf("idle CPU of both daemons over 60 s: %.2f s\n", used)
}
