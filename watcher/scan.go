package watcher

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"slices"
	"sort"
	"syscall"
	"time"

	"golang.org/x/text/unicode/norm"

	"github.com/drive-node/drive-node/content"
)

// sig is what tells whether a file changed without reading it.
type sig struct {
	size, mtime int64
	inode       uint64
}

func sigOf(st fs.FileInfo) sig {
	return sig{size: st.Size(), mtime: st.ModTime().UnixNano(), inode: InodeOf(st)}
}

// matches reports whether k records the file s describes, on a file
// system that keeps mtimes in steps of step (see sameMTime). An inode of 0
// on either side means "unknown" and matches.
func (s sig) matches(k Known, step time.Duration) bool {
	return !k.Dir && k.Size == s.size && sameMTime(k.MTime, s.mtime, step) &&
		(k.Inode == 0 || s.inode == 0 || k.Inode == s.inode)
}

// sameMTime reports whether the mtimes a and b (unix nanoseconds) fall in
// the same step of a file system that keeps times in steps of step; a
// step of at most 1 ns compares them exactly.
func sameMTime(a, b int64, step time.Duration) bool {
	if step <= 1 {
		return a == b
	}
	return floorTo(a, int64(step)) == floorTo(b, int64(step))
}

// floorTo truncates t toward minus infinity to a multiple of step, which
// is positive.
func floorTo(t, step int64) int64 {
	return t - ((t%step)+step)%step
}

// writtenBy is the latest time the file st describes may have been
// written: its mtime or, where the file system keeps times in steps of
// MTimePrecision, the end of its mtime's step.
func (w *Watcher) writtenBy(st fs.FileInfo) time.Time {
	step := w.o.MTimePrecision
	if step <= 1 {
		return st.ModTime()
	}
	return time.Unix(0, floorTo(st.ModTime().UnixNano(), int64(step))).Add(step)
}

// look is an earlier look at a file that was not stable yet.
type look struct {
	sig sig
	at  time.Time
	via string // the name the file was reached by, if not its own (see lookFile)
	// gone marks a vanished path held back once (see loop.holdGone), to
	// be reported with a file not yet stable that may be it, renamed.
	gone bool
}

func (w *Watcher) fileObservation(rel string, st fs.FileInfo) Observation {
	return Observation{Path: rel, Exists: true, Size: st.Size(), Mode: w.modeOf(st), MTime: st.ModTime().UnixNano(), Inode: InodeOf(st)}
}

func (w *Watcher) dirObservation(rel string, st fs.FileInfo) Observation {
	return Observation{Path: rel, Exists: true, Dir: true, Mode: w.modeOf(st), MTime: st.ModTime().UnixNano(), Inode: InodeOf(st)}
}

// modeOf returns the permission bits st shows, or 0 (not known) where the
// file system keeps none.
func (w *Watcher) modeOf(st fs.FileInfo) uint32 {
	if w.o.IgnoreModes {
		return 0
	}
	return uint32(st.Mode().Perm())
}

