package watcher

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/drive-node/drive-node/internal/clock"
)

// The tests in this file run the watcher on a fake clock, moved on by the
// test: what they check happens, or does not, at a given reading of it.

// TestChangingFileIsReportedOnceStableFor appends to a recorded file every
// 400 ms, three times, with StableFor 1 s. The watcher looks at it after
// each write, but neither hashes nor reports it until it has been quiet
// for StableFor; then it reports it once, with all that was written.
func TestChangingFileIsReportedOnceStableFor(t *testing.T) {
	const settle, stable = 10 * time.Millisecond, time.Second
	root := t.TempDir()
	p := filepath.Join(root, "growing.log")
	writeOld(t, p, "")
	idx := newIndex()
	idx.set("growing.log", knownFile(t, p))
	var mu sync.Mutex
	var hashedAt []time.Time
	h := startFake(t, root, idx, settle, stable, nil, func(w *Watcher) {
		w.onHash = func(string, fs.FileInfo) {
			mu.Lock()
			defer mu.Unlock()
			hashedAt = append(hashedAt, w.clk.Now())
		}
	})
	// hashes returns when the file was hashed, from the last write.
	var last time.Time
	hashes := func() []time.Duration {
		mu.Lock()
		defer mu.Unlock()
		var ds []time.Duration
		for _, at := range hashedAt {
			ds = append(ds, at.Sub(last))
		}
		return ds
	}
	// Appends made through one open file: one event each, so the test
	// knows when the watcher has seen a write before it moves the clock.
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h.track("growing.log")
	var all strings.Builder
	for i := range 3 {
		if i > 0 {
			h.advance(400 * time.Millisecond)
		}
		line := fmt.Sprintf("line %d\n", i)
		all.WriteString(line)
		if _, err := f.WriteString(line); err != nil {
			t.Fatal(err)
		}
		h.waitPending("growing.log")
	}
	last = h.clk.Now()

	h.advanceTo(last.Add(stable - time.Nanosecond))
	if n, at := h.count("growing.log"), hashes(); n != 0 || len(at) != 0 {
		t.Fatalf("reported %d times, hashed at %v from the last write, before it was quiet for StableFor", n, at)
	}
	// Looked at Settle after the last write, and again StableFor later.
	h.advanceTo(last.Add(stable + settle))
	if n := h.count("growing.log"); n != 1 {
		t.Fatalf("reported %d times once quiet for StableFor, want once", n)
	}
	h.waitObs("growing.log", hashOf(all.String()))
	if at := hashes(); len(at) != 1 || at[0] < stable {
		t.Errorf("hashed at %v from the last write; want once, StableFor (%v) after it or later", at, stable)
	}
}

// TestFileMovedInWithAnOldMTimeIsHashedAtOnce: a file moved into the
// folder keeps its old mtime, so it has been quiet for StableFor already
// and is reported as soon as its event has settled.
func TestFileMovedInWithAnOldMTimeIsHashedAtOnce(t *testing.T) {
	const settle, stable = 10 * time.Millisecond, time.Second
	root := t.TempDir()
	h := startFake(t, root, newIndex(), settle, stable, nil, nil)
	h.moveIn("f", "moved in")
	h.waitPending("f")
	h.advance(settle - time.Nanosecond)
	if n := h.count("f"); n != 0 {
		t.Fatalf("reported %d times before its event settled", n)
	}
	h.advance(time.Nanosecond)
	if n := h.count("f"); n != 1 {
		t.Fatalf("reported %d times once its event settled, want once", n)
	}
	h.waitObs("f", hashOf("moved in"))
}

