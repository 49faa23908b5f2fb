package node

import (
	"context"
	"errors"
	"io/fs"
	"maps"
	"path"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/text/unicode/norm"

	"github.com/drive-node/drive-node/state"
	"github.com/drive-node/drive-node/watcher"
)

// notThere reports whether err says a path is not there: missing, or under a
// file where a directory was (a directory replaced by a file).
func notThere(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

// lstat looks at p in the folder as the watcher does, never through a
// symlink: a path whose parent is a symlink (or no directory at all) is
// not there, although os.Root would follow a link that stays inside the
// folder and refuse one that leaves it. On a folder that finds names
// under another case or Unicode form, a path is there only under its own
// name: Docs is not there when the disk holds docs. seen, if not nil,
// remembers what was found for a batch of lookups.
func (n *Node) lstat(p string, seen *lookups) (fs.FileInfo, error) {
	return n.lstatFrom(p, seen, nil)
}

// rawLook is what os.Root's Lstat found at a path.
type rawLook struct {
	st  fs.FileInfo
	err error
}

// lstatFrom is lstat, with p itself looked at already when known is not
// nil: its directories are still checked.
func (n *Node) lstatFrom(p string, seen *lookups, known *rawLook) (fs.FileInfo, error) {
	if seen == nil {
		seen = newLookups()
	}
	var chain []string
	for d := parentDir(p); d != "" && !seen.dirs[d]; d = parentDir(d) {
		chain = append(chain, d)
	}
	// Outermost first: os.Root resolves the parents of each look, so a
	// symlink must be met as the path's own last component.
	for i := len(chain) - 1; i >= 0; i-- {
		d := chain[i]
		st, err := n.exactLstat(d, seen)
		if err != nil {
			return nil, err
		}
		if !st.IsDir() {
			return nil, &fs.PathError{Op: "lstat", Path: p, Err: fs.ErrNotExist}
		}
	}
	for _, d := range chain {
		seen.dirs[d] = true
	}
	if known != nil {
		return n.exactName(p, seen, known.st, known.err)
	}
	return n.exactLstat(p, seen)
}

// lookups is what a batch of lstat calls found: directories that are
// real directories, and the names directories hold.
type lookups struct {
	dirs  map[string]bool
	names map[string]map[string]bool
}

func newLookups() *lookups {
	return &lookups{dirs: map[string]bool{}, names: map[string]map[string]bool{}}
}

// isDir reports whether a look found d a real directory (not a symlink),
// and every directory above it too.
func (l *lookups) isDir(d string) bool { return l != nil && l.dirs[d] }

// forget drops what was found about p, its directory's names and
// anything under it: the caller changed the folder there.
func (l *lookups) forget(p string) {
	if l == nil {
		return
	}
	delete(l.names, parentDir(p))
	atOrUnder := func(d string) bool { return d == p || strings.HasPrefix(d, p+"/") }
	maps.DeleteFunc(l.dirs, func(d string, _ bool) bool { return atOrUnder(d) })
	maps.DeleteFunc(l.names, func(d string, _ map[string]bool) bool { return atOrUnder(d) })
}

// exactLstat is Lstat, which on a folder that finds names under another
// case or form also checks that p's directory holds p's name itself.
func (n *Node) exactLstat(p string, seen *lookups) (fs.FileInfo, error) {
	st, err := n.folderRoot().Lstat(p)
	return n.exactName(p, seen, st, err)
}

// exactName is exactLstat with the Lstat of p done already (st, err).
func (n *Node) exactName(p string, seen *lookups, st fs.FileInfo, err error) (fs.FileInfo, error) {
	if err != nil || !n.volume().Folds() {
		return st, err
	}
	dir := parentDir(p)
	names, ok := seen.names[dir]
	if !ok {
		d, err := n.folderRoot().Open(cmpDir(dir))
		if err != nil {
			return nil, err
		}
		list, err := d.Readdirnames(-1)
		d.Close()
		if err != nil {
			return nil, err
		}
		names = make(map[string]bool, len(list))
		for _, name := range list {
			names[name] = true
			if nfc := norm.NFC.String(name); nfc != name {
				names[nfc] = true // a folder that keeps names decomposed (HFS+)
			}
		}
		seen.names[dir] = names
	}
	if !names[path.Base(p)] {
		return nil, &fs.PathError{Op: "lstat", Path: p, Err: fs.ErrNotExist}
	}
	return st, nil
}

// cmpDir is dir as the folder opens it: "." for the folder itself.
func cmpDir(dir string) string {
	if dir == "" {
		return "."
	}
	return dir
}

// observe reports what is at p now, as the watcher would: a missing path
// also reports every recorded path under it as missing, and so does a
// symlink or device, which is never synced (what was recorded there is
// gone).
func (n *Node) observe(ctx context.Context, p string) ([]watcher.Observation, error) {
	st, err := n.lstat(p, nil)
	if err == nil && !st.IsDir() && !st.Mode().IsRegular() {
		err = &fs.PathError{Op: "observe", Path: p, Err: fs.ErrNotExist}
	}
	if notThere(err) {
		out := []watcher.Observation{{Path: p}}
		for _, child := range (dbIndex{db: n.db, placing: &n.placing}).Under(p) {
			out = append(out, watcher.Observation{Path: child})
		}
		return out, nil
	}
	if err != nil {
		return nil, err
	}
	o := watcher.Observation{Path: p, Exists: true, Dir: st.IsDir(), Mode: uint32(st.Mode().Perm()), MTime: st.ModTime().UnixNano(), Inode: watcher.InodeOf(st)}
	if !st.IsDir() {
		f, err := n.folderRoot().Open(p)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		h, size, err := n.hashKeepingList(ctx, f)
		if err != nil {
			return nil, err
		}
		o.Hash, o.Size = h, size
	}
	return []watcher.Observation{o}, nil
}

// removeStaleTemps deletes staged downloads that are a day old, in the
// staging directory and in the folder root (where earlier versions staged
// them): younger ones are kept so an interrupted transfer resumes. Age
// is the mtime: a small staged file, complete, carries its op's, and is
// fetched again if it was old.
func (n *Node) removeStaleTemps() {
	for _, dir := range []string{stagingDir, "."} {
		d, err := n.folderRoot().Open(dir)
		if err != nil {
			continue
		}
		entries, err := d.ReadDir(-1)
		d.Close()
		if err != nil {
			continue
		}
		for _, e := range entries {
			if e.IsDir() || !strings.HasPrefix(e.Name(), TempPrefix) {
				continue
			}
			if info, err := e.Info(); err == nil && n.clock.Now().Sub(info.ModTime()) > 24*time.Hour {
				n.folderRoot().Remove(path.Join(dir, e.Name()))
			}
		}
	}
}

// freshen replaces the observations that no longer describe the disk with
// what is there now. The watcher looked before the commit lock was taken;
// an op applied meanwhile may have placed, replaced or removed the file,
// and recording the older look would undo that op: a file a peer just
// created would be recorded as deleted, or a peer's edit reverted. Under
// the lock nothing but the user changes the folder, so what is read here
// is what the op log may safely take as this device's change.
func (n *Node) freshen(ctx context.Context, obs []watcher.Observation) ([]watcher.Observation, error) {
	var out []watcher.Observation
	replaced := map[string]bool{}
	seen := newLookups()
	for i, o := range obs {
		st, err := n.lstat(o.Path, seen)
		if err != nil && !notThere(err) {
			return nil, err
		}
		if stillTrue(o, st, err) {
			if out != nil {
				out = append(out, o)
			}
			continue
		}
		if out == nil {
			out = append(make([]watcher.Observation, 0, len(obs)), obs[:i]...)
		}
		now, err := n.observe(ctx, o.Path)
		if err != nil {
			if notThere(err) {
				continue // gone while hashed: the watcher reports it again
			}
			return nil, err
		}
		for _, f := range now {
			replaced[f.Path] = true
		}
		out = append(out, now...)
	}
	if out == nil {
		return obs, nil
	}
	if len(replaced) > 0 {
		// A fresh look at a missing directory lists its recorded children:
		// an older look at one of them in the same batch is dropped.
		kept := make([]watcher.Observation, 0, len(out))
		seen := map[string]bool{}
		for i := len(out) - 1; i >= 0; i-- {
			if !seen[out[i].Path] {
				seen[out[i].Path] = true
				kept = append(kept, out[i])
			}
		}
		slices.Reverse(kept)
		out = kept
	}
	return out, nil
}

// stillTrue reports whether observation o matches what Lstat (st, err)
// finds at its path now.
func stillTrue(o watcher.Observation, st fs.FileInfo, err error) bool {
	if err != nil {
		return !o.Exists
	}
	if !o.Exists || o.Dir != st.IsDir() {
		return false
	}
	if o.Dir {
		return true
	}
	return st.Size() == o.Size && st.ModTime().UnixNano() == o.MTime && watcher.InodeOf(st) == o.Inode && uint32(st.Mode().Perm()) == o.Mode
}

// placingSet is the files an apply has placed whose records are not yet
// in the database, as the watcher would find them on disk, and the paths
// of every live record the apply is about to write.
//
// The paths matter to the watcher's Under: a directory the apply created
// is watched only once the watcher gets to it, and what is removed from it
// before then makes no event. The watcher then lists the directory and
// reports gone what Under names and the listing lacks; a file placed
// there and removed before the watch, its record not yet written, must be
// among them, or its removal is never recorded.
type placingSet struct {
	mu sync.Mutex
	m  map[string]watcher.Known
	// paths holds the paths of the live records of the ops being carried
	// out (files and directories), noted before their effects run: a
	// path is listed from the moment something may appear there.
	paths map[string]struct{}
}

// expect notes the paths of the live records among rows, before the
// effects that make them are carried out.
func (s *placingSet) expect(rows []state.File) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expectLocked(rows)
}