func notExist(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

// lookFile decides about the regular file rel, which st describes, in its
// directory dir (see openDir), reached there by its own name or, if via is
// not "", by that other spelling of it, which the file system takes for it
// (see lookPaths): then the inode number, which may be the spelling's, is
// left unknown (0). It returns the observation to report; or nil and nil
// when the file matches the Index; or again when the file is not stable
// yet and must be looked at again StableFor later (or was replaced while it
// was opened). prev is the previous look that found it unstable, if any.
// A file that cannot be read is logged and left as recorded: the error is
// then errUnread. Any other error is ctx's, cancelled.
func (w *Watcher) lookFile(ctx context.Context, dir *os.Root, rel, via string, st fs.FileInfo, prev *look, rec record) (o *Observation, again *look, err error) {
	name := path.Base(rel)
	if via != "" {
		name = via
	}
	sigAt := func(st fs.FileInfo) sig {
		s := sigOf(st)
		if via != "" {
			s.inode = 0
		}
		return s
	}
	later := func(s sig, at time.Time) *look { return &look{sig: s, at: at, via: via} }
	cur := sigAt(st)
	obs := w.fileObservation(rel, st)
	obs.Inode = cur.inode
	if k, ok := rec.k, rec.ok; ok && cur.matches(k, w.o.MTimePrecision) {
		if k.Mode == 0 || k.Mode == obs.Mode || w.o.IgnoreModes {
			return nil, nil, nil
		}
		if !k.Hash.IsZero() { // permission bits alone changed
			obs.Hash = k.Hash
			return reported(obs), nil, nil
		}
	}
	now := w.clk.Now()
	quiet := now.Sub(w.writtenBy(st)) >= w.o.StableFor ||
		(prev != nil && prev.sig == cur && now.Sub(prev.at) >= w.o.StableFor)
	if !quiet {
		return nil, later(cur, now), nil
	}
	if w.onHash != nil {
		w.onHash(rel, st)
	}
	h, n, err := hashIn(ctx, w.o.Hash, dir, rel, name, st)
	if err != nil {
		if ctx.Err() != nil {
			return nil, nil, ctx.Err()
		}
		if notExist(err) || errors.Is(err, errReplaced) { // look again: it will be reported gone, or as what is there now
			return nil, later(cur, now), nil
		}
		w.log.Warn("cannot read a file; it stays as recorded until it can be read", "path", rel, "err", err)
		return nil, nil, errUnread
	}
	after, err := dir.Lstat(name)
	if err != nil {
		if notExist(err) {
			return nil, later(cur, now), nil
		}
		w.log.Warn("cannot look at a file", "path", rel, "err", err)
		return nil, nil, errUnread
	}
	if as := sigAt(after); as != cur || n != cur.size || !after.Mode().IsRegular() {
		// Changed while it was hashed: hash it again once it is quiet.
		return nil, later(as, w.clk.Now()), nil
	}
	obs.Hash = h
	return reported(obs), nil, nil
}

// reported returns a copy of o on the heap. lookFile's own obs stays
// off it: most files a scan looks at match their record and report nothing.
func reported(o Observation) *Observation { return &o }

// errUnread means that a file could not be read (or looked at) and is left
// as recorded; lookFile has logged why.
var errUnread = errors.New("left as recorded")

// walkResult accumulates what a walk found.
type walkResult struct {
	present  []Observation       // existing paths that differ from the Index
	unstable map[string]look     // files to look at again
	seen     map[string]bool     // paths looked at by name, and directories walked
	dirs     map[string]bool     // directories walked: what is inside was looked at
	opaque   map[string]bool     // directories whose contents could not be listed
	gone     []Observation       // vanished paths
	goneSet  map[string]struct{} // paths in gone
	// flush, when set, sends what was found so far if it is scanFlush
	// observations or more; the walk calls it between directories.
	flush func() error
	// base, when set, is what the previous scan left: directories it
	// settles are not compared with the Index (see lostScan).
	base *scanBase
	// next, when set, is filled in for the next rescan for lost events.
	next *scanBase
	// listed and compared count the directories listed, and those of
	// them compared with the Index.
	listed, compared int
}

// scanFlush is how many observations a full scan holds before it sends
// them, so that a scan's memory does not follow the folder's size. A
// rename is reported as one only when both of its sides fall in the same
// sending; beyond that it is a removal and a new file, which converge
// alike.
const scanFlush = 8192

func newWalkResult() *walkResult {
	return &walkResult{unstable: map[string]look{}, seen: map[string]bool{}, dirs: map[string]bool{}, opaque: map[string]bool{}, goneSet: map[string]struct{}{}}
}

// hidden reports whether p lies inside a directory that could not be
// listed, so nothing is known about it.
func (r *walkResult) hidden(p string) bool {
	for p != "" {
		p = parentOf(p)
		if r.opaque[p] {
			return true
		}
	}
	return false
}

func (r *walkResult) markGone(p string) {
	if r.seen[p] {
		return
	}
	if _, dup := r.goneSet[p]; !dup {
		r.goneSet[p] = struct{}{}
		r.gone = append(r.gone, Observation{Path: p})
	}
}

// walked reports whether p lies inside a directory the walk went through:
// what is there was looked at already.
func (r *walkResult) walked(p string) bool {
	for p != "" {
		p = parentOf(p)
		if r.dirs[p] {
			return true
		}
	}
	return false
}

// record is what the Index holds at a path: k, if ok.
type record struct {
	k  Known
	ok bool
}

// lookup returns the Index's record at p.
func (w *Watcher) lookup(p string) record {
	k, ok := w.o.Index.Lookup(p)
	return record{k, ok}
}

// goneWith marks p gone, with every live record under it, except what
// the ignore rules cover.
func (w *Watcher) goneWith(p string, r *walkResult) {
	if !w.ignoredRecord(p) {
		r.markGone(p)
	}
	w.goneUnder(p, r)
}

// goneUnder marks every live record under p gone, except what the
// ignore rules cover.
func (w *Watcher) goneUnder(p string, r *walkResult) {
	for _, c := range w.o.Index.Under(p) {
		if !w.ignoredRecord(c) {
			r.markGone(c)
		}
	}
}

// recordsIn is what the Index holds directly in a directory a walk lists:
// each name found is taken from it, and what is left at the end is gone.
type recordsIn struct {
	w     *Watcher
	dir   string
	kids  map[string]Known
	known bool // kids could be read: what is left in it is gone
}

func (w *Watcher) recordsIn(dir string) *recordsIn {
	kids, err := w.o.Index.Children(dir)
	if err != nil {
		w.log.Warn("cannot read what is recorded in a directory; nothing in it is reported gone this time", "path", dir, "err", err)
		return &recordsIn{w: w, dir: dir}
	}
	return &recordsIn{w: w, dir: dir, kids: kids, known: true}
}

// take returns the record of the listed name (at path p) and forgets it.
func (x *recordsIn) take(name, p string) record {
	if k, ok := x.kids[name]; ok {
		delete(x.kids, name)
		return record{k, !k.Implied}
	}
	if x.known && norm.NFC.IsNormalString(name) {
		return record{} // not recorded
	}
	// Perhaps held under another form of the name, which the Index
	// takes for this one (it records names in NFC), or the directory's
	// records could not be read.
	rec := x.w.lookup(p)
	if rec.ok && x.known {
		delete(x.kids, norm.NFC.String(name))
	}
	return rec
}

// rest marks what was not taken gone, with what is recorded under it.
func (x *recordsIn) rest(r *walkResult) {
	for name, k := range x.kids {
		p := name
		if x.dir != "" {
			p = x.dir + "/" + name
		}
		if k.Implied {
			x.w.goneUnder(p, r)
		} else {
			x.w.goneWith(p, r)
		}
	}
}

// walkTree records the directory rel (which st describes; nil for the
// root), open as dir (see openDir), whose record is rec, and walks
// everything below it, adding watches to ws if not nil.
func (w *Watcher) walkTree(ctx context.Context, rel string, dir *os.Root, st fs.FileInfo, rec record, r *walkResult, ws *watchSet) error {
	r.seen[rel], r.dirs[rel] = true, true
	if rel != "" && (!rec.ok || !rec.k.Dir) {
		r.present = append(r.present, w.dirObservation(rel, st))
	}
	// Watch before listing, so nothing created in between is missed.
	ws.add(rel, dir)
	if st == nil && (r.base != nil || r.next != nil) {
		st, _ = dir.Stat(".") // the folder itself; nil, not settled, if it fails
	}
	return w.walkDir(ctx, rel, dir, st, r.base.settled(rel, st, rec), r, ws)
}

// walkDir lists the directory rel, which info describes (nil if unknown),
// open as dir, and looks at what it holds, walking the directories in it.
// Unless settled (see scanBase.settled), the listing is compared with the
// Index: what it lacks is gone. When settled, a file whose ctime shows it
// unchanged since the previous scan began is only counted (Options.Looked).
func (w *Watcher) walkDir(ctx context.Context, rel string, dir *os.Root, info fs.FileInfo, settled bool, r *walkResult, ws *watchSet) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	entries, err := w.readDir(dir)
	if err != nil {
		if rel == "" {
			// Never report everything gone because the root is unreadable.
			if cerr := w.checkRoot(); cerr != nil {
				return cerr
			}
			return &fs.PathError{Op: "watcher: read folder", Path: w.root, Err: err}
		}
		r.opaque[rel] = true
		if !notExist(err) {
			w.log.Warn("cannot read a directory; what is recorded under it stays as it is", "path", rel, "err", err)
		}
		return nil
	}
	r.listed++
	var recs *recordsIn
	if !settled {
		recs = w.recordsIn(rel)
		r.compared++
	}
	// clean: everything in the directory was seen and compared, so the
	// next rescan for lost events may settle it.
	clean := settled || recs.known
	for _, e := range entries {
		child := e.Name()
		if rel != "" {
			child = rel + "/" + child
		}
		t := e.Type()
		if w.o.Ignore(child, t.IsDir()) {
			if t.IsDir() {
				ws.drop(child) // ignored since it was watched
			}
			continue
		}
		if !t.IsDir() && !t.IsRegular() {
			w.skip(child, t)
			continue
		}
		rec := recordedDir
		if !settled {
			rec = recs.take(e.Name(), child)
			if rec.k.Dir && !t.IsDir() {
				// A directory replaced by a file: what was recorded in
				// it is gone.
				w.goneUnder(child, r)
			}
		}
		// A directory is opened through this one, never by its path, so
		// that what is walked below is what is in the folder.
		var sub *os.Root
		var st fs.FileInfo
		var err error
		if t.IsDir() {
			sub, st, err = openDir(dir, e.Name(), child)
		} else {
			st, err = e.Info()
		}
		if err != nil {
			clean = false
			if settled {
				rec = w.lookup(child)
			}
			if notExist(err) { // gone since the listing
				if rec.ok {
					w.goneWith(child, r)
				} else if rec.k.Implied {
					w.goneUnder(child, r)
				}
			} else { // unknown state: do not report it gone
				r.opaque[child] = true
				w.log.Warn("cannot look at a path", "path", child, "err", err)
			}
			continue
		}
		if sub != nil {
			err := w.walkTree(ctx, child, sub, st, rec, r, ws)
			sub.Close()
			if err != nil {
				return err
			}
			continue
		}
		if w.o.Looked != nil {
			w.o.Looked()
		}
		if settled {
			if r.base.unchanged(st) {
				continue
			}
			if rec = w.lookup(child); rec.k.Dir {
				w.goneUnder(child, r)
			}
		}
		o, again, err := w.lookFile(ctx, dir, child, "", st, nil, rec)
		switch {
		case errors.Is(err, errUnread):
			clean = false
		case err != nil:
			return err
		case again != nil:
			clean = false
			r.unstable[child] = *again
		case o != nil:
			r.present = append(r.present, *o)
		}
	}
	if recs != nil && recs.known {
		recs.rest(r)
	}
	if clean {
		r.next.done(rel, info)
	}
	if r.flush != nil {
		return r.flush()
	}
	return nil
}

