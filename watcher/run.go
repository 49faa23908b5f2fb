package watcher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/fsnotify/fsnotify"
)

// watchSet tracks the directories with an fsnotify watch. It belongs to
// one Run loop; a nil *watchSet watches nothing (a standalone Scan).
type watchSet struct {
	w        *Watcher
	fsw      *fsnotify.Watcher
	dirs     map[string]bool                // relative dirs with a watch
	kids     map[string]map[string]struct{} // dir -> watched dirs directly in it
	failures int
	// unwatched counts the watches that failed since the latest scan of
	// the whole folder began (which tries again every directory it
	// lists): while it is not zero, some directory makes no event, and the
	// periodic rescan comes sooner (see loop.rescanPeriod).
	unwatched int
}

func newWatchSet(w *Watcher, fsw *fsnotify.Watcher) *watchSet {
	return &watchSet{w: w, fsw: fsw, dirs: map[string]bool{}, kids: map[string]map[string]struct{}{}}
}

func (s *watchSet) has(rel string) bool { return s != nil && s.dirs[rel] }

// add watches the directory rel, which dir is open on (see openDir).
func (s *watchSet) add(rel string, dir *os.Root) {
	if s == nil || s.dirs[rel] {
		return
	}
	abs := s.w.abs(rel)
	var err error
	if s.w.failWatch != nil {
		err = s.w.failWatch(rel)
	}
	if err == nil {
		err = s.fsw.Add(abs)
	}
	if err == nil && !s.w.leadsTo(rel, dir) {
		// The path no longer leads to dir: the watch may be behind a
		// symlink swapped in for a parent, outside the folder. What took
		// dir's place is looked at when the events of the swap are.
		_ = s.fsw.Remove(abs)
		err = fmt.Errorf("watcher: watch %s: %w", rel, errReplaced)
	}
	if err != nil {
		s.failures++
		s.unwatched++
		level := slog.LevelDebug
		if s.failures == 1 || s.failures%1000 == 0 {
			level = slog.LevelWarn
		}
		s.w.log.Log(context.Background(), level, "cannot watch a directory; changes in it are found by the periodic rescan",
			"path", rel, "err", err, "failures", s.failures)
		return
	}
	s.dirs[rel] = true
	if rel != "" {
		p := parentOf(rel)
		m := s.kids[p]
		if m == nil {
			m = map[string]struct{}{}
			s.kids[p] = m
		}
		m[rel] = struct{}{}
	}
}

// drop removes the watches on rel and every directory below it. Called
// when something at rel was removed, renamed or created: a directory moved
// elsewhere keeps its kernel watches, and fsnotify would go on naming
// events in it by the old path, so they are removed and the directory is
// watched afresh wherever it is found.
func (s *watchSet) drop(rel string) {
	if s == nil || rel == "" {
		return
	}
	if _, ok := s.dirs[rel]; !ok && len(s.kids[rel]) == 0 {
		return
	}
	stack := []string{rel}
	for len(stack) > 0 {
		d := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for k := range s.kids[d] {
			stack = append(stack, k)
		}
		delete(s.kids, d)
		if s.dirs[d] {
			delete(s.dirs, d)
			// Fails harmlessly when the kernel already dropped it.
			_ = s.fsw.Remove(s.w.abs(d))
		}
	}
	if m := s.kids[parentOf(rel)]; m != nil {
		delete(m, rel)
	}
}

// forgetDropped forgets the watches fsnotify no longer holds: those the
// kernel removed without an event (fsnotify passes on no IN_UNMOUNT or
// IN_IGNORED, as when a file system mounted inside the folder is
// unmounted). The walk that follows a call watches those directories
// again, or counts them among the unwatched.
func (s *watchSet) forgetDropped() {
	held := map[string]struct{}{}
	for _, p := range s.fsw.WatchList() {
		held[p] = struct{}{}
	}
	for rel := range s.dirs {
		if _, ok := held[s.w.abs(rel)]; !ok {
			s.drop(rel)
		}
	}
}

// loop is the state of one Run.
type loop struct {
	w       *Watcher
	ws      *watchSet
	pending map[string]struct{} // paths named by events not yet looked at
	first   time.Time           // first event of the pending group
	last    time.Time           // last event of the pending group
	held    map[string]look     // earlier looks at pending paths
	retry   map[string]look     // files not stable yet, none of them pending
	retryAt time.Time           // when the earliest retry is due; zero if none
	lost    eventLoss           // events the kernel dropped, not yet rescanned for
	// base is what the last scan left for a rescan for lost events; nil
	// if that must be a full scan (see lostScan).
	base *scanBase
	// rescanFrom is when the period before the next periodic rescan
	// began (see rescanDue); zero if the rescan is disabled. The rescan
	// is one more deadline for the loop's only timer, rather than a
	// ticker, so that next names every time the loop will wake.
	rescanFrom time.Time
	// sinceFull counts the periodic rescans since the last full scan.
	sinceFull int
}

// fullRescanEvery is how often a periodic rescan is a full one: every
// sixth. The others compare with the Index only what changed since the
// previous scan (see periodicScan).
const fullRescanEvery = 6