func (s *placingSet) expectLocked(rows []state.File) {
	for _, r := range rows {
		if r.Deleted {
			continue
		}
		if s.paths == nil {
			s.paths = map[string]struct{}{}
		}
		s.paths[r.Path] = struct{}{}
	}
}

// add notes the live file records among rows, whose effects were carried
// out.
func (s *placingSet) add(rows []state.File) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expectLocked(rows)
	for _, r := range rows {
		if r.Deleted || r.Dir {
			continue
		}
		if s.m == nil {
			s.m = map[string]watcher.Known{}
		}
		s.m[r.Path] = watcher.Known{Size: r.Size, MTime: r.MTime, Inode: r.Inode, Mode: r.Mode, Hash: r.Hash}
	}
}

func (s *placingSet) get(p string) (watcher.Known, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, ok := s.m[p]
	return k, ok
}

// under returns the noted paths strictly under dir ("" for all).
func (s *placingSet) under(dir string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for p := range s.paths {
		if dir == "" || (len(p) > len(dir) && p[len(dir)] == '/' && strings.HasPrefix(p, dir)) {
			out = append(out, p)
		}
	}
	return out
}

// reset forgets every entry: the records are in the database now, or the
// apply gave up and its ops stay pending.
func (s *placingSet) reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m, s.paths = nil, nil
}