// lookPaths looks at paths that had events or were not stable before
// (prevs holds the earlier looks). A new or replaced directory is walked
// (and watched, if ws is not nil); a vanished path is reported with every
// recorded path under it, and so is a path whose parent is no longer a
// directory. With Options.ExactNames, a path its directory does not list
// under exactly that name is gone too, and the listed names the file
// system may take it for are looked at. It fails if the folder is gone or
// replaced.
func (w *Watcher) lookPaths(ctx context.Context, paths []string, prevs map[string]look, ws *watchSet, out chan<- []Observation) (*walkResult, error) {
	root, err := w.openRoot()
	if err != nil {
		return nil, err
	}
	defer root.Close()
	dirs := w.newDirChain(root)
	defer dirs.close()
	sort.Strings(paths) // ancestors first: a walk covers what is below
	r := newWalkResult()
	if out != nil {
		// A directory moved in with a library inside is walked here:
		// what it holds is sent as the walk goes. What vanished stays
		// for the caller, which may hold it back (see loop.holdGone).
		r.flush = func() error {
			if len(r.present) < scanFlush {
				return nil
			}
			err := w.send(ctx, out, r.present, nil)
			r.present = nil
			return err
		}
	}
	vanished := func(p string) {
		ws.drop(p)
		if !w.ignoredRecord(p) {
			r.markGone(p)
		}
		for _, c := range w.o.Index.Under(p) {
			if !w.ignoredRecord(c) {
				r.markGone(c)
			}
		}
	}
	// With ExactNames, spelt maps a listed path that no event named, looked
	// at because an event named it under another spelling (see aliasesOf),
	// to that spelling's name.
	var spelt map[string]string
	if w.o.ExactNames {
		spelt = map[string]string{}
	}
	named := len(paths) // paths[:named] are the caller's, sorted
	for i := 0; i < len(paths); i++ {
		p := paths[i]
		if r.seen[p] || r.walked(p) || r.hidden(p) {
			continue
		}
		if _, done := r.goneSet[p]; done {
			continue
		}
		// Through its parent, which must be a directory all the way down
		// from the folder: else p is gone.
		parent, err := dirs.open(parentOf(p))
		if err == nil {
			err = dirs.exact(parent, parentOf(p), path.Base(p))
		}
		var st fs.FileInfo
		if err == nil {
			st, err = parent.Lstat(path.Base(p))
		}
		var via string
		if w.o.ExactNames && err == nil && st.Mode().IsRegular() {
			// A file written through another spelling, which the file
			// system took for p: p may show what was there before
			// (exfat-fuse keeps each spelling's attributes apart, for a
			// second), so it is looked at through that spelling.
			if via = spelt[p]; via == "" {
				via = prevs[p].via
			}
			if via != "" {
				if vst, verr := parent.Lstat(via); verr == nil && vst.Mode().IsRegular() {
					st = vst
				} else {
					via = ""
				}
			}
		}
		if err == nil && w.o.Ignore(p, st.IsDir()) {
			ws.drop(p)
			continue // an event named it before its type was known
		}
		// New or replaced directory: it may have been filled before its
		// watch existed, so it is walked, opened as the parent was.
		var dir *os.Root
		if err == nil && st.IsDir() && !ws.has(p) {
			if dir, err = dirs.open(p); err == nil {
				st, err = dir.Stat(".")
			}
		}
		switch {
		case err != nil && notExist(err):
			vanished(p)
			if more := w.aliasesOf(dirs, p, paths[:named], spelt); len(more) > 0 {
				paths = append(paths[:len(paths):len(paths)], more...) // a copy: paths is the caller's
			}
		case err != nil:
			w.log.Warn("cannot look at a changed path", "path", p, "err", err)
		case dir != nil:
			if err := w.walkTree(ctx, p, dir, st, w.lookup(p), r, ws); err != nil {
				return nil, err
			}
		case st.IsDir(): // a known, watched directory: only itself changed
			r.seen[p] = true
			if k, ok := w.o.Index.Lookup(p); !ok || !k.Dir {
				r.present = append(r.present, w.dirObservation(p, st))
			}
		case st.Mode().IsRegular():
			r.seen[p] = true
			var prev *look
			if lk, ok := prevs[p]; ok {
				prev = &lk
			}
			o, again, err := w.lookFile(ctx, parent, p, via, st, prev, w.lookup(p))
			switch {
			case errors.Is(err, errUnread): // left as recorded
			case err != nil:
				return nil, err
			case again != nil:
				r.unstable[p] = *again
			case o != nil:
				r.present = append(r.present, *o)
			}
		default: // a symlink or special file is not synced: what was here is gone
			w.skip(p, st.Mode().Type())
			vanished(p)
		}
	}
	return r, nil
}

