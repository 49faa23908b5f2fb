// Package watcher reports what is in a folder and what happens in it: a full
// scan at start that finds what changed while nothing was watching, a
// recursive fsnotify watch (directories created later included), a rescan
// once a burst of events that overflowed the kernel's queue is over (which
// consults the Index only for what changed, where the file system's
// ctimes tell), and a periodic rescan as the safety net for lost or
// overflowing events (reasoning the same way, and a full one every sixth).
//
// The watcher only reports what it saw; it decides nothing. It compares
// what it sees with an Index the caller keeps (what was last recorded) so
// that unchanged files are neither hashed nor reported, and so that it can
// name the recorded paths that vanished.
//
// Guarantees:
//   - Every path that differs from the Index (new, changed, gone) is
//     reported by the first full scan; every later change is reported by
//     an event or, at the latest, by the next rescan.
//   - A file is hashed only once it has been quiet for StableFor (its mtime
//     is that old, or its size, mtime and inode did not change across
//     looks that far apart), and it is hashed again if it changed while it
//     was being hashed, so a reported hash belongs to the size and mtime
//     reported with it.
//   - Hashing streams the file through [content.File]: memory does not grow
//     with file size.
//   - A path that vanished is reported together with every path the Index
//     has under it. Nothing is reported gone because it could not be read:
//     the contents of a directory that cannot be listed, and files that
//     cannot be read, are left as recorded (and logged).
//   - If the folder itself disappears or is replaced (deleted, moved,
//     unmounted), Run and Scan return an error instead of reporting every
//     recorded path gone.
//   - Symlinks are never followed, as the last element of a path or as a
//     parent, and, like fifos, sockets and devices, are never reported as
//     existing. Everything is looked at one directory at a time through an
//     [os.Root] on the folder, so nothing outside the folder or behind a
//     symlink is listed, hashed, reported or watched: a path whose parent
//     is no longer a directory (a symlink put in its place, say) is gone.
//   - The ignore function is applied to every path and its ancestors;
//     ignored directories are not descended into or watched.
//   - With ExactNames, a path is reported as existing only under the
//     name, byte for byte, that its directory lists.
//
// Observations are sent as slices. Within the slices sent for one scan or
// one settled group of events, each path appears at most once, in this
// order: paths that exist, sorted by path (so directories come before what
// they contain), each new file whose content matches the recorded hash of
// a vanished file immediately followed by that vanished path (a likely
// rename; the pair is never split across slices); then the remaining
// vanished paths, children before their parents; then paths where a
// recorded directory has become a file.
package watcher

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/drive-node/drive-node/content"
	"github.com/drive-node/drive-node/internal/clock"
	"github.com/drive-node/drive-node/internal/kick"
)

// Observation is what the watcher saw at one path at one moment.
type Observation struct {
	Path   string // slash-separated, relative to Root; never "" (the root itself is not reported)
	Exists bool   // false: nothing (that is synced) at Path any more
	Dir    bool
	Size   int64
	// Mode is the permission bits (fs.FileMode.Perm()); 0 means not
	// known, as it always is with Options.IgnoreModes. (On a file system
	// that keeps modes, a file with no permission bits set shows 0 too.)
	Mode  uint32
	MTime int64  // unix nanoseconds, as the file system keeps them
	Inode uint64 // 0 where the OS has none, or not known (see Options.ExactNames)
	Hash  content.Hash
}

// Known is what the node last recorded at a path.
type Known struct {
	Dir   bool
	Size  int64
	MTime int64
	Inode uint64
	// Mode is the recorded permission bits. Zero means "not recorded":
	// then a change of permission bits alone (which changes neither size
	// nor mtime) is not noticed. When set and different from the file's,
	// the file is reported with Hash taken from here, without re-hashing
	// (never with Options.IgnoreModes).
	Mode uint32
	Hash content.Hash
	// Implied marks, among Children, a directory with no record of its
	// own that holds records: not recorded itself, but what is under it
	// is gone if it is.
	Implied bool
}

// Index is the node's record, read by the watcher. It must be safe for
// concurrent use.
type Index interface {
	// Lookup returns the live record at path.
	Lookup(path string) (Known, bool)
	// Under returns the live recorded paths strictly under dir ("" for
	// all), used to report what vanished with a directory.
	Under(dir string) []string
	// Children returns the live records directly in dir ("" for the
	// folder) by name, and the directories there that hold records
	// without one of their own (Known.Implied). A walk compares each directory's listing with
	// them: what the listing lacks is gone, and no path is looked up
	// alone, so a walk's memory follows the largest directory, not the
	// folder. A name the Index takes for another's (in another Unicode
	// form) is found with Lookup. On an error the directory's files are
	// looked up one by one and nothing in it is reported gone.
	Children(dir string) (map[string]Known, error)
}

// BatchIndex is an Index that looks up many paths at once for less than
// one at a time. The watcher looks up what it is about to report with
// it: a directory moved in is thousands of paths.
type BatchIndex interface {
	Index
	// LookupAll returns the live records at those of paths that have
	// one, as Lookup would find them one by one.
	LookupAll(paths []string) map[string]Known
}