// dbIndex lets the watcher read what the node has recorded, and what an
// apply in progress is about to record: a file the node has just placed
// is then not taken for a change, hashed and reported only to be found
// equal to its record.
type dbIndex struct {
	db      stateStore
	placing *placingSet
	// nfc looks names up in NFC, the form they are recorded in, for a
	// folder that keeps them in another form (HFS+ keeps NFD).
	nfc bool
}

func (x dbIndex) Lookup(path string) (watcher.Known, bool) {
	if x.nfc {
		path = norm.NFC.String(path)
	}
	if k, ok := x.placing.get(path); ok {
		return k, true
	}
	f, ok, err := x.db.File(context.Background(), path)
	if err != nil || !ok || f.Deleted {
		return watcher.Known{}, false
	}
	return knownOf(f), true
}

// LookupAll implements watcher.BatchIndex: the records the apply is
// about to write, then the database's, read at once.
func (x dbIndex) LookupAll(paths []string) map[string]watcher.Known {
	out := make(map[string]watcher.Known, len(paths))
	held := make(map[string][]string, len(paths)) // the form recorded: as asked for
	var ask []string
	for _, p := range paths {
		q := p
		if x.nfc {
			q = norm.NFC.String(p)
		}
		if k, ok := x.placing.get(q); ok {
			out[p] = k
			continue
		}
		if len(held[q]) == 0 {
			ask = append(ask, q)
		}
		held[q] = append(held[q], p)
	}
	files, err := x.db.FilesAt(context.Background(), ask)
	if err != nil {
		// What the database cannot say in one read, it may one at a time.
		for _, q := range ask {
			for _, p := range held[q] {
				if k, ok := x.Lookup(p); ok {
					out[p] = k
				}
			}
		}
		return out
	}
	for q, f := range files {
		if !f.Deleted {
			for _, p := range held[q] {
				out[p] = knownOf(f)
			}
		}
	}
	return out
}