// aliasesOf returns the listed paths, not ignored, that the file system may
// have taken p for, p being named by an event and not listed (see
// dirChain.aliases): what changed is there. named is the paths lookPaths
// was given, sorted. If there is one such path and it is not among them,
// it is noted in spelt, to be looked at through p's spelling.
func (w *Watcher) aliasesOf(dirs *dirChain, p string, named []string, spelt map[string]string) []string {
	var out []string
	for _, a := range dirs.aliases(p) {
		if !w.ignored(a) {
			out = append(out, a)
		}
	}
	if len(out) == 1 {
		if _, evented := slices.BinarySearch(named, out[0]); !evented {
			spelt[out[0]] = path.Base(p)
		}
	}
	return out
}

// Scan walks the whole folder once and sends, in slices of at most 1000,
// every path that differs from the Index: new and changed files (hashed),
// new directories, and recorded paths that are gone. Files still being
// written are waited for, for a while; any still unstable after that are
// not reported (the next event or scan does). What it found is sent as the
// walk goes, every scanFlush observations, so a scan of a large folder
// holds little. It returns an error if the folder is gone, replaced or
// unreadable (having sent nothing, if it was so from the start). Scan may
// run concurrently with Run; Run does its own scans (see Rescan).
func (w *Watcher) Scan(ctx context.Context, out chan<- []Observation) error {
	left, _, err := w.scan(ctx, out, nil, w.scanWait(), nil, slog.LevelInfo)
	if err != nil {
		return err
	}
	if len(left) > 0 {
		w.log.Info("files still being written were not reported yet", "count", len(left))
	}
	return nil
}

