package watcher

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/drive-node/drive-node/content"
	"github.com/drive-node/drive-node/internal/clock"
	"github.com/fsnotify/fsnotify"
)

// memIndex is an Index that records whatever it is told, like the node.
type memIndex struct {
	mu sync.Mutex
	m  map[string]Known
}

func newIndex() *memIndex { return &memIndex{m: map[string]Known{}} }

func (x *memIndex) Lookup(p string) (Known, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	k, ok := x.m[p]
	return k, ok
}

func (x *memIndex) Under(dir string) []string {
	x.mu.Lock()
	defer x.mu.Unlock()
	var out []string
	for p := range x.m {
		if dir == "" || strings.HasPrefix(p, dir+"/") {
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out
}

func (x *memIndex) Children(dir string) (map[string]Known, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	out := map[string]Known{}
	for p, k := range x.m {
		rest, ok := p, dir == ""
		if dir != "" {
			rest, ok = strings.CutPrefix(p, dir+"/")
		}
		if !ok {
			continue
		}
		if sub, _, deeper := strings.Cut(rest, "/"); !deeper {
			out[rest] = k
		} else if _, held := out[sub]; !held {
			out[sub] = Known{Dir: true, Implied: true} // replaced if sub has a record
		}
	}
	return out, nil
}

func (x *memIndex) set(p string, k Known) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.m[p] = k
}

func (x *memIndex) forget(p string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	delete(x.m, p)
}

// record makes the index reflect observations, as the node does.
func (x *memIndex) record(obs []Observation) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, o := range obs {
		if !o.Exists {
			delete(x.m, o.Path)
			continue
		}
		x.m[o.Path] = Known{Dir: o.Dir, Size: o.Size, MTime: o.MTime, Inode: o.Inode, Mode: o.Mode, Hash: o.Hash}
	}
}

// syncBuffer is a log destination safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func quietLogger() *slog.Logger { return textLogger(io.Discard) }

// textLogger logs at Info and above to w.
func textLogger(w io.Writer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }

type harness struct {
	t      *testing.T
	root   string
	idx    *memIndex
	w      *Watcher
	clk    *clock.Fake // the watcher's clock, if it is a fake one
	runErr chan error
	ping   chan chan struct{} // see sync

	mu      sync.Mutex
	changed chan struct{} // closed and replaced at each slice received and each report of the loop
	batches [][]Observation
	latest  map[string]Observation
	waits   int             // reports of the Run loop, made each time it is about to wait
	loop    loopReport      // the last one
	tracked map[string]bool // paths whose pending state the reports carry
}

// loopReport is what the Run loop showed as it was about to wait.
type loopReport struct {
	next    time.Time // when its timer is due; zero if it is stopped
	rescan  bool      // a rescan was asked for and has not started
	losses  int       // event losses noted since the last rescan for them
	fsw     *fsnotify.Watcher
	pending map[string]bool // the tracked paths named by events not yet looked at
	watched map[string]bool // the directories with a watch
}

