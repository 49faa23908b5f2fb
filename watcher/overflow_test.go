package watcher

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const maxQueuedEvents = "/proc/sys/fs/inotify/max_queued_events"

// smallEventQueue makes the inotify instances created while it holds have
// a queue of n events (the kernel reads the limit when an instance is
// made); the returned func restores the machine's limit.
func smallEventQueue(t *testing.T, n int) (restore func()) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("this test needs root to shrink the inotify event queue")
		}
		t.Skip("needs root to shrink the inotify event queue")
	}
	old, err := os.ReadFile(maxQueuedEvents)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(maxQueuedEvents, []byte(strconv.Itoa(n)), 0o644); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	restore = func() { once.Do(func() { os.WriteFile(maxQueuedEvents, old, 0o644) }) }
	t.Cleanup(restore)
	return restore
}

// TestOverflowDuringABurstCostsOneRescan runs a watcher whose inotify
// queue holds 8 events and writes 4,000 files in a burst from several
// goroutines, so the queue overflows again and again. The watcher runs on
// a fake clock that stands still during the burst, so the burst has no
// pause, however slowly the machine runs it. Once the watcher has taken in
// all of it, the clock moves on: exactly one rescan runs for the lost
// events, overflowQuiet later, and it covers several losses (one rescan
// per overflow would log a rescan for each); the overflow is logged once;
// every file is reported. Full scans are counted as the listings of the
// folder itself, which only they make.
func TestOverflowDuringABurstCostsOneRescan(t *testing.T) {
	root := t.TempDir()
	const dirs, perDir = 8, 500
	// Made and watched before the burst: the directories the burst made
	// would be watched only once the clock moved.
	for d := range dirs {
		if err := os.Mkdir(filepath.Join(root, fmt.Sprintf("d%d", d)), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	logs := &syncBuffer{}
	restore := smallEventQueue(t, 8)
	const stable = 50 * time.Millisecond
	var scans atomic.Int32
	h := startFake(t, root, newIndex(), 15*time.Millisecond, stable, func(o *Options) { o.Logger = textLogger(logs) }, func(w *Watcher) {
		w.readDir = func(dir *os.Root) ([]fs.DirEntry, error) {
			if dir.Name() == root {
				scans.Add(1)
			}
			return listDir(dir)
		}
	})
	restore() // the watcher's instance has its small queue; later ones do not

	var wg sync.WaitGroup
	for d := range dirs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dir := filepath.Join(root, fmt.Sprintf("d%d", d))
			for i := range perDir {
				os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%d", i)), []byte(fmt.Sprintf("%d/%d", d, i)), 0o644)
			}
		}()
	}
	wg.Wait()

	// The kernel queues events and losses in order: once the watcher has
	// the event of a file moved in after the burst, it has all of the
	// burst. That event may itself be lost to a full queue (the loss then
	// comes after it): then another file is moved in.
	for i := 0; ; i++ {
		name := fmt.Sprintf("sentinel%d", i)
		h.mu.Lock()
		losses := h.loop.losses
		h.mu.Unlock()
		h.moveIn(name, name)
		h.until(name+"'s event or its loss", func() bool { return h.loop.pending[name] || h.loop.losses > losses })
		h.mu.Lock()
		seen := h.loop.pending[name]
		h.mu.Unlock()
		if seen {
			break
		}
	}
	burst := h.clk.Now()

	h.advanceTo(burst.Add(overflowQuiet - time.Nanosecond))
	if n := scans.Load(); n != 1 || strings.Contains(logs.String(), "rescanning the folder for lost file events") {
		t.Fatalf("%d full scans before the burst was overflowQuiet old, want the first only:\n%s", n, logs)
	}
	h.advanceTo(burst.Add(overflowQuiet))
	rescan := regexp.MustCompile(`msg="rescanning the folder for lost file events" losses=(\d+)`)
	m := rescan.FindStringSubmatch(logs.String())
	if m == nil {
		t.Fatalf("no rescan overflowQuiet after the burst:\n%s", logs)
	}
	if losses, _ := strconv.Atoi(m[1]); losses < 2 {
		t.Fatalf("the burst overflowed the queue %d times; the test needs several:\n%s", losses, logs)
	}
	// What the rescan found is reported once it has been quiet for
	// StableFor; a few more looks are plenty.
	seen := 0
	for range 10 {
		h.mu.Lock()
		seen = 0
		for p, o := range h.latest {
			if o.Exists && !o.Dir && strings.Count(p, "/") == 1 {
				seen++
			}
		}
		h.mu.Unlock()
		if seen == dirs*perDir {
			break
		}
		h.advance(stable)
	}
	if seen != dirs*perDir {
		t.Fatalf("%d of %d files reported:\n%s", seen, dirs*perDir, logs)
	}
	if n, logged := scans.Load(), len(rescan.FindAllString(logs.String(), -1)); n != 2 || logged != 1 {
		t.Fatalf("%d full scans, %d logged for lost events; want the first and one for the burst:\n%s", n, logged, logs)
	}
	if n := strings.Count(logs.String(), "file events overflowed"); n != 1 {
		t.Fatalf("the overflow was logged %d times, want once per burst:\n%s", n, logs)
	}
	t.Logf("%s overflows, one rescan", m[1])
}