// Options configures a Watcher.
type Options struct {
	// Root is the folder to watch.
	Root string
	// Index is what the node last recorded; required.
	Index Index
	// Ignore reports slash-separated relative paths never to report or
	// descend into, given whether the path is a directory; it answers
	// for the path as it lies, so a path under an ignored directory must
	// be ignored too. It may change its answers while the watcher runs:
	// a Rescan then finds what they change. When nil, ".drive-node"
	// (with everything in it) and names starting with ".drive-node-tmp-"
	// are ignored.
	Ignore func(path string, dir bool) bool
	// Hash names the content of a regular file opened for it, from its
	// start, and returns the size named (see content.Open, the default).
	// The node's keeps each large content's chunk list as it goes.
	Hash func(ctx context.Context, f *os.File) (content.Hash, int64, error)
	// RescanInterval is the period of rescans, the safety net for events
	// lost without a word (every sixth is a full one, see
	// loop.periodicScan), while every directory has a watch; while some
	// directory has none, the period is at most 10 minutes. Default an
	// hour, negative to disable.
	RescanInterval time.Duration
	// Settle is how long events must have stopped before the paths they
	// name are looked at; default 15 ms.
	Settle time.Duration
	// StableFor is how long a file must have been quiet before it is
	// hashed; default 50 ms. A file moved in from elsewhere keeps its old
	// mtime and is hashed at once.
	StableFor time.Duration
	// Looked, if set, is called for each regular file a scan of the
	// folder looks at (a full scan, or a rescan for lost events), from
	// the scanning goroutine: counting the calls tells how far a scan has
	// got. It must not block.
	Looked func()
	// Logger receives the watcher's logs; default slog.Default().
	Logger *slog.Logger
	// Clock is what the watcher reads the time from and waits on; default
	// the system clock. Every wait (Settle, StableFor, the rescan after
	// lost events, RescanInterval, Scan's wait for files being written) is
	// a timer on it, so on a fake clock nothing falls due until the clock
	// is moved on. A file's age is its mtime's distance from Clock's Now:
	// a clock other than the system's must agree with the file system's
	// timestamps, or files seem written long ago (and are hashed at once)
	// or in the future; and a rescan for lost events or a periodic one,
	// which takes an inode whose ctime is older than the previous scan as
	// unchanged, may miss a change until the next full rescan (at most
	// six RescanIntervals away).
	Clock clock.Clock
	// ExactNames says the file system finds a name under another case or
	// Unicode form (exFAT and FAT; APFS and HFS+ by default):
	// Lstat("docs") succeeds when the disk holds "Docs". Then a path
	// exists only if its parent directory lists it under exactly that
	// name, byte for byte; else it is reported gone, with what the Index
	// has under it. So a case-only rename (mv Docs docs) reports Docs gone
	// and docs new. A path named by an event is checked against a listing
	// of each of its parents, read at most once per directory per look at
	// a settled group of events. When the file system takes such a path
	// for a listed name that differs from it only in case or Unicode form
	// (a write through "A.TXT" to the listed "a.txt"), that listed path is
	// looked at too, through the spelling the event named if no event
	// named the listed one (its observation then has Inode 0). Full scans
	// take every name from a listing and are exact either way. When
	// false, a path exists if Lstat finds it.
	ExactNames bool
	// IgnoreModes says the file system keeps no permission bits (exFAT,
	// FAT, where every file shows 0777): observations of files and
	// directories carry Mode 0 (not known), and a file whose mode differs
	// from the Index's recorded Mode is never reported for that alone.
	IgnoreModes bool
	// MTimePrecision is the step the file system keeps modification
	// times in (1 s through exfat-fuse, 2 s on FAT); at most 1 ns means
	// exact. Above 1 ns, a file's mtime and the Index's recorded MTime are
	// compared truncated to the step (toward minus infinity), so a file
	// recorded with more precision than the disk keeps (say, before a
	// remount) is neither hashed nor reported; and a file's age, for
	// StableFor, counts from the end of its mtime's step, the latest it
	// may have been written.
	MTimePrecision time.Duration
}

const (
	// scanBatch bounds the length of one slice of observations.
	scanBatch = 1000
	// eventBuffer is the fsnotify event channel's capacity, so events
	// queue while a scan or a hash runs.
	eventBuffer = 4096
	// maxLatencySettles bounds, in Settle periods, how long a stream of
	// events that never pauses defers looking at the paths it names.
	maxLatencySettles = 20
)

// Watcher watches one folder. Create it with New.
type Watcher struct {
	o        Options
	clk      clock.Clock
	root     string // absolute, cleaned
	rootPfx  string // root with a trailing separator
	rootInfo fs.FileInfo
	log      *slog.Logger
	rescan   kick.Signal
	scanned  chan struct{}
	scanOnce sync.Once
	running  atomic.Bool
	skipped  sync.Map // relative paths of symlinks and special files already logged

	// Seams for tests.
	readDir func(dir *os.Root) ([]fs.DirEntry, error)
	onHash  func(rel string, st fs.FileInfo)
	// waiting is called by Run each time it is about to wait, its timer
	// set for l.next(): a test on a fake clock learns there when the loop
	// will wake next, before it moves the clock on.
	waiting func(l *loop)
	// keepsCTime, if set, replaces the check of the folder's file system
	// (see keepsCTime).
	keepsCTime func(dir string) bool
	// failWatch, if set, is asked before a watch is added on the
	// directory rel; an error it returns is the watch's failure.
	failWatch func(rel string) error
}

