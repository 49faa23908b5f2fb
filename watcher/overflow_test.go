package watcher

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
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
// goroutines, so the queue overflows again and again. Every file must be
// reported; the overflow is logged once, and by the time every file is in,
// exactly one rescan has run for the lost events and it covered several
// losses (one rescan per overflow would log a rescan for each).
func TestOverflowDuringABurstCostsOneRescan(t *testing.T) {
	root := t.TempDir()
	logs := &syncBuffer{}
	restore := smallEventQueue(t, 8)
	h := start(t, root, newIndex(), func(o *Options) {
		o.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}, nil)
	restore() // the watcher's instance has its small queue; later ones do not

	const dirs, perDir = 8, 500
	var wg sync.WaitGroup
	for d := range dirs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dir := filepath.Join(root, fmt.Sprintf("d%d", d))
			os.Mkdir(dir, 0o755)
			for i := range perDir {
				os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%d", i)), []byte(fmt.Sprintf("%d/%d", d, i)), 0o644)
			}
		}()
	}
	wg.Wait()

	rescan := regexp.MustCompile(`msg="rescanning the folder for lost file events" losses=(\d+)`)
	deadline := time.Now().Add(60 * time.Second)
	for {
		h.mu.Lock()
		seen := 0
		for p, o := range h.latest {
			if o.Exists && !o.Dir && strings.Count(p, "/") == 1 {
				seen++
			}
		}
		h.mu.Unlock()
		m := rescan.FindStringSubmatch(logs.String())
		if seen == dirs*perDir && m != nil {
			losses, _ := strconv.Atoi(m[1])
			if losses < 2 {
				t.Fatalf("the burst overflowed the queue %d times; the test needs several:\n%s", losses, logs)
			}
			if n := len(rescan.FindAllString(logs.String(), -1)); n != 1 {
				t.Fatalf("%d rescans for one burst's lost events, want 1:\n%s", n, logs)
			}
			if n := strings.Count(logs.String(), "file events overflowed"); n != 1 {
				t.Fatalf("the overflow was logged %d times, want once per burst:\n%s", n, logs)
			}
			t.Logf("%d overflows, one rescan", losses)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d files reported, rescan logged: %v\n%s", seen, dirs*perDir, m != nil, logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
