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

// chain is three daemons on three hosts paired in a chain 1 – 2 – 3: 3
// is not paired with 1.
type chain struct {
	bin   string
	lab   *netlab.Lab
	dirs  [3]string
	procs [3]*netlab.Process
}

// startChain starts a chain, each daemon with its name and extra flags;
// the daemons' logs are printed if the test fails.
func startChain(t *testing.T, names [3]string, extra [3][]string) chain {
	t.Helper()
	c := chain{bin: netlab.BuildBinary(t, "github.com/drive-node/drive-node/cmd/drive-node"), lab: netlab.New(t, 3)}
	for i := range c.dirs {
		c.dirs[i] = filepath.Join(t.TempDir(), fmt.Sprint(i+1))
		if err := os.MkdirAll(c.dirs[i], 0o755); err != nil {
			t.Fatal(err)
		}
	}
	pairHosts(t, c.bin, c.lab.Host(0), c.lab.Host(1), c.dirs[0], c.dirs[1], nil)
	pairHosts(t, c.bin, c.lab.Host(1), c.lab.Host(2), c.dirs[1], c.dirs[2], nil)
	for i := range c.procs {
		c.procs[i] = startDaemon(t, c.lab.Host(i), c.bin, c.dirs[i], names[i], extra[i]...)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for i, p := range c.procs {
				t.Logf("log of %d (last lines):\n%s", i+1, lastLines(p.Log(), 80))
			}
		}
	})
	return c
}

// TestRelayChain: in a chain 1 – 2 – 3, where 3 is not paired with 1, a
// file made on 1 reaches 3 through 2 with no wait for a retry: 2 hands on
// the content the moment it has placed it. The test logs the time a file
// takes over the direct link 2 – 3 and through the chain, and fails if 3
// ever had to leave an op pending for want of content.
func TestRelayChain(t *testing.T) {
	c := startChain(t, [3]string{"device-1", "device-2", "device-3"}, [3][]string{})
	dirs, procs := c.dirs, c.procs
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