// DefaultRescanInterval is Options.RescanInterval when unset.
const DefaultRescanInterval = time.Hour

// New checks the options and returns a Watcher; nothing runs until Run or
// Scan. It fails, naming the path, if Root is missing or not a directory.
func New(opts Options) (*Watcher, error) {
	if opts.Root == "" {
		return nil, errors.New("watcher: no folder given")
	}
	if opts.Index == nil {
		return nil, errors.New("watcher: no index given")
	}
	root, err := filepath.Abs(opts.Root)
	if err != nil {
		return nil, fmt.Errorf("watcher: folder %s: %w", opts.Root, err)
	}
	st, err := os.Stat(root)
	if err != nil {
		return nil, fmt.Errorf("watcher: folder %s: %w", opts.Root, err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("watcher: folder %s is not a directory", opts.Root)
	}
	if opts.Ignore == nil {
		opts.Ignore = defaultIgnore
	}
	if opts.Hash == nil {
		opts.Hash = content.Open
	}
	if opts.RescanInterval == 0 {
		opts.RescanInterval = DefaultRescanInterval
	}
	if opts.Settle <= 0 {
		opts.Settle = 15 * time.Millisecond
	}
	if opts.StableFor <= 0 {
		opts.StableFor = 50 * time.Millisecond
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	pfx := root
	if !strings.HasSuffix(pfx, string(filepath.Separator)) {
		pfx += string(filepath.Separator)
	}
	return &Watcher{
		o:        opts,
		clk:      clock.Or(opts.Clock),
		root:     root,
		rootPfx:  pfx,
		rootInfo: st,
		log:      opts.Logger,
		scanned:  make(chan struct{}),
		readDir:  listDir,
	}, nil
}

// defaultIgnore ignores the default state directory and temporary files.
func defaultIgnore(p string, _ bool) bool {
	return p == ".drive-node" || strings.HasPrefix(p, ".drive-node/") ||
		strings.HasPrefix(path.Base(p), ".drive-node-tmp-")
}

// Scanned returns a channel closed once Run's first full scan has been
// sent entirely: every slice of it has been received from out.
func (w *Watcher) Scanned() <-chan struct{} { return w.scanned }

// Rescan asks a running Run loop for a full scan soon. It never blocks;
// requests made while one is pending are merged.
func (w *Watcher) Rescan() {
	w.rescan.Kick()
}

// abs returns the OS path of a relative slash path.
func (w *Watcher) abs(rel string) string {
	if rel == "" {
		return w.root
	}
	return filepath.Join(w.root, filepath.FromSlash(rel))
}

// relOf returns the relative slash path of an OS path strictly inside the
// root.
func (w *Watcher) relOf(abs string) (string, bool) {
	if !strings.HasPrefix(abs, w.rootPfx) || len(abs) == len(w.rootPfx) {
		return "", false
	}
	return filepath.ToSlash(abs[len(w.rootPfx):]), true
}

// ignored reports whether p is ignored whatever it is, file or
// directory: an event's path is looked at unless it is.
func (w *Watcher) ignored(p string) bool {
	return w.o.Ignore(p, false) && w.o.Ignore(p, true)
}

// ignoredRecord reports whether the recorded path p is ignored, as the
// directory or file its record says it is when that matters.
func (w *Watcher) ignoredRecord(p string) bool {
	asFile, asDir := w.o.Ignore(p, false), w.o.Ignore(p, true)
	if asFile == asDir {
		return asFile
	}
	k, _ := w.o.Index.Lookup(p)
	return k.Dir == asDir
}

// checkRoot fails if the folder is gone or is no longer the directory New
// found (replaced, or a mount point whose file system went away).
func (w *Watcher) checkRoot() error {
	return w.isRoot(os.Stat(w.root))
}

// isRoot fails as checkRoot does, given what a stat of the folder returned.
func (w *Watcher) isRoot(st fs.FileInfo, err error) error {
	if err != nil {
		return fmt.Errorf("watcher: folder %s: %w", w.root, err)
	}
	if !st.IsDir() || !os.SameFile(st, w.rootInfo) {
		return fmt.Errorf("watcher: folder %s was replaced or unmounted", w.root)
	}
	return nil
}

// skip logs, once per path, that a symlink or special file is not synced.
func (w *Watcher) skip(rel string, t fs.FileMode) {
	if _, dup := w.skipped.LoadOrStore(rel, struct{}{}); !dup {
		w.log.Debug("not syncing a symlink or special file", "path", rel, "type", t.String())
	}
}

func parentOf(rel string) string {
	if i := strings.LastIndexByte(rel, '/'); i >= 0 {
		return rel[:i]
	}
	return ""
}
