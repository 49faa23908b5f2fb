package watcher

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drive-node/drive-node/internal/clock"
)

// The tests in this file run on the machine's own file system, which tells
// names apart by case and keeps modes and nanosecond times: what another
// file system would show is made up, by the Index or by the readDir seam.
// exfat_linux_test.go runs the same options on a real exFAT disk.

// TestListingNames checks names that did not come from a listing against
// one, as Options.ExactNames does: a name is there only byte for byte, and
// the listed names that differ from it only in case or Unicode form are
// what a file system blind to those may take it for.
func TestListingNames(t *testing.T) {
	const nfc, nfd = "caf\u00e9", "cafe\u0301"
	listed := []string{"Docs", "a.txt", nfc, "README", "readme", "notes "}
	cases := []struct {
		name    string
		has     bool
		aliases []string
	}{
		{"Docs", true, nil},
		{"docs", false, []string{"Docs"}},
		{"DOCS", false, []string{"Docs"}},
		{"a.txt", true, nil},
		{"A.TXT", false, []string{"a.txt"}},
		{nfc, true, nil},
		{nfd, false, []string{nfc}},
		{strings.ToUpper(nfd), false, []string{nfc}},
		{"README", true, []string{"readme"}},
		{"ReadMe", false, []string{"README", "readme"}},
		{"notes", false, nil},
		{"notes ", true, nil},
		{"Docs/", false, nil},
		{"b.txt", false, nil},
	}
	l := listingOf(listed)
	for _, c := range cases {
		if got := l.has(c.name); got != c.has {
			t.Errorf("has(%q) = %v, want %v", c.name, got, c.has)
		}
		if got := l.aliases(c.name); !slices.Equal(got, c.aliases) {
			t.Errorf("aliases(%q) = %q, want %q", c.name, got, c.aliases)
		}
	}
	if l := newListing(nil, fs.ErrPermission); l.has("Docs") || l.err == nil {
		t.Errorf("a failed listing: %+v", l)
	}
}

// TestExactNamesOnEventPaths looks at paths named by events, as lookPaths
// does once they settle, on this disk made to look case-insensitive: a
// path that such a disk would find under another spelling exists here too
// (a hard link for a file, a copy for a directory), and the readDir seam
// leaves it out of listings, as that disk would list only the other
// spelling. Without ExactNames, what Lstat finds exists; with it, a path
// exists only under its listed name, and the listed name an event's name
// stands for is looked at.
func TestExactNamesOnEventPaths(t *testing.T) {
	cases := []struct {
		name           string
		disk           map[string]string // files written after the Index was filled
		link           [2]string         // a hard link made after that, if any
		hidden         string            // the path on disk that listings leave out
		paths          []string          // named by events
		gone, present  []string          // with ExactNames
		goneWithout    []string
		presentWithout []string
	}{
		{
			name:           "mv Docs docs",
			disk:           map[string]string{"docs/a.txt": "recorded"},
			hidden:         "Docs",
			paths:          []string{"Docs", "docs"},
			gone:           []string{"Docs", "Docs/a.txt"},
			present:        []string{"docs", "docs/a.txt"},
			presentWithout: []string{"docs", "docs/a.txt"},
		},
		{
			name:   "mv Docs docs, then an event below the old name",
			disk:   map[string]string{"docs/a.txt": "recorded"},
			hidden: "Docs",
			paths:  []string{"Docs/a.txt"},
			gone:   []string{"Docs/a.txt"},
		},
		{
			// The writer spelt the name A.TXT, and the event names it so.
			name:           "a write through A.TXT",
			disk:           map[string]string{"Docs/a.txt": "changed"},
			link:           [2]string{"Docs/a.txt", "Docs/A.TXT"},
			hidden:         "Docs/A.TXT",
			paths:          []string{"Docs/A.TXT"},
			gone:           []string{"Docs/A.TXT"},
			present:        []string{"Docs/a.txt"},
			presentWithout: []string{"Docs/A.TXT"},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			root := t.TempDir()
			writeOld(t, filepath.Join(root, "Docs/a.txt"), "recorded")
			idx := newIndex()
			idx.set("Docs", Known{Dir: true})
			idx.set("Docs/a.txt", knownFile(t, filepath.Join(root, "Docs/a.txt")))
			for p, data := range c.disk {
				writeOld(t, filepath.Join(root, p), data)
			}
			if c.link[0] != "" {
				if err := os.Link(filepath.Join(root, c.link[0]), filepath.Join(root, c.link[1])); err != nil {
					t.Fatal(err)
				}
			}
			for _, exact := range []bool{false, true} {
				w, err := New(Options{Root: root, Index: idx, Logger: quietLogger(), ExactNames: exact})
				if err != nil {
					t.Fatal(err)
				}
				w.readDir = func(dir *os.Root) ([]fs.DirEntry, error) {
					entries, err := listDir(dir)
					rel, _ := w.relOf(dir.Name())
					return slices.DeleteFunc(entries, func(e fs.DirEntry) bool { return join(rel, e.Name()) == c.hidden }), err
				}
				r, err := w.lookPaths(context.Background(), slices.Clone(c.paths), nil, nil, nil)
				if err != nil {
					t.Fatal(err)
				}
				gone, present := c.goneWithout, c.presentWithout
				if exact {
					gone, present = c.gone, c.present
				}
				if got := obsPaths(r.gone); !slices.Equal(got, gone) {
					t.Errorf("ExactNames %v: gone %q, want %q", exact, got, gone)
				}
				if got := obsPaths(r.present); !slices.Equal(got, present) {
					t.Errorf("ExactNames %v: present %q, want %q", exact, got, present)
				}
				for _, o := range r.present {
					if data, err := os.ReadFile(filepath.Join(root, o.Path)); err == nil && !hashOf(string(data))(o) {
						t.Errorf("ExactNames %v: %+v, want the content on disk", exact, o)
					}
				}
			}
		})
	}
}