// TestEventLossRescansOnceTheBurstIsOver: after the kernel drops events,
// the folder is rescanned once no event or loss has come for
// overflowQuiet, or overflowMaxWait after the first loss for a burst that
// never pauses; not before, and once. The rescan shows in a file the index
// forgot, which no event names.
func TestEventLossRescansOnceTheBurstIsOver(t *testing.T) {
	const settle = 10 * time.Millisecond
	var endless []time.Duration
	for at := time.Duration(0); at < overflowMaxWait; at += overflowQuiet / 2 {
		endless = append(endless, at)
	}
	cases := []struct {
		name   string
		losses []time.Duration // when events are lost
		events []time.Duration // when a file is moved in
		rescan time.Duration   // when the rescan is due
	}{
		{"losses less than overflowQuiet apart", []time.Duration{0, 600 * time.Millisecond, 1200 * time.Millisecond}, nil,
			1200*time.Millisecond + overflowQuiet},
		{"an event after a loss", []time.Duration{0}, []time.Duration{800 * time.Millisecond},
			800*time.Millisecond + overflowQuiet},
		{"a burst that never pauses", endless, nil, overflowMaxWait},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			root := t.TempDir()
			writeOld(t, filepath.Join(root, "f"), "missed")
			idx := newIndex()
			idx.set("f", knownFile(t, filepath.Join(root, "f")))
			logs := &syncBuffer{}
			h := startFake(t, root, idx, settle, time.Second, func(o *Options) { o.Logger = textLogger(logs) }, nil)
			idx.forget("f")
			start := h.clk.Now()

			type step struct {
				at   time.Duration
				loss bool
			}
			var steps []step
			for _, at := range c.losses {
				steps = append(steps, step{at, true})
			}
			for _, at := range c.events {
				steps = append(steps, step{at, false})
			}
			slices.SortStableFunc(steps, func(a, b step) int { return int(a.at - b.at) })
			for i, s := range steps {
				h.advanceTo(start.Add(s.at))
				if s.loss {
					h.lose()
					continue
				}
				name := fmt.Sprintf("moved%d", i)
				h.moveIn(name, name)
				h.waitPending(name)
			}

			h.advanceTo(start.Add(c.rescan - time.Nanosecond))
			if n := h.count("f"); n != 0 || strings.Contains(logs.String(), "rescanning the folder for lost file events") {
				t.Fatalf("rescanned before %v (f reported %d times):\n%s", c.rescan, n, logs)
			}
			h.advanceTo(start.Add(c.rescan))
			if n := h.count("f"); n != 1 {
				t.Fatalf("f reported %d times at %v, want once by the rescan:\n%s", n, c.rescan, logs)
			}
			want := fmt.Sprintf("rescanning the folder for lost file events\" losses=%d", len(c.losses))
			if n := strings.Count(logs.String(), "rescanning the folder for lost file events"); n != 1 || !strings.Contains(logs.String(), want) {
				t.Errorf("want one rescan logged, for %d losses:\n%s", len(c.losses), logs)
			}
			if n := strings.Count(logs.String(), "file events overflowed"); n != 1 {
				t.Errorf("the overflow was logged %d times, want once for the burst:\n%s", n, logs)
			}
		})
	}
}

// TestPeriodicRescan: a rescan comes every RescanInterval, not before.
// Most find the changes no event reported while comparing with the Index
// only what changed since the scan before; every fullRescanEvery-th is a
// full scan, which also finds a file the Index forgot. A rescan asked for
// is a full one too, and the count of periodic ones starts again after
// it.
func TestPeriodicRescan(t *testing.T) {
	const interval = 10 * time.Minute
	root := t.TempDir()
	for _, p := range []string{"forgotten", "edit/f", "quiet/g"} {
		writeOld(t, filepath.Join(root, p), "before")
	}
	idx := &countingIndex{memIndex: newIndex(), dirs: map[string]int{}}
	h := startAfterSetup(t, root, idx, func(o *Options) { o.RescanInterval = interval }, nil)
	allDirs := []string{"", "edit", "quiet"}
	if got := idx.take(); !slices.Equal(got, allDirs) {
		t.Fatalf("the first scan compared %q, want %q", got, allDirs)
	}
	h.unwatch() // what happens from now on makes no event
	writeOld(t, filepath.Join(root, "edit/f"), "edited")
	const askedAfter = 3 // a rescan is asked for after the third
	full := func(i int) bool { return i > askedAfter && (i-askedAfter)%fullRescanEvery == 0 }
	start := h.clk.Now()
	for i := 1; i <= 2*fullRescanEvery; i++ {
		idx.forget("forgotten")
		reported := h.count("forgotten")
		due := start.Add(time.Duration(i) * interval)
		h.advanceTo(due.Add(-time.Nanosecond))
		if i == 1 && h.count("edit/f") != 1 {
			t.Fatalf("edit/f reported again before the first rescan was due")
		}
		if n := h.count("forgotten"); n != reported {
			t.Fatalf("a file the Index forgot reported before rescan %d was due", i)
		}
		h.advanceTo(due)
		compared := idx.take()
		switch {
		case i == 1:
			h.waitObs("edit/f", hashOf("edited"))
		case full(i) && !slices.Equal(compared, allDirs):
			t.Errorf("full rescan %d compared %q, want %q", i, compared, allDirs)
		case !full(i) && len(compared) > 0:
			t.Errorf("rescan %d compared %q with the Index, where nothing changed", i, compared)
		}
		want := reported
		if full(i) {
			want++
		}
		if n := h.count("forgotten"); n != want {
			t.Errorf("rescan %d (full %v) reported the file the Index forgot %d times, want %d", i, full(i), n-reported, want-reported)
		}
		if i == askedAfter {
			idx.forget("forgotten")
			reported := h.count("forgotten")
			h.rescanned()
			if compared := idx.take(); !slices.Equal(compared, allDirs) {
				t.Errorf("the rescan asked for compared %q, want %q", compared, allDirs)
			}
			if n := h.count("forgotten"); n != reported+1 {
				t.Errorf("the rescan asked for reported the file the Index forgot %d times, want once", n-reported)
			}
		}
	}
}

