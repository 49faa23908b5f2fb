package watcher

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drive-node/drive-node/content"
)

// memIndex is an Index that records whatever the test tells it.
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

// record makes the index reflect observations, as the node does.
func (x *memIndex) record(obs []Observation) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, o := range obs {
		if !o.Exists {
			delete(x.m, o.Path)
			continue
		}
		x.m[o.Path] = Known{Dir: o.Dir, Size: o.Size, MTime: o.MTime, Inode: o.Inode, Hash: o.Hash}
	}
}

type harness struct {
	t      *testing.T
	root   string
	idx    *memIndex
	w      *Watcher
	out    chan []Observation
	cancel context.CancelFunc
	mu     sync.Mutex
	latest map[string]Observation // last observation per path
	all    []Observation
}

func start(t *testing.T, root string, idx *memIndex) *harness {
	t.Helper()
	w, err := New(Options{Root: root, Index: idx, RescanInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := &harness{t: t, root: root, idx: idx, w: w, out: make(chan []Observation), cancel: cancel, latest: map[string]Observation{}}
	done := make(chan struct{})
	go func() { defer close(done); w.Run(ctx, h.out) }()
	go func() {
		for batch := range h.out {
			idx.record(batch)
			h.mu.Lock()
			for _, o := range batch {
				h.latest[o.Path] = o
				h.all = append(h.all, o)
			}
			h.mu.Unlock()
		}
	}()
	t.Cleanup(func() { cancel(); <-done; close(h.out) })
	select {
	case <-w.Scanned():
	case <-time.After(10 * time.Second):
		t.Fatal("first scan did not finish")
	}
	return h
}

// waitObs waits until the last observation of path satisfies cond.
func (h *harness) waitObs(path string, cond func(Observation) bool) Observation {
	h.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		h.mu.Lock()
		o, ok := h.latest[path]
		h.mu.Unlock()
		if ok && cond(o) {
			return o
		}
		time.Sleep(10 * time.Millisecond)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.t.Fatalf("no matching observation of %s; last: %+v", path, h.latest[path])
	return Observation{}
}

func (h *harness) count(path string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, o := range h.all {
		if o.Path == path {
			n++
		}
	}
	return n
}

func exists(o Observation) bool { return o.Exists }
func gone(o Observation) bool   { return !o.Exists }
func hashOf(s string) func(Observation) bool {
	return func(o Observation) bool { return o.Exists && o.Hash == content.Sum([]byte(s)) }
}

func writeAt(t *testing.T, path, data string) {
	t.Helper()
	os.MkdirAll(filepath.Dir(path), 0o755)
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestNewRejectsBadRoot(t *testing.T) {
	dir := t.TempDir()
	writeAt(t, filepath.Join(dir, "f"), "x")
	for _, root := range []string{filepath.Join(dir, "missing"), filepath.Join(dir, "f")} {
		if _, err := New(Options{Root: root, Index: newIndex()}); err == nil || !strings.Contains(err.Error(), root) {
			t.Errorf("New(%s) = %v, want an error naming the path", root, err)
		}
	}
}

func TestStartupScanFindsWhatChangedWhileDown(t *testing.T) {
	root := t.TempDir()
	writeAt(t, filepath.Join(root, "same.txt"), "unchanged")
	writeAt(t, filepath.Join(root, "new/deep/file.txt"), "new")
	writeAt(t, filepath.Join(root, ".drive-node/state.db"), "ignored")
	writeAt(t, filepath.Join(root, ".drive-node-tmp-abc"), "ignored")
	old := time.Now().Add(-time.Hour)
	os.Chtimes(filepath.Join(root, "same.txt"), old, old)
	st, _ := os.Stat(filepath.Join(root, "same.txt"))
	idx := newIndex()
	idx.m["same.txt"] = Known{Size: st.Size(), MTime: st.ModTime().UnixNano(), Inode: InodeOf(st), Hash: content.Sum([]byte("unchanged"))}
	idx.m["deleted-while-down.txt"] = Known{Size: 3}
	h := start(t, root, idx)
	h.waitObs("new/deep/file.txt", hashOf("new"))
	h.waitObs("new", func(o Observation) bool { return o.Exists && o.Dir })
	h.waitObs("new/deep", func(o Observation) bool { return o.Exists && o.Dir })
	h.waitObs("deleted-while-down.txt", gone)
	if n := h.count("same.txt"); n != 0 {
		t.Fatalf("unchanged file reported %d times", n)
	}
	for _, p := range []string{".drive-node", ".drive-node/state.db", ".drive-node-tmp-abc"} {
		if h.count(p) != 0 {
			t.Fatalf("ignored path %s reported", p)
		}
	}
}

func TestEventsAfterStart(t *testing.T) {
	root := t.TempDir()
	h := start(t, root, newIndex())

	writeAt(t, filepath.Join(root, "a.txt"), "one")
	h.waitObs("a.txt", hashOf("one"))
	writeAt(t, filepath.Join(root, "a.txt"), "two")
	h.waitObs("a.txt", hashOf("two"))

	// A directory tree made at once, filled before its watch can exist.
	writeAt(t, filepath.Join(root, "x/y/z/deep.txt"), "deep")
	h.waitObs("x/y/z/deep.txt", hashOf("deep"))
	for _, d := range []string{"x", "x/y", "x/y/z"} {
		h.waitObs(d, func(o Observation) bool { return o.Exists && o.Dir })
	}
	// Files created in the new directory later are seen too (it is watched).
	writeAt(t, filepath.Join(root, "x/y/z/later.txt"), "later")
	h.waitObs("x/y/z/later.txt", hashOf("later"))

	// A rename shows the old path gone and the new one with the content.
	os.Rename(filepath.Join(root, "a.txt"), filepath.Join(root, "b.txt"))
	h.waitObs("a.txt", gone)
	h.waitObs("b.txt", hashOf("two"))

	// A directory moved out of the folder takes everything under it.
	outside := filepath.Join(t.TempDir(), "moved-away")
	if err := os.Rename(filepath.Join(root, "x"), outside); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"x", "x/y", "x/y/z", "x/y/z/deep.txt", "x/y/z/later.txt"} {
		h.waitObs(p, gone)
	}
	os.Remove(filepath.Join(root, "b.txt"))
	h.waitObs("b.txt", gone)
	writeAt(t, filepath.Join(root, "tmp/.drive-node-tmp-w-1"), "ignored")
	writeAt(t, filepath.Join(root, "marker"), "m")
	h.waitObs("marker", exists)
	if h.count("tmp/.drive-node-tmp-w-1") != 0 {
		t.Fatal("temp file reported")
	}
}

func TestBurstOfWritesIsCoalescedAndHashedWhenStable(t *testing.T) {
	root := t.TempDir()
	h := start(t, root, newIndex())
	p := filepath.Join(root, "growing.log")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	var all strings.Builder
	for i := 0; i < 50; i++ {
		line := fmt.Sprintf("line %d\n", i)
		all.WriteString(line)
		f.WriteString(line)
		time.Sleep(2 * time.Millisecond)
	}
	f.Close()
	h.waitObs("growing.log", hashOf(all.String()))
	if n := h.count("growing.log"); n > 5 {
		t.Fatalf("a burst of 50 writes produced %d observations", n)
	}
	// Every reported hash matched the size reported with it.
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, o := range h.all {
		if o.Path == "growing.log" && o.Size != int64(len(all.String())) {
			t.Fatalf("a partial state was hashed: size %d of %d", o.Size, len(all.String()))
		}
	}
}

func TestScanAloneReportsUnknownFiles(t *testing.T) {
	root := t.TempDir()
	writeAt(t, filepath.Join(root, "d/f.txt"), "scan me")
	old := time.Now().Add(-time.Minute)
	os.Chtimes(filepath.Join(root, "d/f.txt"), old, old)
	w, err := New(Options{Root: root, Index: newIndex()})
	if err != nil {
		t.Fatal(err)
	}
	out := make(chan []Observation, 10)
	if err := w.Scan(context.Background(), out); err != nil {
		t.Fatal(err)
	}
	close(out)
	got := map[string]Observation{}
	for b := range out {
		for _, o := range b {
			got[o.Path] = o
		}
	}
	if !got["d"].Dir || got["d/f.txt"].Hash != content.Sum([]byte("scan me")) || len(got) != 2 {
		t.Fatalf("scan: %+v", got)
	}
}

// BenchmarkScanUnchanged measures a rescan of 10,000 files the index
// already knows: no hashing, only stats.
func BenchmarkScanUnchanged(b *testing.B) {
	root := b.TempDir()
	idx := newIndex()
	for i := 0; i < 10000; i++ {
		p := filepath.Join(root, fmt.Sprintf("d%02d/f%05d", i%100, i))
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte("x"), 0o644)
	}
	w, _ := New(Options{Root: root, Index: idx})
	out := make(chan []Observation, 100)
	w.Scan(context.Background(), out)
	close(out)
	for batch := range out {
		idx.record(batch)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		out := make(chan []Observation, 100)
		if err := w.Scan(context.Background(), out); err != nil {
			b.Fatal(err)
		}
		close(out)
		for batch := range out {
			if len(batch) > 0 {
				b.Fatalf("unchanged scan reported %d paths", len(batch))
			}
		}
	}
	b.ReportMetric(float64(10000*b.N)/b.Elapsed().Seconds(), "files/s")
}