// scanWait is how long a full scan waits for files being written.
func (w *Watcher) scanWait() time.Duration { return max(2*time.Second, 20*w.o.StableFor) }

// scan walks the whole folder, waits up to wait for unstable files, sends
// the result, and returns the files still unstable. With base, what the
// previous scan of a Run left, it is a rescan for lost events: the
// directories base settles are not compared with the Index (see
// lostScan), and what it listed and compared is logged at level. A scan
// in a Run (ws not nil) returns what the next such rescan needs, or nil
// if the folder's file system cannot tell.
func (w *Watcher) scan(ctx context.Context, out chan<- []Observation, ws *watchSet, wait time.Duration, base *scanBase, level slog.Level) (map[string]look, *scanBase, error) {
	began := w.clk.Now()
	root, err := w.openRoot()
	if err != nil {
		return nil, nil, err
	}
	r := newWalkResult()
	r.base = base
	if ws != nil {
		// The walk tries again every directory without a watch.
		ws.forgetDropped()
		ws.unwatched = 0
		if st, err := root.Stat("."); err == nil {
			r.next = w.newScanBase(st, began)
		}
	}
	r.flush = func() error {
		if len(r.present)+len(r.gone) < scanFlush {
			return nil
		}
		err := w.send(ctx, out, r.present, r.gone)
		r.present, r.gone = nil, nil
		clear(r.goneSet)
		return err
	}
	err = w.walkTree(ctx, "", root, nil, record{}, r, ws)
	root.Close()
	if err != nil {
		return nil, nil, err
	}
	if base != nil {
		w.log.Log(ctx, level, "rescanned the folder, comparing what changed since the last scan", "directories", r.listed, "compared", r.compared)
	}
	present, gone := r.present, r.gone

	unstable := r.unstable
	deadline := w.clk.Now().Add(wait)
	for len(unstable) > 0 {
		next := earliest(unstable).Add(w.o.StableFor)
		if next.After(deadline) {
			break
		}
		if err := w.sleepUntil(ctx, next); err != nil {
			return nil, nil, err
		}
		due, prevs := takeDue(unstable, w.clk.Now(), w.o.StableFor)
		rr, err := w.lookPaths(ctx, due, prevs, ws, out)
		if err != nil {
			return nil, nil, err
		}
		present = append(present, rr.present...)
		gone = append(gone, rr.gone...)
		for p, lk := range rr.unstable {
			unstable[p] = lk
		}
	}
	return unstable, r.next, w.send(ctx, out, present, gone)
}

