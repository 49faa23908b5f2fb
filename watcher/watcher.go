// Package watcher reports what happens in a folder: a recursive fsnotify
// watch (directories created later included), a full scan at start that
// finds what changed while nothing was watching, and a periodic rescan as
// the safety net for lost or overflowing events.
//
// The watcher only reports what it saw; it decides nothing. Guarantees:
//   - every path that differs from the Index (new, changed, gone) is
//     reported by the first full scan, and every later change by an event
//     or, at the latest, by the next rescan;
//   - a file is hashed only once its mtime is StableFor old, and hashed
//     again if it changed while being hashed, so a reported hash belongs
//     to the size and mtime reported with it;
//   - hashing streams the file: memory does not grow with file size;
//   - a directory that vanishes is reported together with every path the
//     Index has under it.
package watcher

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/drive-node/drive-node/content"
	"github.com/fsnotify/fsnotify"
)

// Observation is what the watcher saw at one path at one moment.
type Observation struct {
	Path   string // slash-separated, relative to Root; never empty
	Exists bool   // false: nothing at Path any more
	Dir    bool
	Size   int64
	Mode   uint32 // permission bits
	MTime  int64  // unix nanoseconds
	Inode  uint64 // 0 where the OS has none
	Hash   content.Hash
}

// Known is what the node last recorded at a path.
type Known struct {
	Dir   bool
	Size  int64
	MTime int64
	Inode uint64
	Hash  content.Hash
}

// Index is the node's record, read by the watcher; it must be safe for
// concurrent use.
type Index interface {
	// Lookup returns the live record at path.
	Lookup(path string) (Known, bool)
	// Under returns the live recorded paths strictly under dir ("" for
	// all).
	Under(dir string) []string
}

// Options configures a Watcher.
type Options struct {
	Root  string
	Index Index
	// Ignore reports paths never to report or descend into. When nil,
	// ".drive-node" and names starting with ".drive-node-tmp-" are ignored.
	Ignore func(path string) bool
	// RescanInterval is the period of full scans; default 10 minutes,
	// negative to disable.
	RescanInterval time.Duration
	// Settle is how long a path must be quiet before it is looked at;
	// default 15 ms.
	Settle time.Duration
	// StableFor is how old a file's mtime must be before it is hashed;
	// default 50 ms.
	StableFor time.Duration
	Logger    *slog.Logger
}

// scanBatch bounds how many observations one slice of a scan carries.
const scanBatch = 1000

// Watcher watches one folder.
type Watcher struct {
	o         Options
	log       *slog.Logger
	rescan    chan struct{}
	scanned   chan struct{}
	scanOnce  sync.Once
	fsw       *fsnotify.Watcher // nil outside Run
	watched   map[string]bool   // relative dirs with a watch
	symlinked sync.Map          // paths logged once as skipped symlinks
}