// TestScanWaitsStableForAFileWithAFutureMTime: a file whose mtime is in the
// future cannot be told quiet by its age; Scan looks at it again StableFor
// later and, finding it unchanged, reports it.
func TestScanWaitsStableForAFileWithAFutureMTime(t *testing.T) {
	const stable = time.Second
	clk := clock.NewFake(time.Now())
	root := t.TempDir()
	p := filepath.Join(root, "from-the-future")
	writeAt(t, p, "later")
	future := clk.Now().Add(time.Hour)
	if err := os.Chtimes(p, future, future); err != nil {
		t.Fatal(err)
	}
	w, err := New(Options{Root: root, Index: newIndex(), Logger: quietLogger(), Clock: clk, StableFor: stable})
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		batches [][]Observation
		err     error
	}
	done := make(chan result, 1)
	_, armed := clk.Armed()
	go func() {
		batches, err := scanAll(t, w)
		done <- result{batches, err}
	}()
	select {
	case <-armed:
	case r := <-done:
		t.Fatalf("Scan returned without waiting: %+v, %v", flatten(r.batches), r.err)
	case <-time.After(10 * time.Second):
		t.Fatal("Scan did not wait for the clock")
	}
	clk.Advance(stable - time.Nanosecond)
	if n, _ := clk.Armed(); n != 1 {
		t.Fatal("Scan stopped waiting before StableFor")
	}
	_, armed = clk.Armed()
	clk.Advance(time.Nanosecond)
	select {
	case r := <-done:
		if got := flatten(r.batches); r.err != nil || !hashOf("later")(got["from-the-future"]) || len(got) != 1 {
			t.Fatalf("scan: %+v, %v", got, r.err)
		}
	case <-armed:
		t.Fatal("Scan waited again for a file that did not change")
	case <-time.After(10 * time.Second):
		t.Fatal("Scan did not finish")
	}
}

// TestPeriodicRescanWhileADirectoryHasNoWatch: while every directory has a
// watch, the periodic rescan comes every RescanInterval; a watch that
// fails, here between two scans, brings it within unwatchedRescanInterval
// of the previous one, the only way a change in that directory is found,
// and so on while the directory is there. The rescan after it went finds
// every directory watched, and the period is RescanInterval again, until
// a rescan finds a watch the kernel dropped without a word and cannot
// watch the directory again.
func TestPeriodicRescanWhileADirectoryHasNoWatch(t *testing.T) {
	const interval = time.Hour
	root := t.TempDir()
	writeOld(t, filepath.Join(root, "seen/g"), "before")
	var seenFails atomic.Bool
	h := startFake(t, root, newIndex(), 10*time.Millisecond, time.Second,
		func(o *Options) { o.RescanInterval = interval },
		func(w *Watcher) {
			// Every periodic rescan compares the whole folder, so the
			// fake clock's distance from the file system's does not count.
			w.keepsCTime = func(string) bool { return false }
			w.failWatch = func(rel string) error {
				if rel == "blind" || rel == "seen" && seenFails.Load() {
					return errors.New("no inotify watch left")
				}
				return nil
			}
		})
	start := h.clk.Now()
	h.track("blind")
	notBefore := func(path, data string, due time.Time) {
		t.Helper()
		h.advanceTo(due.Add(-time.Nanosecond))
		h.mu.Lock()
		o, ok := h.latest[path]
		h.mu.Unlock()
		if ok && hashOf(data)(o) {
			t.Fatalf("%s reported as %q %v before the rescan due at %v", path, data, h.clk.Now().Sub(start), due.Sub(start))
		}
		h.advanceTo(due)
		h.waitObs(path, hashOf(data))
	}

	h.advance(time.Minute)
	writeOld(t, filepath.Join(root, "blind/f"), "first")
	h.waitPending("blind")
	h.advance(time.Second)
	h.waitObs("blind/f", hashOf("first")) // found by the look at "blind" its event asked for
	writeOld(t, filepath.Join(root, "blind/f"), "edited unheard")
	notBefore("blind/f", "edited unheard", start.Add(unwatchedRescanInterval))
	writeOld(t, filepath.Join(root, "blind/f"), "edited again")
	notBefore("blind/f", "edited again", start.Add(2*unwatchedRescanInterval))

	if err := os.RemoveAll(filepath.Join(root, "blind")); err != nil {
		t.Fatal(err)
	}
	h.waitPending("blind")
	h.advance(time.Second)
	h.waitObs("blind", gone)
	recounted := start.Add(3 * unwatchedRescanInterval) // finds every directory watched
	h.advanceTo(recounted)
	// The kernel drops the watch on "seen" without an event (as when a
	// file system mounted there is unmounted), and "seen" can no longer
	// be watched: the next rescan, an interval later, finds the change and
	// tries the watch again, which fails and shortens the period.
	seenFails.Store(true)
	h.unwatch("")
	writeOld(t, filepath.Join(root, "seen/g"), "edited unheard")
	notBefore("seen/g", "edited unheard", recounted.Add(interval))
	writeOld(t, filepath.Join(root, "seen/g"), "edited again")
	notBefore("seen/g", "edited again", recounted.Add(interval+unwatchedRescanInterval))
}