// obsPaths returns the sorted paths of observations.
func obsPaths(obs []Observation) []string {
	var out []string
	for _, o := range obs {
		out = append(out, o.Path)
	}
	sort.Strings(out)
	return out
}

// TestExactNamesListEachDirectoryOncePerLook: events naming 200 files of
// one directory, and one of another, cost one listing of each directory
// and of the folder; without ExactNames, none.
func TestExactNamesListEachDirectoryOncePerLook(t *testing.T) {
	root := t.TempDir()
	idx := newIndex()
	var paths []string
	for i := range 200 {
		p := fmt.Sprintf("big/f%03d", i)
		writeOld(t, filepath.Join(root, p), p)
		idx.set(p, knownFile(t, filepath.Join(root, p)))
		paths = append(paths, p)
	}
	writeOld(t, filepath.Join(root, "other/deep/f"), "f")
	paths = append(paths, "other/deep/f", "big/gone", "other/deep/gone")
	for _, exact := range []bool{false, true} {
		w, err := New(Options{Root: root, Index: idx, Logger: quietLogger(), ExactNames: exact})
		if err != nil {
			t.Fatal(err)
		}
		listed := map[string]int{}
		w.readDir = func(dir *os.Root) ([]fs.DirEntry, error) {
			rel, _ := w.relOf(dir.Name())
			listed[rel]++
			return listDir(dir)
		}
		// Shuffled: lookPaths sorts them.
		slices.Reverse(paths)
		r, err := w.lookPaths(context.Background(), slices.Clone(paths), nil, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := obsPaths(r.present); !slices.Equal(got, []string{"other/deep/f"}) {
			t.Errorf("ExactNames %v: present %q", exact, got)
		}
		if got := obsPaths(r.gone); !slices.Equal(got, []string{"big/gone", "other/deep/gone"}) {
			t.Errorf("ExactNames %v: gone %q", exact, got)
		}
		want := map[string]int{}
		if exact {
			want = map[string]int{"": 1, "big": 1, "other": 1, "other/deep": 1}
		}
		if fmt.Sprint(listed) != fmt.Sprint(want) {
			t.Errorf("ExactNames %v: listings %v, want %v", exact, listed, want)
		}
	}
}

// TestFloorTo truncates times toward minus infinity.
func TestFloorTo(t *testing.T) {
	const s = int64(time.Second)
	cases := []struct{ t, step, want int64 }{
		{0, s, 0},
		{1, s, 0},
		{s - 1, s, 0},
		{s, s, s},
		{3*s + 5, 2 * s, 2 * s},
		{-1, s, -s},
		{-s, s, -s},
		{-s - 1, s, -2 * s},
		{-3 * s, 2 * s, -4 * s},
		{12345, 1, 12345},
	}
	for _, c := range cases {
		if got := floorTo(c.t, c.step); got != c.want {
			t.Errorf("floorTo(%d, %d) = %d, want %d", c.t, c.step, got, c.want)
		}
	}
}

// TestMTimePrecision scans a file whose recorded MTime differs from the
// one on disk: it is reported (hashed again) only if the two fall in
// different steps of MTimePrecision, or differ at all with a precision of
// at most 1 ns.
func TestMTimePrecision(t *testing.T) {
	const s = time.Second
	at := func(d time.Duration) int64 { return int64(1_700_000_000*s + d) } // an even second, plus d
	cases := []struct {
		name        string
		step        time.Duration
		disk, known int64
		reported    bool
	}{
		{"exact, same", 0, at(250 * time.Millisecond), at(250 * time.Millisecond), false},
		{"exact, 1 ns apart", 0, at(250 * time.Millisecond), at(250*time.Millisecond + 1), true},
		{"1 ns, 1 ns apart", time.Nanosecond, at(0), at(1), true},
		{"1 s, same second", s, at(0), at(s - 1), false},
		{"1 s, next second", s, at(s), at(s - 1), true},
		{"1 s, disk not truncated", s, at(999 * time.Millisecond), at(123456789), false},
		{"2 s, odd second on disk", 2 * s, at(s), at(0), false},
		{"2 s, next step", 2 * s, at(2 * s), at(2*s - 1), true},
		{"1 s, before 1970", s, int64(-1500 * time.Millisecond), int64(-1200 * time.Millisecond), false},
		{"1 s, before 1970, next step", s, int64(-1500 * time.Millisecond), int64(-500 * time.Millisecond), true},
		{"1 s, across 1970", s, 0, -1, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			root := t.TempDir()
			p := filepath.Join(root, "f")
			writeAt(t, p, "x")
			mt := time.Unix(0, c.disk)
			if err := os.Chtimes(p, mt, mt); err != nil {
				t.Fatal(err)
			}
			if st, err := os.Lstat(p); err != nil || st.ModTime().UnixNano() != c.disk {
				t.Fatalf("this disk did not keep the mtime %d: %v, %v", c.disk, st.ModTime(), err)
			}
			k := knownFile(t, p)
			k.MTime = c.known
			idx := newIndex()
			idx.set("f", k)
			got := flatten(scanOnce(t, Options{Root: root, Index: idx, Logger: quietLogger(), MTimePrecision: c.step}))
			if o, ok := got["f"]; ok != c.reported || len(got) > 1 || ok && !hashOf("x")(o) {
				t.Errorf("reported %+v, want f reported: %v", got, c.reported)
			}
		})
	}
}

