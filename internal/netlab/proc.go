//go:build linux

package netlab

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
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