// New checks the root and returns a Watcher; nothing runs until Run.
func New(o Options) (*Watcher, error) {
	st, err := os.Stat(o.Root)
	if err != nil {
		return nil, fmt.Errorf("watcher: folder %s: %w", o.Root, err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("watcher: folder %s is not a directory", o.Root)
	}
	if o.Ignore == nil {
		o.Ignore = func(p string) bool {
			base := p[strings.LastIndexByte(p, '/')+1:]
			return p == ".drive-node" || strings.HasPrefix(p, ".drive-node/") || strings.HasPrefix(base, ".drive-node-tmp-")
		}
	}
	if o.RescanInterval == 0 {
		o.RescanInterval = 10 * time.Minute
	}
	if o.Settle <= 0 {
		o.Settle = 15 * time.Millisecond
	}
	if o.StableFor <= 0 {
		o.StableFor = 50 * time.Millisecond
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return &Watcher{o: o, log: o.Logger, rescan: make(chan struct{}, 1), scanned: make(chan struct{}), watched: map[string]bool{}}, nil
}

// Scanned is closed once Run's first full scan has been sent entirely.
func (w *Watcher) Scanned() <-chan struct{} { return w.scanned }

// Rescan asks a running Run loop for a full scan soon; it never blocks.
func (w *Watcher) Rescan() {
	select {
	case w.rescan <- struct{}{}:
	default:
	}
}

func (w *Watcher) abs(rel string) string { return filepath.Join(w.o.Root, filepath.FromSlash(rel)) }

func (w *Watcher) rel(abs string) (string, bool) {
	r, err := filepath.Rel(w.o.Root, abs)
	if err != nil || r == "." || strings.HasPrefix(r, "..") {
		return "", false
	}
	return filepath.ToSlash(r), true
}

// Run scans the folder, then reports events until ctx ends. It returns
// ctx.Err() when cancelled, or an error if the folder cannot be watched.
func (w *Watcher) Run(ctx context.Context, out chan<- []Observation) error {
	fsw, err := fsnotify.NewBufferedWatcher(4096)
	if err != nil {
		return fmt.Errorf("watcher: %w", err)
	}
	defer fsw.Close()
	w.fsw = fsw
	if err := fsw.Add(w.o.Root); err != nil {
		return fmt.Errorf("watcher: watch %s: %w", w.o.Root, err)
	}
	if err := w.Scan(ctx, out); err != nil {
		return err
	}
	w.scanOnce.Do(func() { close(w.scanned) })

	var tick <-chan time.Time
	if w.o.RescanInterval > 0 {
		t := time.NewTicker(w.o.RescanInterval)
		defer t.Stop()
		tick = t.C
	}
	pending := map[string]time.Time{} // path -> when it may be looked at
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	arm := func() {
		var next time.Time
		for _, t := range pending {
			if next.IsZero() || t.Before(next) {
				next = t
			}
		}
		if !next.IsZero() {
			timer.Reset(max(time.Until(next), time.Millisecond))
		}
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case ev, ok := <-fsw.Events:
			if !ok {
				return errors.New("watcher: event stream closed")
			}
			rel, ok := w.rel(ev.Name)
			if !ok || w.o.Ignore(rel) {
				continue
			}
			pending[rel] = time.Now().Add(w.o.Settle)
			arm()
		case err, ok := <-fsw.Errors:
			if !ok {
				return errors.New("watcher: error stream closed")
			}
			w.log.Warn("file events lost; rescanning the folder", "err", err)
			w.Rescan()
		case <-timer.C:
			now := time.Now()
			var due []string
			for p, t := range pending {
				if !t.After(now) {
					due = append(due, p)
					delete(pending, p)
				}
			}
			sort.Strings(due)
			batch, retry := w.observePaths(ctx, due)
			for _, p := range retry {
				pending[p] = time.Now().Add(w.o.StableFor)
			}
			if len(batch) > 0 {
				select {
				case out <- batch:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			arm()
		case <-tick:
			w.Rescan()
		case <-w.rescan:
			if err := w.Scan(ctx, out); err != nil {
				return err
			}
		}
	}
}

// observePaths looks at paths that had events. Files not yet stable are
// returned for a later look.
func (w *Watcher) observePaths(ctx context.Context, paths []string) (batch []Observation, retry []string) {
	seen := map[string]bool{}
	add := func(o Observation) {
		if !seen[o.Path] {
			seen[o.Path] = true
			batch = append(batch, o)
		}
	}
	for _, p := range paths {
		st, err := os.Lstat(w.abs(p))
		switch {
		case errors.Is(err, fs.ErrNotExist) || (err == nil && !st.IsDir() && !st.Mode().IsRegular()):
			w.forget(p)
			if _, ok := w.o.Index.Lookup(p); ok || !seen[p] {
				add(Observation{Path: p})
			}
			for _, child := range w.o.Index.Under(p) {
				add(Observation{Path: child})
			}
		case err != nil:
			w.log.Warn("cannot look at a changed path", "path", p, "err", err)
		case st.IsDir():
			// A new directory may have been filled before its watch
			// existed: walk it.
			obs, unstable, _ := w.walk(ctx, p)
			for _, o := range obs {
				add(o)
			}
			retry = append(retry, unstable...)
		default:
			o, stable, err := w.observeFile(ctx, p, st)
			switch {
			case err != nil:
				if !errors.Is(err, fs.ErrNotExist) {
					w.log.Warn("cannot read a changed file", "path", p, "err", err)
				}
				retry = append(retry, p)
			case !stable:
				retry = append(retry, p)
			case o != nil:
				add(*o)
			}
		}
	}
	// Report parents before children and removals in a stable order; the
	// node sorts again for its own needs.
	sort.SliceStable(batch, func(i, j int) bool { return batch[i].Path < batch[j].Path })
	return batch, retry
}

func (w *Watcher) forget(p string) {
	for d := range w.watched {
		if d == p || strings.HasPrefix(d, p+"/") {
			delete(w.watched, d)
		}
	}
}

// observeFile returns the observation of a regular file, nil when it
// matches the Index, or stable=false when it is still being written.
func (w *Watcher) observeFile(ctx context.Context, p string, st fs.FileInfo) (*Observation, bool, error) {
	o := fileObservation(p, st)
	if k, ok := w.o.Index.Lookup(p); ok && !k.Dir && k.Size == o.Size && k.MTime == o.MTime && (k.Inode == 0 || o.Inode == 0 || k.Inode == o.Inode) {
		return nil, true, nil
	}
	if time.Since(st.ModTime()) < w.o.StableFor {
		return nil, false, nil
	}
	h, n, err := content.File(ctx, w.abs(p))
	if err != nil {
		return nil, false, err
	}
	after, err := os.Lstat(w.abs(p))
	if err != nil {
		return nil, false, err
	}
	if n != after.Size() || after.Size() != st.Size() || !after.ModTime().Equal(st.ModTime()) {
		return nil, false, nil // changed while hashed
	}
	o.Hash = h
	return &o, true, nil
}

func fileObservation(p string, st fs.FileInfo) Observation {
	return Observation{Path: p, Exists: true, Size: st.Size(), Mode: uint32(st.Mode().Perm()), MTime: st.ModTime().UnixNano(), Inode: InodeOf(st)}
}

// walk visits dir (relative; "" for the root) and everything below it,
// adding watches when running, and returns what differs from the Index,
// the files not yet stable, and every path it saw.
func (w *Watcher) walk(ctx context.Context, dir string) (obs []Observation, unstable []string, seen map[string]bool) {
	seen = map[string]bool{}
	start := w.abs(dir)
	filepath.WalkDir(start, func(abs string, d fs.DirEntry, err error) error {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		rel, ok := w.rel(abs)
		if err != nil {
			if ok || abs == start {
				w.log.Warn("cannot read in the folder", "path", abs, "err", err)
			}
			if d != nil && d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if !ok { // the root itself
			if w.fsw != nil && dir == "" {
				w.watch("")
			}
			return nil
		}
		if w.o.Ignore(rel) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		switch {
		case d.IsDir():
			if w.fsw != nil {
				w.watch(rel)
			}
			seen[rel] = true
			st, err := d.Info()
			if err != nil {
				return nil
			}
			if k, ok := w.o.Index.Lookup(rel); !ok || !k.Dir {
				obs = append(obs, Observation{Path: rel, Exists: true, Dir: true, Mode: uint32(st.Mode().Perm()), MTime: st.ModTime().UnixNano(), Inode: InodeOf(st)})
			}
		case d.Type().IsRegular():
			seen[rel] = true
			st, err := d.Info()
			if err != nil {
				return nil
			}
			o, stable, err := w.observeFile(ctx, rel, st)
			switch {
			case err != nil:
				unstable = append(unstable, rel)
			case !stable:
				unstable = append(unstable, rel)
			case o != nil:
				obs = append(obs, *o)
			}
		default:
			if _, logged := w.symlinked.LoadOrStore(rel, true); !logged {
				w.log.Debug("not syncing a symlink or special file", "path", rel)
			}
		}
		return nil
	})
	return obs, unstable, seen
}

func (w *Watcher) watch(rel string) {
	if w.watched[rel] {
		return
	}
	if err := w.fsw.Add(w.abs(rel)); err != nil {
		w.log.Warn("cannot watch a directory; the periodic rescan covers it", "path", rel, "err", err)
		return
	}
	w.watched[rel] = true
}

// Scan walks the whole folder once and sends, in slices of at most 1000,
// every path that differs from the Index: new and changed files (hashed),
// new directories, and recorded paths that are gone. Files still being
// written are waited for.
func (w *Watcher) Scan(ctx context.Context, out chan<- []Observation) error {
	obs, unstable, seen := w.walk(ctx, "")
	if err := ctx.Err(); err != nil {
		return err
	}
	for _, p := range w.o.Index.Under("") {
		if !seen[p] && !w.o.Ignore(p) {
			obs = append(obs, Observation{Path: p})
		}
	}
	// Files still being written: look again until they settle (or vanish).
	for tries := 0; len(unstable) > 0 && tries < 200; tries++ {
		select {
		case <-time.After(w.o.StableFor):
		case <-ctx.Done():
			return ctx.Err()
		}
		var again []string
		for _, p := range unstable {
			st, err := os.Lstat(w.abs(p))
			if err != nil {
				if _, ok := w.o.Index.Lookup(p); ok {
					obs = append(obs, Observation{Path: p})
				}
				continue
			}
			if !st.Mode().IsRegular() {
				continue
			}
			o, stable, err := w.observeFile(ctx, p, st)
			switch {
			case err != nil || !stable:
				again = append(again, p)
			case o != nil:
				obs = append(obs, *o)
			}
		}
		unstable = again
	}
	for len(obs) > 0 {
		n := min(len(obs), scanBatch)
		select {
		case out <- obs[:n]:
		case <-ctx.Done():
			return ctx.Err()
		}
		obs = obs[n:]
	}
	return nil
}