// TestAgeCountsFromTheEndOfTheMTimeStep: on a disk that keeps mtimes to
// the second, a file showing second T may have been written just before
// T+1s. Moved in at T+1s+50ms with StableFor 100 ms, it is not taken for
// quiet at its first look, but hashed at the next, StableFor later, when
// it has not changed.
func TestAgeCountsFromTheEndOfTheMTimeStep(t *testing.T) {
	const settle, stable = 10 * time.Millisecond, 100 * time.Millisecond
	sec := time.Now().Truncate(time.Second)
	root := t.TempDir()
	var mu sync.Mutex
	var hashedAt []time.Time
	h := start(t, root, newIndex(), func(o *Options) {
		o.Clock, o.Settle, o.StableFor = clock.NewFake(sec.Add(time.Second+50*time.Millisecond)), settle, stable
		o.MTimePrecision = time.Second
	}, func(w *Watcher) {
		w.onHash = func(string, fs.FileInfo) {
			mu.Lock()
			defer mu.Unlock()
			hashedAt = append(hashedAt, w.clk.Now())
		}
	})
	src := filepath.Join(t.TempDir(), "f")
	writeAt(t, src, "written")
	if err := os.Chtimes(src, sec, sec); err != nil {
		t.Fatal(err)
	}
	h.track("f")
	if err := os.Rename(src, filepath.Join(root, "f")); err != nil {
		t.Fatal(err)
	}
	h.waitPending("f")
	start := h.clk.Now()
	h.advance(settle)
	mu.Lock()
	n := len(hashedAt)
	mu.Unlock()
	if n != 0 || h.count("f") != 0 {
		t.Fatalf("hashed %d times at its first look, 50 ms after the end of its mtime's second", n)
	}
	h.advance(stable)
	h.waitObs("f", hashOf("written"))
	mu.Lock()
	defer mu.Unlock()
	if len(hashedAt) != 1 || hashedAt[0].Sub(start) < settle+stable {
		t.Errorf("hashed at %v from its event, want once, at Settle+StableFor", hashedAt)
	}
}

