package watcher

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drive-node/drive-node/internal/clock"
	"github.com/fsnotify/fsnotify"
)

// countingIndex is a memIndex that counts the directories whose records
// are listed (Children): the directories a walk compares with it.
type countingIndex struct {
	*memIndex
	mu   sync.Mutex
	dirs map[string]int
}

func (c *countingIndex) Children(dir string) (map[string]Known, error) {
	c.mu.Lock()
	c.dirs[dir]++
	c.mu.Unlock()
	return c.memIndex.Children(dir)
}

// take returns the directories listed since the last take, sorted.
func (c *countingIndex) take() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for d := range c.dirs {
		out = append(out, d)
	}
	clear(c.dirs)
	sort.Strings(out)
	return out
}

// ctimeOf returns the ctime of the file at p.
func ctimeOf(t *testing.T, p string) int64 {
	t.Helper()
	st, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	c, _, _, ok := changeOf(st)
	if !ok {
		t.Skip("no ctime on this platform")
	}
	return c
}

// startAfterSetup runs a watcher, as startFake does, on a clock that reads,
// for its first scan, ctimeSlack past the ctime of a file written after
// the folder was made, so that everything made so far has the ctime of
// what was there before that scan began; and it returns once the kernel's
// clock, which stamps ctimes, has moved past that file's, so that
// whatever the test changes from then on has the ctime of a change made
// after. It skips the test where the folder's file system keeps no
// trustworthy ctime.
func startAfterSetup(t *testing.T, root string, idx *countingIndex, tweakOpts func(*Options), tweak func(*Watcher)) *harness {
	t.Helper()
	if !keepsCTime(root) {
		t.Skip("the folder's file system keeps no trustworthy ctime")
	}
	probe := filepath.Join(t.TempDir(), "probe")
	writeAt(t, probe, "")
	made := ctimeOf(t, probe)
	h := start(t, root, idx.memIndex, func(o *Options) {
		o.Index = idx
		o.Clock = clock.NewFake(time.Unix(0, made).Add(ctimeSlack + time.Nanosecond))
		o.Settle, o.StableFor = 10*time.Millisecond, time.Second
		if tweakOpts != nil {
			tweakOpts(o)
		}
	}, tweak)
	for ctimeOf(t, probe) <= made { // the kernel's clock ticks every few milliseconds
		writeAt(t, probe, "")
	}
	return h
}

// unwatch removes the kernel's watches on every watched directory but
// keep: what happens in them from then on makes no event, as if every
// event there had been lost.
func (h *harness) unwatch(keep ...string) {
	h.t.Helper()
	h.settle()
	h.mu.Lock()
	fsw, watched := h.loop.fsw, h.loop.watched
	h.mu.Unlock()
	for d := range watched {
		if !slices.Contains(keep, d) {
			if err := fsw.Remove(h.w.abs(d)); err != nil {
				h.t.Fatal(err)
			}
		}
	}
}