// earliest returns the earliest look in m, which is not empty.
func earliest(m map[string]look) time.Time {
	var t time.Time
	for _, lk := range m {
		if t.IsZero() || lk.at.Before(t) {
			t = lk.at
		}
	}
	return t
}

// takeDue removes from m the looks at least stableFor old at now.
func takeDue(m map[string]look, now time.Time, stableFor time.Duration) ([]string, map[string]look) {
	var due []string
	prevs := map[string]look{}
	for p, lk := range m {
		if now.Sub(lk.at) >= stableFor {
			due = append(due, p)
			prevs[p] = lk
			delete(m, p)
		}
	}
	return due, prevs
}

func (w *Watcher) sleepUntil(ctx context.Context, t time.Time) error {
	timer := w.clk.NewTimer(t.Sub(w.clk.Now()))
	defer timer.Stop()
	select {
	case <-timer.C():
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// send arranges observations (see the package comment for the order) and
// sends them in slices of at most scanBatch.
func (w *Watcher) send(ctx context.Context, out chan<- []Observation, present, gone []Observation) error {
	list, joined := w.arrange(present, gone)
	for len(list) > 0 {
		n := min(len(list), scanBatch)
		if n < len(list) && n > 1 && joined[n-1] {
			n-- // do not split a likely rename
		}
		select {
		case out <- list[:n:n]:
		case <-ctx.Done():
			return ctx.Err()
		}
		list, joined = list[n:], joined[n:]
	}
	return nil
}

// lookupAll returns a lookup of the Index's records at the paths of obs:
// read at once, where the Index can (BatchIndex), then answered from
// what was read.
func (w *Watcher) lookupAll(obs ...[]Observation) func(string) (Known, bool) {
	bi, ok := w.o.Index.(BatchIndex)
	if !ok {
		return w.o.Index.Lookup
	}
	var paths []string
	for _, list := range obs {
		for _, o := range list {
			paths = append(paths, o.Path)
		}
	}
	found := bi.LookupAll(paths)
	return func(p string) (Known, bool) {
		k, ok := found[p]
		return k, ok
	}
}

// arrange orders observations for sending; joined[i] is true when list[i]
// and list[i+1] must travel in the same slice.
func (w *Watcher) arrange(present, gone []Observation) (list []Observation, joined []bool) {
	if len(present)+len(gone) == 0 {
		return nil, nil
	}
	have := make(map[string]bool, len(present))
	var pres []Observation
	for _, o := range present {
		if !have[o.Path] {
			have[o.Path] = true
			pres = append(pres, o)
		}
	}
	var gs []Observation
	for _, o := range gone {
		if !have[o.Path] {
			have[o.Path] = true
			gs = append(gs, o)
		}
	}
	sort.Slice(pres, func(i, j int) bool { return pres[i].Path < pres[j].Path })
	sort.Slice(gs, func(i, j int) bool { return gs[i].Path > gs[j].Path })
	lookup := w.lookupAll(pres, gs)

	// Recorded content of vanished files, to put a moved file next to
	// where it came from.
	from := map[content.Hash][]int{}
	for i, g := range gs {
		if k, ok := lookup(g.Path); ok && !k.Dir && !k.Hash.IsZero() {
			from[k.Hash] = append(from[k.Hash], i)
		}
	}
	used := make([]bool, len(gs))
	list = make([]Observation, 0, len(pres)+len(gs))
	joined = make([]bool, 0, len(pres)+len(gs))
	var late []Observation
	for _, o := range pres {
		if o.Dir {
			list, joined = append(list, o), append(joined, false)
			continue
		}
		k, known := lookup(o.Path)
		if known && k.Dir { // a directory became a file: after what was in it
			late = append(late, o)
			continue
		}
		list, joined = append(list, o), append(joined, false)
		if known {
			continue
		}
		if c := from[o.Hash]; len(c) > 0 {
			from[o.Hash] = c[1:]
			used[c[0]] = true
			joined[len(joined)-1] = true
			list, joined = append(list, gs[c[0]]), append(joined, false)
		}
	}
	for i, g := range gs {
		if !used[i] {
			list, joined = append(list, g), append(joined, false)
		}
	}
	for _, o := range late {
		list, joined = append(list, o), append(joined, false)
	}
	return list, joined
}