// unwatchedRescanInterval is the longest time between two periodic
// rescans while some directory has no watch. While every directory has
// one, the rescan is a net for what no event reported, which is rare,
// and it comes every RescanInterval (an hour by default): at a million
// files it stats every one, which an idle daemon should not do often.
// Changes in a directory without a watch make no event at all, and the
// rescan is the only way they are found.
const unwatchedRescanInterval = 10 * time.Minute

// rescanPeriod is the time from one periodic rescan to the next.
func (l *loop) rescanPeriod() time.Duration {
	p := l.w.o.RescanInterval
	if l.ws.unwatched > 0 {
		p = min(p, unwatchedRescanInterval)
	}
	return p
}

// rescanDue is when the periodic rescan is due; zero if disabled.
func (l *loop) rescanDue() time.Time {
	if l.rescanFrom.IsZero() {
		return time.Time{}
	}
	return l.rescanFrom.Add(l.rescanPeriod())
}

// After events were lost (the kernel's queue overflowed), the folder is
// rescanned (see loop.lostScan) once the burst that overflowed it is over:
// when no event has come for overflowQuiet, or overflowMaxWait after the first loss, for a
// stream of events that never pauses. A rescan started at the first
// overflow would run while the burst goes on, fill the queue again, and be
// followed by another, one per overflow, each a walk of the whole folder.
const (
	overflowQuiet   = time.Second
	overflowMaxWait = 30 * time.Second
)

// eventLoss records lost events until the rescan that covers them.
type eventLoss struct {
	first, last time.Time // the first loss, and the last loss or event since
	count       int       // losses reported since the first
	// other is set when a loss was an error other than an overflow, of
	// which nothing is known: then the rescan is a full one.
	other bool
}

// note records a loss (or, with loss false, an event) at now; it reports
// whether this is the first loss since the last rescan.
func (e *eventLoss) note(now time.Time, loss bool) (first bool) {
	if loss {
		first = e.first.IsZero()
		if first {
			e.first = now
		}
		e.count++
	}
	if !e.first.IsZero() {
		e.last = now
	}
	return first
}

// due is when the rescan for lost events is due; zero if none was lost.
func (e *eventLoss) due() time.Time {
	if e.first.IsZero() {
		return time.Time{}
	}
	return minTime(e.last.Add(overflowQuiet), e.first.Add(overflowMaxWait))
}

// Run does a full scan, then reports fsnotify events until ctx ends.
// Observations are sent in slices: one per scan or settled group of events
// (split at 1000 observations). Paths named by events are looked at once
// events have paused for Settle (or after 20 Settle periods of unbroken
// events). It returns ctx.Err() when cancelled, or an error if the folder
// cannot be watched or disappears. Only one Run may be active at a time.
func (w *Watcher) Run(ctx context.Context, out chan<- []Observation) error {
	if !w.running.CompareAndSwap(false, true) {
		return errors.New("watcher: Run is already running")
	}
	defer w.running.Store(false)
	if err := w.checkRoot(); err != nil {
		return err
	}
	fsw, err := fsnotify.NewBufferedWatcher(eventBuffer)
	if err != nil {
		return fmt.Errorf("watcher: %w", err)
	}
	defer fsw.Close()
	ws := newWatchSet(w, fsw)
	if err := fsw.Add(w.root); err != nil {
		return fmt.Errorf("watcher: watch folder %s: %w", w.root, err)
	}
	ws.dirs[""] = true

	l := &loop{w: w, ws: ws, pending: map[string]struct{}{}, held: map[string]look{}, retry: map[string]look{}}
	left, base, err := w.scan(ctx, out, ws, w.scanWait(), nil, slog.LevelInfo)
	if err != nil {
		return err
	}
	l.base = base
	l.addRetries(left)
	w.scanOnce.Do(func() { close(w.scanned) })

	if w.o.RescanInterval > 0 {
		l.rescanFrom = w.clk.Now()
	}
	timer := w.clk.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		next := l.next()
		if next.IsZero() {
			timer.Stop()
		} else {
			timer.Reset(max(next.Sub(w.clk.Now()), 0))
		}
		if w.waiting != nil {
			w.waiting(l)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case ev, ok := <-fsw.Events:
			if !ok {
				return errors.New("watcher: event stream closed")
			}
			if err := l.event(ev); err != nil {
				return err
			}
		case err, ok := <-fsw.Errors:
			if !ok {
				return errors.New("watcher: event stream closed")
			}
			if !errors.Is(err, fsnotify.ErrEventOverflow) {
				l.lost.other = true
			}
			if l.lost.note(w.clk.Now(), true) {
				if errors.Is(err, fsnotify.ErrEventOverflow) {
					w.log.Warn("file events overflowed; rescanning the folder once the burst is over")
				} else {
					w.log.Warn("file watching failed; rescanning the folder once the burst is over", "err", err)
				}
			}
		case <-timer.C():
			now := w.clk.Now()
			if due := l.lost.due(); !due.IsZero() && !now.Before(due) {
				if err := l.lostScan(ctx, out, now); err != nil {
					return err
				}
			}
			if due := l.rescanDue(); !due.IsZero() && !now.Before(due) {
				l.rescanFrom = now
				if err := l.periodicScan(ctx, out, now); err != nil {
					return err
				}
			}
			if err := l.flush(ctx, out, now); err != nil {
				return err
			}
		case <-w.rescan.C():
			if err := l.rescanWith(ctx, out, nil, slog.LevelInfo); err != nil {
				return err
			}
		}
	}
}