// start runs a watcher on root; tweak, if not nil, adjusts the options and
// then the watcher before Run starts. With a fake Clock, the folder must
// hold no file still being written: the first scan would wait for the
// clock, and start waits for the first scan.
func start(t *testing.T, root string, idx *memIndex, tweakOpts func(*Options), tweak func(*Watcher)) *harness {
	t.Helper()
	opts := Options{Root: root, Index: idx, RescanInterval: -1, Logger: quietLogger()}
	if tweakOpts != nil {
		tweakOpts(&opts)
	}
	w, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := &harness{t: t, root: root, idx: idx, w: w, runErr: make(chan error, 1), ping: make(chan chan struct{}),
		changed: make(chan struct{}), latest: map[string]Observation{}, tracked: map[string]bool{}}
	h.clk, _ = opts.Clock.(*clock.Fake)
	w.waiting = h.report
	if tweak != nil {
		tweak(w)
	}
	out := make(chan []Observation)
	go func() { h.runErr <- w.Run(ctx, out) }()
	recvDone := make(chan struct{})
	go func() {
		defer close(recvDone)
		for {
			select {
			case batch := <-out:
				idx.record(batch)
				h.mu.Lock()
				h.batches = append(h.batches, batch)
				for _, o := range batch {
					h.latest[o.Path] = o
				}
				h.notify()
				h.mu.Unlock()
			case done := <-h.ping:
				close(done)
			case <-ctx.Done():
				return
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-recvDone
		select {
		case <-h.runErr:
		case <-time.After(5 * time.Second):
			t.Error("Run did not return after cancel")
		}
	})
	select {
	case <-w.Scanned():
	case err := <-h.runErr:
		t.Fatalf("Run ended before its first scan: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("first scan did not finish")
	}
	return h
}

// startFake runs a watcher, as start does, on a fake clock that reads the
// time of the call until the test moves it on, with the given Settle and
// StableFor.
func startFake(t *testing.T, root string, idx *memIndex, settle, stableFor time.Duration, tweakOpts func(*Options), tweak func(*Watcher)) *harness {
	t.Helper()
	return start(t, root, idx, func(o *Options) {
		o.Clock, o.Settle, o.StableFor = clock.NewFake(time.Now()), settle, stableFor
		if tweakOpts != nil {
			tweakOpts(o)
		}
	}, tweak)
}

// report is the watcher's waiting seam: it runs on the Run loop.
func (h *harness) report(l *loop) {
	r := loopReport{next: l.next(), rescan: len(h.w.rescan.C()) > 0, losses: l.lost.count, fsw: l.ws.fsw,
		pending: map[string]bool{}, watched: maps.Clone(l.ws.dirs)}
	h.mu.Lock()
	defer h.mu.Unlock()
	for p := range h.tracked {
		if _, ok := l.pending[p]; ok {
			r.pending[p] = true
		}
	}
	h.waits++
	h.loop = r
	h.notify()
}

// notify wakes whoever waits in until; h.mu must be held.
func (h *harness) notify() {
	close(h.changed)
	h.changed = make(chan struct{})
}

// until waits until cond holds, checking it, with h.mu held, at each
// slice received and each report of the Run loop.
func (h *harness) until(what string, cond func() bool) {
	h.t.Helper()
	timeout := time.NewTimer(10 * time.Second)
	defer timeout.Stop()
	for {
		h.mu.Lock()
		ok, changed := cond(), h.changed
		h.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-changed:
		case <-timeout.C:
			h.mu.Lock()
			defer h.mu.Unlock()
			h.t.Fatalf("waited 10 s for %s; the loop last reported %+v", what, h.loop)
		}
	}
}

// sync returns once every slice the watcher sent before the call has been
// recorded.
func (h *harness) sync() {
	done := make(chan struct{})
	h.ping <- done
	<-done
}

// settle waits until the watcher has done all that is due by the fake
// clock's reading (its timer is due later, or stopped, and no rescan is
// waiting to start) and what it sent has been recorded. A report made
// before the clock last moved is good enough: if its timer fell due, the
// clock fired it and the loop will report again.
func (h *harness) settle() {
	h.t.Helper()
	now := h.clk.Now()
	h.until("the watcher to do what is due at "+now.Format(time.StampMicro), func() bool {
		return h.waits > 0 && !h.loop.rescan && (h.loop.next.IsZero() || h.loop.next.After(now))
	})
	h.sync()
}

// advance moves the fake clock on by d (see advanceTo).
func (h *harness) advance(d time.Duration) {
	h.t.Helper()
	h.advanceTo(h.clk.Now().Add(d))
}

// advanceTo moves the fake clock on to end, stopping, as the real clock
// would, each time the watcher's timer falls due on the way and letting it
// do what is due there.
func (h *harness) advanceTo(end time.Time) {
	h.t.Helper()
	for {
		h.settle()
		now := h.clk.Now()
		if !now.Before(end) {
			return
		}
		h.mu.Lock()
		to := h.loop.next
		h.mu.Unlock()
		if to.IsZero() || to.After(end) {
			to = end
		}
		h.clk.Advance(to.Sub(now))
	}
}

// track makes the loop's reports say whether path is pending.
func (h *harness) track(path string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.tracked[path] = true
}

// moveIn makes a file, an hour old, outside the folder and moves it in as
// name, tracked: one event, so that none of it comes after the test has
// moved the clock on.
func (h *harness) moveIn(name, data string) {
	h.t.Helper()
	src := filepath.Join(h.t.TempDir(), name)
	writeOld(h.t, src, data)
	h.track(name)
	if err := os.Rename(src, filepath.Join(h.root, name)); err != nil {
		h.t.Fatal(err)
	}
}

// waitPending waits until an event has made the tracked path pending.
func (h *harness) waitPending(path string) {
	h.t.Helper()
	h.until(path+" to be named by an event", func() bool { return h.loop.pending[path] })
}

// lose makes the watcher's event stream report lost events, as it does
// when the kernel's queue overflows, and waits until the loop noted it.
func (h *harness) lose() {
	h.t.Helper()
	h.settle()
	h.mu.Lock()
	fsw, losses := h.loop.fsw, h.loop.losses
	h.mu.Unlock()
	fsw.Errors <- fsnotify.ErrEventOverflow
	h.until("the loss to be noted", func() bool { return h.loop.losses > losses })
}

// waitObs waits until the latest observation of path satisfies cond.
func (h *harness) waitObs(path string, cond func(Observation) bool) Observation {
	h.t.Helper()
	var o Observation
	h.until("an observation of "+path, func() bool {
		var ok bool
		o, ok = h.latest[path]
		return ok && cond(o)
	})
	return o
}

// count returns how many observations of path were sent.
func (h *harness) count(path string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.countLocked(path)
}

// countLocked is count with h.mu held.
func (h *harness) countLocked(path string) int {
	n := 0
	for _, b := range h.batches {
		for _, o := range b {
			if o.Path == path {
				n++
			}
		}
	}
	return n
}

// batchWith returns the last batch holding an observation of path that
// satisfies cond.
func (h *harness) batchWith(path string, cond func(Observation) bool) []Observation {
	h.mu.Lock()
	defer h.mu.Unlock()
	for i := len(h.batches) - 1; i >= 0; i-- {
		for _, o := range h.batches[i] {
			if o.Path == path && cond(o) {
				return h.batches[i]
			}
		}
	}
	return nil
}

func (h *harness) allPaths() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, b := range h.batches {
		for _, o := range b {
			out = append(out, o.Path)
		}
	}
	return out
}