// knownOf is what the watcher knows of a live record.
func knownOf(f state.File) watcher.Known {
	return watcher.Known{Dir: f.Dir, Size: f.Size, MTime: f.MTime, Inode: f.Inode, Hash: f.Hash, Mode: f.Mode}
}

// spellings returns dir as records may hold it: as given and, on a folder
// whose names are taken in NFC (dbIndex.nfc), in NFC too. A name is
// recorded in NFC there unless it came from a peer in another form (see
// heldForm), and the disk may list it in either.
func (x dbIndex) spellings(dir string) []string {
	if x.nfc {
		if c := norm.NFC.String(dir); c != dir {
			return []string{dir, c}
		}
	}
	return []string{dir}
}

// Children returns the live records directly in dir with, while an apply
// is in progress, the files it has placed there and the paths it is
// about to record (with no record yet: whatever is there is looked at;
// one deeper down makes its first directory Implied).
func (x dbIndex) Children(dir string) (map[string]watcher.Known, error) {
	out := map[string]watcher.Known{}
	for _, d := range x.spellings(dir) {
		err := x.db.Children(context.Background(), d, func(c state.Child) error {
			if k, ok := out[c.Name]; !ok || k.Implied {
				out[c.Name] = watcher.Known{Dir: c.Dir, Size: c.Size, MTime: c.MTime, Inode: c.Inode, Hash: c.Hash, Mode: c.Mode, Implied: c.Implied}
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		prefix := ""
		if d != "" {
			prefix = d + "/"
		}
		for _, p := range x.placing.under(d) {
			name, _, nested := strings.Cut(p[len(prefix):], "/")
			_, held := out[name]
			if nested {
				if !held {
					out[name] = watcher.Known{Dir: true, Implied: true}
				}
			} else if placed, ok := x.placing.get(p); ok {
				out[name] = placed
			} else if !held {
				out[name] = watcher.Known{}
			}
		}
	}
	return out, nil
}

// Under lists the live records under dir and, while an apply is in
// progress, the paths it is about to record there (see placingSet).
func (x dbIndex) Under(dir string) []string {
	var out []string
	for _, d := range x.spellings(dir) {
		x.db.FilesUnder(context.Background(), d, func(f state.File) error {
			out = append(out, f.Path)
			return nil
		})
		out = append(out, x.placing.under(d)...)
	}
	slices.Sort(out)
	return slices.Compact(out)
}
