package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drive-node/drive-node/internal/netlab"
)

// TestRelayChain: in a chain 1 – 2 – 3, where 3 is not paired with 1, a
// file made on 1 reaches 3 through 2 with no wait for a retry: 2 hands on
// the content the moment it has placed it. The test logs the time a file
// takes over the direct link 2 – 3 and through the chain, and fails if 3
// ever had to leave an op pending for want of content.
func TestRelayChain(t *testing.T) {
	bin := netlab.BuildBinary(t, "github.com/drive-node/drive-node/cmd/drive-node")
	lab := netlab.New(t, 3)
	var dirs [3]string
	for i := range dirs {
		dirs[i] = filepath.Join(t.TempDir(), fmt.Sprint(i+1))
		if err := os.MkdirAll(dirs[i], 0o755); err != nil {
			t.Fatal(err)
		}
	}
	pairHosts(t, bin, lab.Host(0), lab.Host(1), dirs[0], dirs[1], nil)
	pairHosts(t, bin, lab.Host(1), lab.Host(2), dirs[1], dirs[2], nil)
	var procs [3]*netlab.Process
	for i := range procs {
		procs[i] = startDaemon(t, lab.Host(i), bin, dirs[i], fmt.Sprint("device-", i+1))
	}
	t.Cleanup(func() {
		if t.Failed() {
			for i, p := range procs {
				t.Logf("log of %d (last lines):\n%s", i+1, lastLines(p.Log(), 60))
			}
		}
	})
	writeFile(t, filepath.Join(dirs[0], "warm-up.txt"), []byte("connected\n"))
	arrives(t, "the chain is connected", filepath.Join(dirs[2], "warm-up.txt"), []byte("connected\n"), 30*time.Second)

	var direct, relayed []time.Duration
	for i := range 3 {
		for _, from := range []int{1, 0} {
			data := randomBytes(t, 2<<20)
			name := fmt.Sprintf("from-%d-%d.bin", from+1, i)
			start := time.Now()
			writeFile(t, filepath.Join(dirs[from], name), data)
			arrives(t, name+" reaches 3", filepath.Join(dirs[2], name), data, 30*time.Second)
			if took := time.Since(start); from == 1 {
				direct = append(direct, took)
			} else {
				relayed = append(relayed, took)
			}
		}
	}
	t.Logf("2 MiB file to 3: direct from 2 %v, through 2 from 1 %v", direct, relayed)
	if log := procs[2].Log(); strings.Contains(log, "op stays pending") {
		t.Fatalf("3 left a relayed op pending for want of its content:\n%s", lastLines(log, 60))
	}
}
