package watcher

import (
	"context"
	"io/fs"
	"log/slog"
	"time"
)

// lostScan rescans the folder, at now, for the events lost since the last
// rescan (the kernel's event queue overflowed), and sends what changed.
//
// It must find every change whose event was dropped, and the kernel does
// not say which those were. The events that did arrive around the
// overflow name the directories that were busy, not the ones that lost
// events: one write in a quiet directory is dropped as readily as the
// thousandth in a busy one. Rescanning only the directories events named,
// with a full scan when they are too many, would miss that write, and no
// count of busy directories tells when it happened. Directory mtimes do
// not help either: an edit to a file leaves its directory's alone. Only a
// look at every directory and at every file rules a lost change out, so
// lostScan, like a full scan, lists every directory and stats every file.
//
// What it skips is the costly part of a full scan: reading the Index
// (every record of the folder, from the node's database) and comparing it
// with each listing. On file systems that keep a real change time (see
// keepsCTime), every change stamps the ctime of the inode it changed with
// the kernel's clock: a file written, truncated, chmodded or renamed gets
// a new ctime, and so does a directory an entry is made, removed or
// renamed in. No tool sets a ctime back (touch and cp -p set the mtime,
// and the ctime to now). So lostScan consults the Index only for what
// changed since the previous scan of the Run began (every change before
// that, that scan saw):
//
//   - a directory whose ctime is older than that start, which that scan
//     listed at the same path as the same inode and compared completely
//     with the Index, still holds the entries that scan found, and the
//     Index holds what that scan reported for them: its listing is not
//     compared with the Index (nothing in it can be gone, nothing new);
//   - a file in such a directory whose ctime is older than that start is
//     as that scan found it and is not looked up; a newer one is looked up
//     and looked at as a full scan would;
//   - every other directory (newer ctime, not seen there by that scan or
//     seen as another inode, on another device, without a record, or
//     holding something that scan could not read or found still being
//     written) is compared with the Index as a full scan compares it.
//
// The inode check makes an old directory at a new path count as new:
// moving a directory changes the ctime of its parents and its own, not
// those of the directories inside it, which the previous scan never saw
// where they are now. The record check covers a directory that a look
// after an event took for gone (its parent was renamed away and back),
// with everything recorded under it.
//
// Times are compared with the watcher's clock, which must agree with the
// file system's (see Options.Clock), less ctimeSlack. A clock stepped
// back since the previous scan began could make a change look older than
// it is; so then, as when the file system is not one of those, when
// events were lost to an error other than an overflow, or when no scan
// has left what lostScan needs, the rescan is a full one. The periodic
// rescan reasons the same way, and is a full one at intervals (see
// periodicScan).
func (l *loop) lostScan(ctx context.Context, out chan<- []Observation, now time.Time) error {
	w := l.w
	base := l.base
	if base != nil && (l.lost.other || base.steppedBack(now)) {
		base = nil
	}
	w.log.Info("rescanning the folder for lost file events", "losses", l.lost.count, "whole", base == nil)
	l.lost = eventLoss{}
	return l.rescanWith(ctx, out, base, slog.LevelInfo)
}

// periodicScan is the periodic rescan, at now: the safety net for changes
// no event reported (a directory that could not be watched, an event
// the kernel dropped without saying). Most of the time it is a rescan
// like lostScan's, which costs a listing of every directory and a look at
// every file and, on a file system that keeps change times, reads from
// the Index only what changed since the previous scan: a Pi tracking a
// large library is not kept busy reading the whole database to find
// nothing. Every fullRescanEvery-th one, and whenever
// lostScan would be a full one, it is a full scan, the net for what the
// change-time reasoning does not cover (a clock stepped back and forth
// between two scans, an Index that lost records).
func (l *loop) periodicScan(ctx context.Context, out chan<- []Observation, now time.Time) error {
	l.sinceFull++
	base := l.base
	if base != nil && (l.lost.other || base.steppedBack(now) || l.sinceFull >= fullRescanEvery) {
		base = nil
	}
	l.w.log.Debug("periodic rescan", "whole", base == nil)
	// An idle daemon's log does not say so at every rescan.
	return l.rescanWith(ctx, out, base, slog.LevelDebug)
}

