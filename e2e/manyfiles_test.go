package e2e

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drive-node/drive-node/internal/netlab"
)

var manyFiles = flag.Int("e2e.manyfiles", 200_000, "files TestManySmallFilesAllArrive writes into A's folder")

// TestManySmallFilesAllArrive writes 200,000 files of 1 KiB (100 to a
// directory) straight into A's folder while both daemons run, as a copy of
// a photo library would, and requires every one on B, with no restart.
// A 100,000-file sync used to stop for good at 75,000 with both sides idle
// and status saying nothing was left; the bound here is generous (the
// LAN benchmark measures the speed), what the test guards is the stall.
// It also requires that B's status counts what is still to apply until
// the end, that B never needed its stall watchdog, and that A's inotify
// overflows during the burst cost one rescan each burst, not one each.
func TestManySmallFilesAllArrive(t *testing.T) {
	total := *manyFiles
	p := newPair(t)
	start := time.Now()
	for i := range total {
		name := filepath.Join(p.dirA, fmt.Sprintf("d%04d", i/100), fmt.Sprintf("f%06d.txt", i))
		if i%100 == 0 {
			if err := os.Mkdir(filepath.Dir(name), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		body := []byte(strings.Repeat(fmt.Sprintf("file %07d of the library\n", i), 40)[:1024])
		if err := os.WriteFile(name, body, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	wrote := time.Since(start)
	t.Logf("wrote %d files into A's folder in %.1fs", total, wrote.Seconds())

	var last time.Time
	var sawPending bool
	took := netlab.Eventually(t, 20*time.Minute, fmt.Sprintf("%d files on B", total), func() (bool, string) {
		if time.Since(last) < 2*time.Second {
			return false, "waiting"
		}
		last = time.Now()
		st, err := readStatus(p.b, p.bin, p.dirB)
		if err != nil {
			return false, err.Error()
		}
		sawPending = sawPending || st.PendingOps > 0
		return st.Files == total && st.PendingOps == 0, fmt.Sprintf("%d files recorded, %d ops to apply %+v", st.Files, st.PendingOps, st.Pending)
	})
	t.Logf("%d files reached B %.1fs after the first was written (%.0f files/s); peak RSS A %d MiB, B %d MiB",
		total, (wrote + took).Seconds(), float64(total)/(wrote+took).Seconds(), peakRSS(t, p.pa.Pid())>>20, peakRSS(t, p.pb.Pid())>>20)
	if d := treeDiff(p.dirA, p.dirB); d != "" {
		t.Fatalf("B's folder differs from A's: %s", d)
	}
	if !sawPending {
		t.Errorf("B's status never showed ops still to apply during the sync")
	}
	if logB := p.pb.Log(); strings.Contains(logB, "resetting the connection") {
		t.Errorf("B needed its stall watchdog: a content stream was left half open")
	}
	// Lost events are made good by a rescan once the burst pauses, or
	// every 30 s of a burst that does not: never one rescan per overflow.
	logA := p.pa.Log()
	rescans := strings.Count(logA, "rescanning the folder for lost file events")
	t.Logf("rescans of A's folder for lost events: %d", rescans)
	if limit := 1 + int((wrote+took)/(30*time.Second)); rescans > limit {
		t.Errorf("%d rescans for lost events during a %.0f s burst; want at most %d", rescans, (wrote + took).Seconds(), limit)
	}
}
