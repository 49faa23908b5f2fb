//go:build linux

package netlab

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// MemoryBytes returns a size field of /proc/PID/status in bytes: "VmRSS"
// for the resident set now, "VmHWM" for its peak; or, for "Pss", the
// proportional set size from smaps_rollup (pages shared by several
// processes, such as two daemons' common binary, counted once in all).
func MemoryBytes(pid int, field string) (int64, error) {
	file := "status"
	if field == "Pss" {
		file = "smaps_rollup"
	}
	f, err := os.Open(fmt.Sprintf("/proc/%d/%s", pid, file))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no %s for pid %d", field, pid)
}

// SampleRSS reads pid's VmRSS every interval, from now until the returned
// stop is called or the test ends; stop returns the highest value read,
// in bytes (0 if none could be read: the process had gone).
func SampleRSS(t testing.TB, pid int, every time.Duration) (stop func() int64) {
	quit, done := make(chan struct{}), make(chan int64)
	go func() {
		var peak int64
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			if n, err := MemoryBytes(pid, "VmRSS"); err == nil {
				peak = max(peak, n)
			}
			select {
			case <-quit:
				done <- peak
				return
			case <-tick.C:
			}
		}
	}()
	stop = sync.OnceValue(func() int64 {
		close(quit)
		return <-done
	})
	t.Cleanup(func() { stop() })
	return stop
}
