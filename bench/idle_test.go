package bench

import (
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
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100 // clock ticks; USER_HZ is 100 on Linux
}

// BenchmarkIdleCPU measures the CPU two connected, idle daemons use over
// 60 s: with nothing changing it must be near zero (no busy polling).
// Run: go test -run '^$' -bench IdleCPU -benchtime 1x ./bench/ (as root).
func BenchmarkIdleCPU(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root for network namespaces")
	}
	bin := netlab.BuildBinary(b, "github.com/drive-node/drive-node/cmd/drive-node")
	lab := netlab.New(b, 2)
	tl := driveNode(bin)
	root := b.TempDir()
	dirA, dirB := filepath.Join(root, "A"), filepath.Join(root, "B")
	os.MkdirAll(dirA, 0o755)
	os.MkdirAll(dirB, 0o755)
	tl.setup(b, lab, dirA, dirB)
	pa, pb := tl.start(b, lab.Host(0), dirA), tl.start(b, lab.Host(1), dirB)
	os.WriteFile(filepath.Join(dirA, "hello.txt"), []byte("connected?\n"), 0o644)
	waitFiles(b, dirB, "hello.txt", 1, time.Minute)
	time.Sleep(2 * time.Second)
	before := cpuSeconds(b, pa.Pid()) + cpuSeconds(b, pb.Pid())
	time.Sleep(60 * time.Second)
	used := cpuSeconds(b, pa.Pid()) + cpuSeconds(b, pb.Pid()) - before
	if *lanProfile != "" {
		for _, p := range []*netlab.Process{pa, pb} {
			p.Signal(syscall.SIGTERM) // writes the profiles
			p.Wait(10 * time.Second)
		}
	}
	b.ReportMetric(used, "cpu-s/60s")
	fmt.Printf("idle CPU of both daemons over 60 s: %.2f s\n", used)
}
