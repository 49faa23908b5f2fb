package watcher

import (
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// TestIgnoreRulesChangeWhileRunning: a directory-only rule keeps a
// directory unwatched and unreported, while a file of that name elsewhere
// is reported; when the rule goes, a rescan watches the directory and
// reports what it holds; when it comes back, a rescan drops the watches,
// and what is then removed there is not reported gone.
func TestIgnoreRulesChangeWhileRunning(t *testing.T) {
	root := t.TempDir()
	writeAt(t, filepath.Join(root, "keep/a"), "a")
	writeAt(t, filepath.Join(root, "build/out.o"), "object")
	writeAt(t, filepath.Join(root, "build/sub/x"), "x")
	writeAt(t, filepath.Join(root, "other/build"), "a file named build")
	var ignoreBuild atomic.Bool
	ignoreBuild.Store(true)
	h := start(t, root, newIndex(), func(o *Options) {
		o.Ignore = func(p string, dir bool) bool {
			if defaultIgnore(p, dir) {
				return true
			}
			// As "build/" would: the directory build at any depth.
			return ignoreBuild.Load() && (strings.HasPrefix(p, "build/") || strings.Contains(p, "/build/") ||
				dir && (p == "build" || strings.HasSuffix(p, "/build")))
		}
	}, nil)
	h.waitObs("keep/a", hashOf("a"))
	h.waitObs("other/build", hashOf("a file named build"))
	watched := func(dir string) func() bool {
		return func() bool { return h.loop.watched[dir] }
	}
	notWatched := func(dir string) func() bool {
		return func() bool { return h.loop.watched != nil && !h.loop.watched[dir] }
	}
	h.until("keep watched", watched("keep"))
	h.until("build not watched", notWatched("build"))
	for _, p := range h.allPaths() {
		if strings.HasPrefix(p, "build") {
			t.Fatalf("ignored path %s reported by the first scan", p)
		}
	}

	ignoreBuild.Store(false)
	h.w.Rescan()
	h.waitObs("build/out.o", hashOf("object"))
	h.waitObs("build/sub/x", hashOf("x"))
	h.until("build/sub watched once not ignored", watched("build/sub"))

	ignoreBuild.Store(true)
	h.w.Rescan()
	h.until("build's watches dropped once ignored again", notWatched("build"))
	h.until("build/sub's watch dropped", notWatched("build/sub"))
	if err := os.Remove(filepath.Join(root, "build/out.o")); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(root, "build/sub")); err != nil {
		t.Fatal(err)
	}
	h.rescanned()
	for _, p := range []string{"build/out.o", "build/sub/x", "build/sub"} {
		if o := h.latest[p]; !o.Exists {
			t.Errorf("%s reported gone (or never seen) while ignored: %+v", p, o)
		}
	}
}

// rescanned asks for a rescan and returns once it has run and what it
// sent is recorded.
func (h *harness) rescanned() {
	h.t.Helper()
	h.mu.Lock()
	before := h.waits
	h.mu.Unlock()
	h.w.Rescan()
	h.until("the rescan to run", func() bool { return h.waits > before && !h.loop.rescan })
	h.sync()
}