// TestIgnoreModes: with IgnoreModes, every observation carries Mode 0 and
// a file whose mode differs from the recorded one is not reported, at a
// scan or when an event names it; without, the scan reports it.
func TestIgnoreModes(t *testing.T) {
	root := t.TempDir()
	p := filepath.Join(root, "same")
	writeOld(t, p, "same")
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	idx := newIndex()
	k := knownFile(t, p)
	k.Mode = 0o600
	idx.set("same", k)
	writeOld(t, filepath.Join(root, "dir/new"), "new")

	got := flatten(scanOnce(t, Options{Root: root, Index: idx, Logger: quietLogger()}))
	if o := got["same"]; o.Mode != 0o644 || o.Hash != k.Hash {
		t.Fatalf("without IgnoreModes, the mode change was not reported: %+v", got)
	}
	got = flatten(scanOnce(t, Options{Root: root, Index: idx, Logger: quietLogger(), IgnoreModes: true}))
	if o, ok := got["same"]; ok {
		t.Errorf("mode change reported with IgnoreModes: %+v", o)
	}
	if o := got["dir"]; !isDir(o) || o.Mode != 0 {
		t.Errorf("new directory: %+v, want Mode 0", o)
	}
	if o := got["dir/new"]; !hashOf("new")(o) || o.Mode != 0 {
		t.Errorf("new file: %+v, want Mode 0", o)
	}

	h := start(t, root, idx, func(o *Options) { o.IgnoreModes = true }, nil)
	h.track("same")
	if err := os.Chmod(p, 0o755); err != nil {
		t.Fatal(err)
	}
	h.waitPending("same")
	// Looked at, at the latest, with the marker's event.
	writeOld(t, filepath.Join(root, "marker"), "m")
	if o := h.waitObs("marker", exists); o.Mode != 0 {
		t.Errorf("marker: %+v, want Mode 0", o)
	}
	if n := h.count("same"); n != 0 {
		t.Errorf("a mode change was reported %d times with IgnoreModes", n)
	}
	if o := h.waitObs("dir/new", exists); o.Mode != 0 {
		t.Errorf("dir/new at the first scan: %+v, want Mode 0", o)
	}
}

// TestRenameOfARecentFileIsReportedAsOne: on a file system with coarse
// mtimes, a recorded file renamed within its mtime's step is not stable
// yet under its new name. Its old name is held back with it, and both are
// reported in one slice, side by side, so that the node sees a rename and
// not a removal followed, a look later, by a new file.
func TestRenameOfARecentFileIsReportedAsOne(t *testing.T) {
	const settle, stable = 10 * time.Millisecond, 100 * time.Millisecond
	sec := time.Now().Truncate(time.Second)
	root := t.TempDir()
	p := filepath.Join(root, "Plan.txt")
	writeAt(t, p, "the plan")
	if err := os.Chtimes(p, sec, sec); err != nil {
		t.Fatal(err)
	}
	idx := newIndex()
	idx.set("Plan.txt", knownFile(t, p))
	h := start(t, root, idx, func(o *Options) {
		o.Clock, o.Settle, o.StableFor = clock.NewFake(sec.Add(time.Second+50*time.Millisecond)), settle, stable
		o.MTimePrecision = time.Second
	}, nil)
	h.track("plan-final.txt")
	if err := os.Rename(p, filepath.Join(root, "plan-final.txt")); err != nil {
		t.Fatal(err)
	}
	h.waitPending("plan-final.txt")
	h.advance(settle)
	if got := h.allPaths(); len(got) != 0 {
		t.Fatalf("reported %v at the first look; the new name is not stable yet", got)
	}
	h.advance(stable)
	h.waitObs("plan-final.txt", hashOf("the plan"))
	b := h.batchWith("plan-final.txt", hashOf("the plan"))
	i, j := indexOf(b, "plan-final.txt"), indexOf(b, "Plan.txt")
	if j != i+1 || b[j].Exists {
		t.Errorf("slice %+v: want Plan.txt gone right after plan-final.txt", b)
	}
	if n := h.count("Plan.txt"); n != 1 {
		t.Errorf("Plan.txt reported %d times, want once", n)
	}
}