// event notes a path named by an event.
func (l *loop) event(ev fsnotify.Event) error {
	w := l.w
	rel, ok := w.relOf(ev.Name)
	if !ok {
		if ev.Name == w.root && ev.Has(fsnotify.Remove|fsnotify.Rename) {
			return w.checkRoot()
		}
		return nil
	}
	if w.ignored(rel) {
		return nil
	}
	if ev.Has(fsnotify.Create | fsnotify.Remove | fsnotify.Rename) {
		// Whatever was watched at rel is no longer there.
		l.ws.drop(rel)
	}
	if lk, ok := l.retry[rel]; ok {
		// Looked at with the pending group; retryAt may now be early,
		// which costs one idle wake-up.
		l.held[rel] = lk
		delete(l.retry, rel)
	}
	now := w.clk.Now()
	l.lost.note(now, false)
	l.pending[rel] = struct{}{}
	l.last = now
	if l.first.IsZero() {
		l.first = now
	}
	return nil
}

// flushAt is when the pending group is looked at.
func (l *loop) flushAt() time.Time {
	s := l.w.o.Settle
	return minTime(l.last.Add(s), l.first.Add(maxLatencySettles*s))
}

// next is when the loop must wake next; zero if nothing waits.
func (l *loop) next() time.Time {
	var t time.Time
	if len(l.pending) > 0 {
		t = l.flushAt()
	}
	for _, due := range []time.Time{l.retryAt, l.lost.due(), l.rescanDue()} {
		if !due.IsZero() && (t.IsZero() || due.Before(t)) {
			t = due
		}
	}
	return t
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func (l *loop) addRetries(m map[string]look) {
	for p, lk := range m {
		if _, ok := l.pending[p]; ok {
			if _, ok := l.held[p]; !ok {
				l.held[p] = lk
			}
		} else if _, ok := l.retry[p]; !ok {
			l.retry[p] = lk
		}
	}
	l.updateRetryAt()
}

func (l *loop) updateRetryAt() {
	l.retryAt = time.Time{}
	if len(l.retry) > 0 {
		l.retryAt = earliest(l.retry).Add(l.w.o.StableFor)
	}
}

// flush looks at the pending group if it settled by now and at the files
// due for another look, and sends what differs as one group.
func (l *loop) flush(ctx context.Context, out chan<- []Observation, now time.Time) error {
	var paths []string
	prevs := map[string]look{}
	if len(l.pending) > 0 && !now.Before(l.flushAt()) {
		for p := range l.pending {
			paths = append(paths, p)
			if lk, ok := l.held[p]; ok {
				prevs[p] = lk
			}
		}
		clear(l.pending)
		clear(l.held)
		l.first, l.last = time.Time{}, time.Time{}
	}
	for p, lk := range l.retry {
		if now.Sub(lk.at) >= l.w.o.StableFor {
			paths = append(paths, p)
			prevs[p] = lk
			delete(l.retry, p)
		}
	}
	if len(paths) == 0 {
		l.updateRetryAt()
		return nil
	}
	r, err := l.w.lookPaths(ctx, paths, prevs, l.ws, out)
	if err != nil {
		return err
	}
	gone := l.holdGone(r, prevs, now)
	l.addRetries(r.unstable)
	return l.w.send(ctx, out, r.present, gone)
}

// holdGone returns the vanished paths of r to report now. When one of them
// was a recorded file of the size of a file in r not yet stable, that file
// may be it under a new name, quiet but written too recently to tell (its
// mtime in the file system's last step): then all of them are held back,
// once, to be looked at again with the unstable files, so that a rename
// is reported as one (and keeps the file's modes and times) rather than
// as a removal now and a new file later.
func (l *loop) holdGone(r *walkResult, prevs map[string]look, now time.Time) []Observation {
	if len(r.gone) == 0 || len(r.unstable) == 0 {
		return r.gone
	}
	sizes := make(map[int64]bool, len(r.unstable))
	at := now // due with the last of them, so that one look takes all
	for _, lk := range r.unstable {
		sizes[lk.sig.size] = true
		if lk.at.After(at) {
			at = lk.at
		}
	}
	match := false
	for _, g := range r.gone {
		if prevs[g.Path].gone {
			return r.gone // held once already
		}
		if k, ok := l.w.o.Index.Lookup(g.Path); ok && !k.Dir && sizes[k.Size] {
			match = true
		}
	}
	if !match {
		return r.gone
	}
	for _, g := range r.gone {
		r.unstable[g.Path] = look{at: at, gone: true}
	}
	return nil
}