// rescanWith rescans the folder, with base as lostScan takes it (nil: a
// full scan), and keeps what the scan leaves for the next one. What a
// rescan with base listed and compared is logged at level.
func (l *loop) rescanWith(ctx context.Context, out chan<- []Observation, base *scanBase, level slog.Level) error {
	if base == nil {
		l.sinceFull = 0
	}
	left, next, err := l.w.scan(ctx, out, l.ws, 0, base, level)
	if err != nil {
		return err
	}
	l.base = next
	l.addRetries(left)
	return nil
}

// ctimeSlack is how much older than the start of the previous scan a
// ctime must be for lostScan to take the inode as unchanged since: the
// kernel stamps ctimes from a clock that is coarse (it may lag by a tick)
// and some file systems keep them in coarser steps still.
const ctimeSlack = 2 * time.Second

// scanBase is what a scan in a Run leaves for the next rescan for lost
// events (see lostScan).
type scanBase struct {
	at  time.Time // when the scan began, by the watcher's clock
	dev uint64    // the folder's device
	// since is at less ctimeSlack, in unix nanoseconds: an inode with an
	// older ctime has not changed since the scan began.
	since int64
	// dirs holds the directories the scan compared completely with the
	// Index, by path: their inode numbers.
	dirs map[string]uint64
}

// newScanBase returns the base for a scan that begins at to fill in, st
// describing the folder; nil if the folder's file system keeps no ctime
// that can be trusted (see keepsCTime).
func (w *Watcher) newScanBase(st fs.FileInfo, at time.Time) *scanBase {
	keeps := keepsCTime
	if w.keepsCTime != nil {
		keeps = w.keepsCTime
	}
	_, dev, _, ok := changeOf(st)
	if !ok || !keeps(w.root) {
		return nil
	}
	return &scanBase{at: at, since: at.Add(-ctimeSlack).UnixNano(), dev: dev, dirs: map[string]uint64{}}
}

// steppedBack reports whether the clock was set back by more than half of
// ctimeSlack since b's scan began, as far as its monotonic reading tells
// (the system clock has one; a fake clock reads the same either way).
func (b *scanBase) steppedBack(now time.Time) bool {
	mono, wall := now.Sub(b.at), now.Round(0).Sub(b.at.Round(0))
	return mono-wall > ctimeSlack/2
}

// settled reports whether the directory rel, which st describes and the
// Index records as rec, need not be compared with the Index: b's scan
// compared it as this same inode and its ctime shows no entry made,
// removed or renamed in it since that scan began.
func (b *scanBase) settled(rel string, st fs.FileInfo, rec record) bool {
	if b == nil || st == nil || (rel != "" && (!rec.ok || !rec.k.Dir)) {
		return false
	}
	ctime, dev, ino, ok := changeOf(st)
	if !ok || dev != b.dev {
		return false
	}
	if was, seen := b.dirs[rel]; !seen || was != ino {
		return false
	}
	return ctime < b.since
}

// unchanged reports whether the file st describes, in a settled directory
// (see settled), has not changed since b's scan began.
func (b *scanBase) unchanged(st fs.FileInfo) bool {
	ctime, dev, _, ok := changeOf(st)
	return ok && dev == b.dev && ctime < b.since
}

// done notes that the directory rel, which st describes, was compared
// completely (or found settled): what it holds was seen and the Index
// holds what was reported for it.
func (b *scanBase) done(rel string, st fs.FileInfo) {
	if b == nil || st == nil {
		return
	}
	if _, dev, ino, ok := changeOf(st); ok && dev == b.dev {
		b.dirs[rel] = ino
	}
}

// recordedDir is the record lostScan takes for a directory listed in a
// settled one: the Index holds it as a directory, since the previous scan
// reported it so and nothing was made, removed or renamed there since.
var recordedDir = record{k: Known{Dir: true}, ok: true}