// existingPaths returns the paths ever reported as existing.
func (h *harness) existingPaths() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, b := range h.batches {
		for _, o := range b {
			if o.Exists {
				out = append(out, o.Path)
			}
		}
	}
	return out
}

func exists(o Observation) bool { return o.Exists }
func gone(o Observation) bool   { return !o.Exists }
func isDir(o Observation) bool  { return o.Exists && o.Dir }
func hashOf(s string) func(Observation) bool {
	return func(o Observation) bool {
		return o.Exists && !o.Dir && o.Hash == content.Sum([]byte(s)) && o.Size == int64(len(s))
	}
}

func indexOf(batch []Observation, path string) int {
	for i, o := range batch {
		if o.Path == path {
			return i
		}
	}
	return -1
}

func writeAt(t testing.TB, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// writeOld writes a file and backdates it, as a file that was not written
// just now.
func writeOld(t testing.TB, path, data string) {
	t.Helper()
	writeAt(t, path, data)
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(path, old, old); err != nil {
		t.Fatal(err)
	}
}

// knownFile returns what the node would have recorded for the file at path.
func knownFile(t testing.TB, path string) Known {
	t.Helper()
	st, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	h, _, err := content.File(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	return Known{Size: st.Size(), MTime: st.ModTime().UnixNano(), Inode: InodeOf(st), Mode: uint32(st.Mode().Perm()), Hash: h}
}

// scanAll runs Scan and returns the slices it sent.
func scanAll(t testing.TB, w *Watcher) ([][]Observation, error) {
	t.Helper()
	out := make(chan []Observation)
	var batches [][]Observation
	done := make(chan struct{})
	go func() {
		defer close(done)
		for b := range out {
			batches = append(batches, b)
		}
	}()
	err := w.Scan(context.Background(), out)
	close(out)
	<-done
	return batches, err
}

// scanOnce makes a watcher with opts and returns what one scan of it
// reports.
func scanOnce(t testing.TB, opts Options) [][]Observation {
	t.Helper()
	w, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	batches, err := scanAll(t, w)
	if err != nil {
		t.Fatal(err)
	}
	return batches
}

func flatten(batches [][]Observation) map[string]Observation {
	m := map[string]Observation{}
	for _, b := range batches {
		for _, o := range b {
			m[o.Path] = o
		}
	}
	return m
}

func TestNewRejectsBadRoot(t *testing.T) {
	dir := t.TempDir()
	writeAt(t, filepath.Join(dir, "f"), "x")
	for _, root := range []string{filepath.Join(dir, "missing"), filepath.Join(dir, "f")} {
		if _, err := New(Options{Root: root, Index: newIndex()}); err == nil || !strings.Contains(err.Error(), root) {
			t.Errorf("New(%s) = %v, want an error naming the path", root, err)
		}
	}
	if _, err := New(Options{Root: dir}); err == nil {
		t.Error("New without an Index succeeded")
	}
}

func TestStartupScanReportsWhatChangedWhileDown(t *testing.T) {
	root := t.TempDir()
	idx := newIndex()
	writeOld(t, filepath.Join(root, "same.txt"), "unchanged")
	idx.set("same.txt", knownFile(t, filepath.Join(root, "same.txt")))
	writeOld(t, filepath.Join(root, "changed.txt"), "old content")
	idx.set("changed.txt", knownFile(t, filepath.Join(root, "changed.txt")))
	writeOld(t, filepath.Join(root, "changed.txt"), "new content, longer")
	writeAt(t, filepath.Join(root, "new/deep/file.txt"), "new")
	writeAt(t, filepath.Join(root, ".drive-node/state.db"), "ignored")
	writeAt(t, filepath.Join(root, ".drive-node-tmp-abc"), "ignored")
	writeAt(t, filepath.Join(root, "new/.drive-node-tmp-x"), "ignored")
	idx.set("deleted.txt", Known{Size: 3, Hash: content.Sum([]byte("del"))})
	idx.set("olddir", Known{Dir: true})
	idx.set("olddir/a", Known{Size: 1, Hash: content.Sum([]byte("a"))})

	h := start(t, root, idx, nil, nil)
	o := h.waitObs("new/deep/file.txt", hashOf("new"))
	st, _ := os.Stat(filepath.Join(root, "new/deep/file.txt"))
	if o.MTime != st.ModTime().UnixNano() || o.Mode != uint32(st.Mode().Perm()) || o.Inode != InodeOf(st) {
		t.Errorf("metadata of new/deep/file.txt: %+v, stat %v %v", o, st.ModTime(), st.Mode())
	}
	h.waitObs("new", isDir)
	h.waitObs("new/deep", isDir)
	h.waitObs("changed.txt", hashOf("new content, longer"))
	h.waitObs("deleted.txt", gone)
	h.waitObs("olddir", gone)
	h.waitObs("olddir/a", gone)
	if b := h.batchWith("olddir", gone); indexOf(b, "olddir/a") > indexOf(b, "olddir") {
		t.Errorf("a vanished directory came before what was in it: %v", b)
	}
	if n := h.count("same.txt"); n != 0 {
		t.Errorf("unchanged file reported %d times", n)
	}
	for _, p := range h.allPaths() {
		if strings.Contains(p, ".drive-node") {
			t.Errorf("ignored path %s reported", p)
		}
	}
}

// TestScanComparesEachDirectory: a scan compares each directory's listing
// with what is recorded in it. Records under a directory that has none of
// its own are gone when it is, and stay when it is there; a file where a
// directory was recorded takes what was in it along.
func TestScanComparesEachDirectory(t *testing.T) {
	root := t.TempDir()
	idx := newIndex()
	writeOld(t, filepath.Join(root, "kept/a"), "a")
	idx.set("kept/a", knownFile(t, filepath.Join(root, "kept/a")))
	idx.set("kept/b", Known{Size: 1, Hash: content.Sum([]byte("b"))})
	idx.set("unrecorded/x", Known{Size: 1, Hash: content.Sum([]byte("x"))})
	idx.set("unrecorded/y/z", Known{Size: 1, Hash: content.Sum([]byte("z"))})
	writeOld(t, filepath.Join(root, "was-a-dir"), "now a file")
	idx.set("was-a-dir", Known{Dir: true})
	idx.set("was-a-dir/inside", Known{Size: 1, Hash: content.Sum([]byte("i"))})
	got := flatten(scanOnce(t, Options{Root: root, Index: idx}))
	for _, p := range []string{"kept/b", "unrecorded/x", "unrecorded/y/z", "was-a-dir/inside"} {
		if o, ok := got[p]; !ok || o.Exists {
			t.Errorf("%s: %+v, want it reported gone", p, o)
		}
	}
	if o, ok := got["was-a-dir"]; !ok || !o.Exists || o.Dir {
		t.Errorf("was-a-dir: %+v, want it reported as a file", o)
	}
	if o, ok := got["kept"]; !ok || !o.Dir {
		t.Errorf("kept, a directory with no record: %+v, want it reported", o)
	}
	for _, p := range []string{"kept/a", "unrecorded"} {
		if o, ok := got[p]; ok {
			t.Errorf("%s reported: %+v", p, o)
		}
	}
}

func TestCreateModifyRenameDelete(t *testing.T) {
	root := t.TempDir()
	h := start(t, root, newIndex(), nil, nil)

	writeAt(t, filepath.Join(root, "a.txt"), "one")
	h.waitObs("a.txt", hashOf("one"))
	writeAt(t, filepath.Join(root, "a.txt"), "two!")
	h.waitObs("a.txt", hashOf("two!"))

	// A rename: the old path gone and the new one with the content, in one
	// batch, the vanished path right after the file it became.
	if err := os.Rename(filepath.Join(root, "a.txt"), filepath.Join(root, "b.txt")); err != nil {
		t.Fatal(err)
	}
	h.waitObs("a.txt", gone)
	h.waitObs("b.txt", hashOf("two!"))
	b := h.batchWith("b.txt", exists)
	if i, j := indexOf(b, "b.txt"), indexOf(b, "a.txt"); j != i+1 {
		t.Errorf("rename not reported as an adjacent pair in one batch: %+v", b)
	}

	if err := os.Remove(filepath.Join(root, "b.txt")); err != nil {
		t.Fatal(err)
	}
	h.waitObs("b.txt", gone)
	if _, ok := h.idx.Lookup("b.txt"); ok {
		t.Error("b.txt still recorded")
	}
}

func TestNestedDirectoriesCreatedAtOnce(t *testing.T) {
	root := t.TempDir()
	h := start(t, root, newIndex(), nil, nil)

	// mkdir -p a/b/c && echo x > a/b/c/f: filled before any watch on them.
	if err := os.MkdirAll(filepath.Join(root, "a/b/c"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeAt(t, filepath.Join(root, "a/b/c/f"), "x")
	h.waitObs("a/b/c/f", hashOf("x"))
	for _, d := range []string{"a", "a/b", "a/b/c"} {
		h.waitObs(d, isDir)
	}
	// The new directories are watched now.
	writeAt(t, filepath.Join(root, "a/b/c/later"), "later")
	h.waitObs("a/b/c/later", hashOf("later"))
	writeAt(t, filepath.Join(root, "a/b/side"), "side")
	h.waitObs("a/b/side", hashOf("side"))
}

func TestDirectoryMovedOutTakesItsContents(t *testing.T) {
	root := t.TempDir()
	h := start(t, root, newIndex(), nil, nil)
	writeAt(t, filepath.Join(root, "x/y/deep.txt"), "deep")
	writeAt(t, filepath.Join(root, "x/top.txt"), "top")
	h.waitObs("x/y/deep.txt", hashOf("deep"))
	h.waitObs("x/top.txt", hashOf("top"))

	// One event for the whole tree on Linux.
	if err := os.Rename(filepath.Join(root, "x"), filepath.Join(t.TempDir(), "moved-away")); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"x", "x/y", "x/y/deep.txt", "x/top.txt"} {
		h.waitObs(p, gone)
	}
	b := h.batchWith("x", gone)
	for _, p := range []string{"x/y", "x/y/deep.txt", "x/top.txt"} {
		if i := indexOf(b, p); i < 0 || i > indexOf(b, "x") {
			t.Errorf("%s not reported before x in its batch: %+v", p, b)
		}
	}
	if i, j := indexOf(b, "x/y/deep.txt"), indexOf(b, "x/y"); i > j {
		t.Errorf("x/y/deep.txt after x/y: %+v", b)
	}
}

func TestDirectoryRenamedInsideIsWatchedUnderItsNewName(t *testing.T) {
	root := t.TempDir()
	h := start(t, root, newIndex(), nil, nil)
	writeAt(t, filepath.Join(root, "a/sub/f"), "f")
	h.waitObs("a/sub/f", hashOf("f"))

	if err := os.Rename(filepath.Join(root, "a"), filepath.Join(root, "b")); err != nil {
		t.Fatal(err)
	}
	h.waitObs("a/sub/f", gone)
	h.waitObs("a", gone)
	h.waitObs("b/sub/f", hashOf("f"))
	h.waitObs("b/sub", isDir)
	// Events inside the moved directory carry its new name.
	writeAt(t, filepath.Join(root, "b/sub/new"), "new")
	h.waitObs("b/sub/new", hashOf("new"))
	if n := h.count("a/sub/new"); n != 0 {
		t.Errorf("a file in the moved directory was reported under its old name")
	}
}

func TestDirectoryReplacedIsWatchedAgain(t *testing.T) {
	root := t.TempDir()
	h := start(t, root, newIndex(), nil, nil)
	d := filepath.Join(root, "d")
	if err := os.Mkdir(d, 0o755); err != nil {
		t.Fatal(err)
	}
	h.waitObs("d", isDir)
	// Replaced within one settle period.
	if err := os.Remove(d); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(d, 0o755); err != nil {
		t.Fatal(err)
	}
	writeAt(t, filepath.Join(d, "f1"), "1")
	h.waitObs("d/f1", hashOf("1"))
	writeAt(t, filepath.Join(d, "f2"), "2")
	h.waitObs("d/f2", hashOf("2"))
}

func TestIgnoredPathsNeverAppear(t *testing.T) {
	root := t.TempDir()
	writeAt(t, filepath.Join(root, ".drive-node/state.db"), "db")
	writeAt(t, filepath.Join(root, "skipme/inside"), "custom ignore")
	idx := newIndex()
	idx.set("skipme/recorded", Known{Size: 1}) // not on disk, but ignored
	h := start(t, root, idx, func(o *Options) {
		o.Ignore = func(p string, dir bool) bool {
			return defaultIgnore(p, dir) || p == "skipme" || strings.HasPrefix(p, "skipme/")
		}
	}, nil)
	writeAt(t, filepath.Join(root, ".drive-node/state.db"), "db changed")
	writeAt(t, filepath.Join(root, ".drive-node/new"), "x")
	writeAt(t, filepath.Join(root, "skipme/more"), "x")
	// A download staged under a temporary name and moved into place.
	tmp := filepath.Join(root, "sub/.drive-node-tmp-42")
	writeOld(t, tmp, "downloaded")
	if err := os.Rename(tmp, filepath.Join(root, "sub/final.txt")); err != nil {
		t.Fatal(err)
	}
	h.waitObs("sub/final.txt", hashOf("downloaded"))
	writeAt(t, filepath.Join(root, "marker"), "m")
	h.waitObs("marker", exists)
	for _, p := range h.allPaths() {
		if strings.Contains(p, ".drive-node") || strings.HasPrefix(p, "skipme") {
			t.Errorf("ignored path %s reported", p)
		}
	}
}

func TestRescanPicksUpWhatEventsMissed(t *testing.T) {
	root := t.TempDir()
	h := start(t, root, newIndex(), nil, nil)
	writeAt(t, filepath.Join(root, "f"), "data")
	h.waitObs("f", hashOf("data"))
	// The node lost its record (say a failed commit): no event will come.
	h.idx.forget("f")
	n := h.count("f")
	h.w.Rescan()
	h.until("Rescan to report the unrecorded file", func() bool { return h.countLocked("f") > n })
	h.waitObs("f", hashOf("data"))
}

func TestScanAloneReportsUnknownFiles(t *testing.T) {
	root := t.TempDir()
	writeAt(t, filepath.Join(root, "d/f.txt"), "scan me")
	w, err := New(Options{Root: root, Index: newIndex(), Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	batches, err := scanAll(t, w)
	if err != nil {
		t.Fatal(err)
	}
	got := flatten(batches)
	if !got["d"].Dir || !hashOf("scan me")(got["d/f.txt"]) || len(got) != 2 {
		t.Fatalf("scan: %+v", got)
	}
}

// TestScanSendsAsItGoes: a scan of more than scanFlush new files sends its
// first slices before it has looked at every file, so that what it holds
// does not grow with the folder.
func TestScanSendsAsItGoes(t *testing.T) {
	root := t.TempDir()
	const dirs, per = 4, scanFlush/2 + 1
	for d := range dirs {
		for i := range per {
			writeOld(t, filepath.Join(root, fmt.Sprintf("d%d/f%05d", d, i)), "x")
		}
	}
	var looked atomic.Int64
	w, err := New(Options{Root: root, Index: newIndex(), Logger: quietLogger(), Looked: func() { looked.Add(1) }})
	if err != nil {
		t.Fatal(err)
	}
	out := make(chan []Observation) // unbuffered: the walk waits while a slice is read
	done := make(chan error, 1)
	go func() { done <- w.Scan(context.Background(), out); close(out) }()
	first := <-out
	if n := looked.Load(); n >= dirs*per {
		t.Errorf("the first slice (%d observations) came after all %d files were looked at", len(first), n)
	}
	total := len(first)
	for b := range out {
		total += len(b)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if want := dirs*per + dirs; total != want {
		t.Errorf("%d observations, want %d", total, want)
	}
}

// TestMovedInLibrarySentAsItGoes: a directory moved into the folder with
// more than scanFlush files in it is walked when its event is looked at;
// what the walk finds is sent as it goes, not held until the walk ends.
func TestMovedInLibrarySentAsItGoes(t *testing.T) {
	root, stage := t.TempDir(), t.TempDir()
	const dirs, per = 4, scanFlush/2 + 1
	for d := range dirs {
		for i := range per {
			writeOld(t, filepath.Join(stage, "lib", fmt.Sprintf("d%d/f%05d", d, i)), "x")
		}
	}
	var looked atomic.Int64
	w, err := New(Options{Root: root, Index: newIndex(), Logger: quietLogger(), Looked: func() { looked.Add(1) }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := make(chan []Observation) // unbuffered: the walk waits while a slice is read
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx, out) }()
	<-w.Scanned()
	if err := os.Rename(filepath.Join(stage, "lib"), filepath.Join(root, "lib")); err != nil {
		t.Fatal(err)
	}
	first := <-out
	if n := looked.Load(); n >= dirs*per {
		t.Errorf("the first slice (%d observations) came after all %d files were looked at", len(first), n)
	}
	total := len(first)
	for total < dirs*per+dirs+1 {
		select {
		case b := <-out:
			total += len(b)
		case err := <-done:
			t.Fatalf("watcher ended: %v", err)
		}
	}
	if want := dirs*per + dirs + 1; total != want {
		t.Errorf("%d observations, want %d", total, want)
	}
}

func TestScanSlicesAndOrder(t *testing.T) {
	root := t.TempDir()
	idx := newIndex()
	for i := 0; i < 2500; i++ {
		writeOld(t, filepath.Join(root, fmt.Sprintf("new/%02d/f%04d", i%10, i)), fmt.Sprint(i))
	}
	writeOld(t, filepath.Join(root, "moved/here.txt"), "moved content")
	idx.set("old", Known{Dir: true})
	idx.set("old/sub", Known{Dir: true})
	idx.set("old/sub/x", Known{Size: 1, Hash: content.Sum([]byte("x"))})
	idx.set("old/there.txt", Known{Size: 13, Hash: content.Sum([]byte("moved content"))})
	batches := scanOnce(t, Options{Root: root, Index: idx, Logger: quietLogger()})
	seen := map[string]bool{}
	var order []string
	for _, b := range batches {
		if len(b) == 0 || len(b) > 1000 {
			t.Fatalf("slice of %d observations", len(b))
		}
		for _, o := range b {
			if seen[o.Path] {
				t.Fatalf("%s reported twice", o.Path)
			}
			seen[o.Path] = true
			order = append(order, o.Path)
		}
		if i := indexOf(b, "moved/here.txt"); i >= 0 && (i+1 >= len(b) || b[i+1].Path != "old/there.txt") {
			t.Errorf("moved file not followed by where it came from in its slice")
		}
	}
	if len(order) != 2500+10+1+2+4 {
		t.Errorf("%d observations", len(order))
	}
	pos := map[string]int{}
	for i, p := range order {
		pos[p] = i
	}
	if !(pos["new"] < pos["new/03"] && pos["new/03"] < pos["new/03/f0003"]) {
		t.Error("directories not before their contents")
	}
	if !(pos["old/sub/x"] < pos["old/sub"] && pos["old/sub"] < pos["old"]) {
		t.Error("vanished directories not after their contents")
	}
}

func TestSendDoesNotSplitARename(t *testing.T) {
	idx := newIndex()
	idx.set("old", Known{Size: 1, Hash: content.Sum([]byte("z"))})
	w, err := New(Options{Root: t.TempDir(), Index: idx, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	var present []Observation
	for i := 0; i < scanBatch-1; i++ {
		present = append(present, Observation{Path: fmt.Sprintf("d%04d", i), Exists: true, Dir: true})
	}
	present = append(present, Observation{Path: "zz", Exists: true, Size: 1, Hash: content.Sum([]byte("z"))})
	out := make(chan []Observation, 4)
	if err := w.send(context.Background(), out, present, []Observation{{Path: "old"}}); err != nil {
		t.Fatal(err)
	}
	close(out)
	var sizes []int
	var last []Observation
	for b := range out {
		sizes = append(sizes, len(b))
		last = b
	}
	if len(sizes) != 2 || sizes[0] != scanBatch-1 || len(last) != 2 || last[0].Path != "zz" || last[1].Path != "old" {
		t.Fatalf("slices %v, last %+v", sizes, last)
	}
}

func TestUnreadableDirectoryKeepsWhatIsRecorded(t *testing.T) {
	root := t.TempDir()
	writeAt(t, filepath.Join(root, "locked/f"), "f")
	writeAt(t, filepath.Join(root, "open/g"), "g")
	idx := newIndex()
	idx.set("locked", Known{Dir: true})
	idx.set("locked/f", Known{Size: 1, Hash: content.Sum([]byte("f"))})
	idx.set("locked/gone-for-real", Known{Size: 1})
	var logs syncBuffer
	w, err := New(Options{Root: root, Index: idx, Logger: textLogger(&logs)})
	if err != nil {
		t.Fatal(err)
	}
	w.readDir = func(dir *os.Root) ([]fs.DirEntry, error) {
		if filepath.Base(dir.Name()) == "locked" {
			return nil, &fs.PathError{Op: "open", Path: dir.Name(), Err: fs.ErrPermission}
		}
		return listDir(dir)
	}
	batches, err := scanAll(t, w)
	if err != nil {
		t.Fatal(err)
	}
	got := flatten(batches)
	for p := range got {
		if strings.HasPrefix(p, "locked") {
			t.Errorf("%s reported from an unreadable directory: %+v", p, got[p])
		}
	}
	if !hashOf("g")(got["open/g"]) {
		t.Errorf("the readable directory was not scanned: %+v", got)
	}
	if !strings.Contains(logs.String(), "locked") {
		t.Errorf("the unreadable directory was not logged by path: %s", logs.String())
	}
}

func TestSymlinksAndSpecialFilesAreNotSynced(t *testing.T) {
	root := t.TempDir()
	outside := t.TempDir()
	writeAt(t, filepath.Join(outside, "secret"), "outside")
	writeAt(t, filepath.Join(root, "real"), "real")
	if err := os.Symlink(outside, filepath.Join(root, "dirlink")); err != nil {
		t.Skip("symlinks unavailable:", err)
	}
	if err := os.Symlink("real", filepath.Join(root, "filelink")); err != nil {
		t.Fatal(err)
	}
	// A recorded file that has become a symlink is gone for syncing.
	if err := os.Symlink("real", filepath.Join(root, "was-file")); err != nil {
		t.Fatal(err)
	}
	idx := newIndex()
	idx.set("was-file", Known{Size: 4})
	fifo := mkfifo(filepath.Join(root, "fifo")) == nil

	h := start(t, root, idx, nil, nil)
	h.waitObs("real", hashOf("real"))
	h.waitObs("was-file", gone)
	if err := os.Symlink(outside, filepath.Join(root, "later-link")); err != nil {
		t.Fatal(err)
	}
	writeAt(t, filepath.Join(root, "marker"), "m")
	h.waitObs("marker", exists)
	// A vanished path may be reported for a path never recorded; what
	// matters is that none of these is ever reported as existing.
	for _, p := range h.existingPaths() {
		switch {
		case strings.Contains(p, "link"), strings.Contains(p, "secret"):
			t.Errorf("symlink %s reported", p)
		case fifo && p == "fifo":
			t.Errorf("fifo reported")
		}
	}
}

func TestModeChangeIsReportedWithoutHashing(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no permission bits")
	}
	root := t.TempDir()
	p := filepath.Join(root, "script")
	writeOld(t, p, "#!/bin/sh\n")
	idx := newIndex()
	idx.set("script", knownFile(t, p))
	hashed := make(chan string, 10)
	h := start(t, root, idx, nil, func(w *Watcher) {
		w.onHash = func(rel string, _ fs.FileInfo) { hashed <- rel }
	})
	if err := os.Chmod(p, 0o755); err != nil {
		t.Fatal(err)
	}
	o := h.waitObs("script", func(o Observation) bool { return o.Exists && o.Mode == 0o755 })
	if o.Hash != content.Sum([]byte("#!/bin/sh\n")) {
		t.Errorf("hash %v", o.Hash)
	}
	select {
	case rel := <-hashed:
		t.Errorf("%s was hashed for a permission change", rel)
	default:
	}
}

func TestVanishedFolderIsAnErrorNotADeletion(t *testing.T) {
	parent := t.TempDir()
	root := filepath.Join(parent, "folder")
	writeAt(t, filepath.Join(root, "f"), "f")
	idx := newIndex()
	idx.set("f", knownFile(t, filepath.Join(root, "f")))
	w, err := New(Options{Root: root, Index: idx, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	// Replaced by an empty directory (as an unmounted mount point looks).
	if err := os.Rename(root, filepath.Join(parent, "elsewhere")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	batches, err := scanAll(t, w)
	if err == nil || len(batches) != 0 {
		t.Fatalf("scan of a replaced folder: err %v, sent %v", err, batches)
	}
}

func TestRunEndsWhenTheFolderGoes(t *testing.T) {
	parent := t.TempDir()
	root := filepath.Join(parent, "folder")
	writeAt(t, filepath.Join(root, "f"), "f")
	h := start(t, root, newIndex(), nil, nil)
	h.waitObs("f", exists)
	if err := os.Rename(root, filepath.Join(parent, "elsewhere")); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-h.runErr:
		if err == nil || errors.Is(err, context.Canceled) {
			t.Fatalf("Run returned %v", err)
		}
		h.runErr <- err // for the cleanup
	case <-time.After(5 * time.Second):
		t.Fatal("Run went on after its folder was moved away")
	}
	if n := h.count("f"); n != 1 {
		t.Errorf("f reported %d times; the folder going is not a deletion", n)
	}
}

// BenchmarkScan measures a rescan of 10,000 small files the Index already
// knows: no hashing, only listing, stats and lookups.
func BenchmarkScan(b *testing.B) {
	root := b.TempDir()
	const files = 10000
	for i := 0; i < files; i++ {
		writeOld(b, filepath.Join(root, fmt.Sprintf("d%02d/f%05d", i%100, i)), "x")
	}
	idx := newIndex()
	w, err := New(Options{Root: root, Index: idx, Logger: quietLogger()})
	if err != nil {
		b.Fatal(err)
	}
	batches, err := scanAll(b, w)
	if err != nil {
		b.Fatal(err)
	}
	for _, batch := range batches {
		idx.record(batch)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		batches, err := scanAll(b, w)
		if err != nil {
			b.Fatal(err)
		}
		if len(batches) > 0 {
			b.Fatalf("unchanged scan reported %d slices", len(batches))
		}
	}
	b.ReportMetric(float64(files*b.N)/b.Elapsed().Seconds(), "files/s")
}

// TestPendingPathUnderASymlinkedParent looks at a pending path (named by an
// event, or due for another look) after its parent directory "a" was
// replaced by a symlink (mv a a.old; ln -s target a). A symlink is never
// followed, in the last path element or in a parent: the path is gone,
// nothing behind the link is reported, and nothing behind it is watched.
func TestPendingPathUnderASymlinkedParent(t *testing.T) {
	cases := []struct {
		name    string
		pending string
		inside  bool // the link leads into the folder, to "b", not out of it
		gone    []string
	}{
		{"file, link out of the folder", "a/x", false, []string{"a/x"}},
		{"directory, link out of the folder", "a/d", false, []string{"a/d", "a/d/y"}},
		{"file two levels down, link out of the folder", "a/d/y", false, []string{"a/d/y"}},
		{"file, link into the folder", "a/x", true, []string{"a/x"}},
		{"directory, link into the folder", "a/d", true, []string{"a/d", "a/d/y"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			root, outside := t.TempDir(), t.TempDir()
			idx := newIndex()
			for _, p := range []string{"a/x", "a/d/y"} {
				writeOld(t, filepath.Join(root, p), "in the folder: "+p)
				idx.set(p, knownFile(t, filepath.Join(root, p)))
			}
			idx.set("a", Known{Dir: true})
			idx.set("a/d", Known{Dir: true})
			// What the link leads to: other content at the same names.
			target, behind := outside, outside
			if c.inside {
				target, behind = "b", filepath.Join(root, "b")
			}
			for _, p := range []string{"x", "d/y", "d/sub/z"} {
				writeOld(t, filepath.Join(behind, p), "behind the link: "+p)
			}
			if err := os.Rename(filepath.Join(root, "a"), filepath.Join(root, "a.old")); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(target, filepath.Join(root, "a")); err != nil {
				t.Skip("symlinks unavailable:", err)
			}

			w, err := New(Options{Root: root, Index: idx, Logger: quietLogger()})
			if err != nil {
				t.Fatal(err)
			}
			fsw, err := fsnotify.NewWatcher()
			if err != nil {
				t.Fatal(err)
			}
			defer fsw.Close()
			r, err := w.lookPaths(context.Background(), []string{c.pending}, nil, newWatchSet(w, fsw), nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(r.present) != 0 || len(r.unstable) != 0 {
				t.Errorf("reported what is behind the link: present %+v, to look at again %v", r.present, r.unstable)
			}
			var got []string
			for _, o := range r.gone {
				got = append(got, o.Path)
			}
			sort.Strings(got)
			if strings.Join(got, " ") != strings.Join(c.gone, " ") {
				t.Errorf("gone %v, want %v", got, c.gone)
			}
			if l := fsw.WatchList(); len(l) != 0 {
				t.Errorf("watched through the link: %v", l)
			}
		})
	}
}

// TestDirectorySwappedForASymlinkDuringAScan replaces the directory "a" by
// a symlink out of the folder after the folder was listed and before "a"
// is walked: "a" and what was recorded under it are gone, and nothing
// behind the link is reported.
func TestDirectorySwappedForASymlinkDuringAScan(t *testing.T) {
	root, outside := t.TempDir(), t.TempDir()
	idx := newIndex()
	for _, p := range []string{"a/x", "a/d/y"} {
		writeOld(t, filepath.Join(root, p), "in the folder: "+p)
		idx.set(p, knownFile(t, filepath.Join(root, p)))
		writeOld(t, filepath.Join(outside, strings.TrimPrefix(p, "a/")), "outside: "+p)
	}
	idx.set("a", Known{Dir: true})
	idx.set("a/d", Known{Dir: true})
	if err := os.Symlink(outside, filepath.Join(root, "a.link")); err != nil {
		t.Skip("symlinks unavailable:", err)
	}
	w, err := New(Options{Root: root, Index: idx, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	swapped := false
	w.readDir = func(dir *os.Root) ([]fs.DirEntry, error) {
		entries, err := listDir(dir)
		if !swapped && dir.Name() == root {
			swapped = true
			if err := os.Rename(filepath.Join(root, "a"), filepath.Join(root, "a.old")); err != nil {
				t.Error(err)
			}
			if err := os.Rename(filepath.Join(root, "a.link"), filepath.Join(root, "a")); err != nil {
				t.Error(err)
			}
		}
		return entries, err
	}
	batches, err := scanAll(t, w)
	if err != nil {
		t.Fatal(err)
	}
	got := flatten(batches)
	for _, p := range []string{"a", "a/x", "a/d", "a/d/y"} {
		if o, ok := got[p]; !ok || o.Exists {
			t.Errorf("%s: %+v, want it gone", p, o)
		}
	}
	if len(got) != 4 {
		t.Errorf("scan: %+v", got)
	}
}