// TestLostEventsAreFoundWithoutComparingQuietDirectories: after an
// overflow, the changes whose events were lost are all reported, in
// directories no event named as well as in the busy one: a file edited, a
// file chmodded, and a file edited three levels down, in directories where
// nothing else happened; a file removed and one renamed; a tree moved in
// from outside the folder; and a directory replaced by another with the
// same names inside, which changes no ctime below it; and what is in a
// directory renamed away and back, whose records a look took for gone.
// Yet the rescan compares with the Index only the directories where an
// entry was made, removed or renamed, those it had not seen at their path
// and those without a record: not the directories where only files
// changed, not the many where nothing happened.
func TestLostEventsAreFoundWithoutComparingQuietDirectories(t *testing.T) {
	root := t.TempDir()
	files := map[string]string{
		"busy/x":               "x",
		"edit/f1":              "content",
		"edit/f2":              "modes",
		"names/old":            "old",
		"names/a":              "renamed",
		"into/keep":            "keep",
		"swap/sub/inner/same":  "before",
		"other/sub/inner/same": "after",
		"p/q/r/keep":           "keep",
		"still/a/1":            "1",
		"still/b/2":            "2",
		"still/c/d/3":          "3",
		"back/u/kept":          "kept",
	}
	for p, data := range files {
		writeOld(t, filepath.Join(root, p), data)
	}
	idx := &countingIndex{memIndex: newIndex(), dirs: map[string]int{}}
	logs := &syncBuffer{}
	h := startAfterSetup(t, root, idx, func(o *Options) { o.Logger = textLogger(logs) }, nil)
	if n := len(idx.take()); n != 21 {
		t.Fatalf("the first scan compared %d directories, want all 21", n)
	}
	h.unwatch("busy")
	before := map[string]int{}
	for _, p := range h.allPaths() {
		before[p]++
	}

	// The lost events.
	writeOld(t, filepath.Join(root, "edit/f1"), "CONTENT")
	if err := os.Chmod(filepath.Join(root, "edit/f2"), 0o600); err != nil {
		t.Fatal(err)
	}
	writeOld(t, filepath.Join(root, "p/q/r/keep"), "edited deep down")
	if err := os.Remove(filepath.Join(root, "names/old")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(root, "names/a"), filepath.Join(root, "names/b")); err != nil {
		t.Fatal(err)
	}
	outside := t.TempDir()
	writeOld(t, filepath.Join(outside, "tree/sub/deep"), "moved in")
	if err := os.Rename(filepath.Join(outside, "tree"), filepath.Join(root, "into/tree")); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(root, "swap/sub")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(root, "other/sub"), filepath.Join(root, "swap/sub")); err != nil {
		t.Fatal(err)
	}
	// A directory renamed away and back, which a look after an event
	// took for gone, with what was recorded in it (vanished, in
	// lookPaths): what it holds has no record, and the directory inside,
	// though old, the same inode and at the same path, is compared.
	for _, p := range []string{"back", "back/u", "back/u/kept"} {
		idx.forget(p)
	}
	if err := os.Rename(filepath.Join(root, "back"), filepath.Join(root, "away")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(root, "away"), filepath.Join(root, "back")); err != nil {
		t.Fatal(err)
	}
	// The burst that overflowed the queue, in a directory still watched.
	h.track("busy/y")
	writeOld(t, filepath.Join(root, "busy/y"), "y")
	h.waitPending("busy/y")
	h.lose()
	h.advance(overflowQuiet)
	h.settle()

	want := map[string]func(Observation) bool{
		"busy/y":               hashOf("y"),
		"edit/f1":              hashOf("CONTENT"),
		"edit/f2":              func(o Observation) bool { return hashOf("modes")(o) && o.Mode == 0o600 },
		"p/q/r/keep":           hashOf("edited deep down"),
		"names/old":            gone,
		"names/a":              gone,
		"names/b":              hashOf("renamed"),
		"into/tree":            isDir,
		"into/tree/sub":        isDir,
		"into/tree/sub/deep":   hashOf("moved in"),
		"swap/sub/inner/same":  hashOf("after"),
		"other/sub":            gone,
		"other/sub/inner":      gone,
		"other/sub/inner/same": gone,
		"back/u/kept":          hashOf("kept"),
		"back":                 isDir,
		"back/u":               isDir,
	}
	for p, ok := range want {
		h.waitObs(p, ok)
	}
	for _, p := range h.allPaths() {
		before[p]--
	}
	for p := range want {
		if n := -before[p]; n != 1 {
			t.Errorf("%s reported %d more times by the rescan, want once", p, n)
		}
	}
	for p, n := range before {
		if _, changed := want[p]; !changed && n != 0 {
			t.Errorf("%s reported %d more times by the rescan, want none", p, -n)
		}
	}
	compared := idx.take()
	wantCompared := []string{"", "back", "back/u", "busy", "into", "into/tree", "into/tree/sub", "names", "other", "swap", "swap/sub", "swap/sub/inner"}
	if !slices.Equal(compared, wantCompared) {
		t.Errorf("the rescan compared %q with the Index, want %q", compared, wantCompared)
	}
	if !strings.Contains(logs.String(), `"rescanned the folder, comparing what changed since the last scan" directories=21 compared=12`) {
		t.Errorf("want the rescan logged with its directories listed and compared:\n%s", logs)
	}
}

// TestLostScanIsWholeWhenCTimesCannotTell: the rescan for lost events
// compares every directory with the Index when the folder's file system
// keeps no trustworthy ctime, and when events were lost to an error other
// than an overflow, of which nothing is known.
func TestLostScanIsWholeWhenCTimesCannotTell(t *testing.T) {
	cases := []struct {
		name       string
		keepsCTime bool
		loss       error
	}{
		{"no ctime", false, fsnotify.ErrEventOverflow},
		{"an error other than an overflow", true, errors.New("read failed")},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			root := t.TempDir()
			for _, p := range []string{"a/1", "b/2", "b/c/3"} {
				writeOld(t, filepath.Join(root, p), p)
			}
			idx := &countingIndex{memIndex: newIndex(), dirs: map[string]int{}}
			h := startAfterSetup(t, root, idx, nil, func(w *Watcher) {
				w.keepsCTime = func(string) bool { return c.keepsCTime }
			})
			idx.take()
			h.track("a/new")
			writeOld(t, filepath.Join(root, "a/new"), "new")
			h.waitPending("a/new")
			h.settle()
			h.mu.Lock()
			fsw, losses := h.loop.fsw, h.loop.losses
			h.mu.Unlock()
			fsw.Errors <- c.loss
			h.until("the loss to be noted", func() bool { return h.loop.losses > losses })
			h.advance(overflowQuiet)
			h.settle()
			want := []string{"", "a", "b", "b/c"}
			if got := idx.take(); !slices.Equal(got, want) {
				t.Errorf("the rescan compared %q with the Index, want every directory", got)
			}
		})
	}
}
