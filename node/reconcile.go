package node

import (
	"path"
	"sort"
	"time"

	"github.com/drive-node/drive-node/certs"
	"github.com/drive-node/drive-node/content"
	"github.com/drive-node/drive-node/oplog"
	"github.com/drive-node/drive-node/state"
	"github.com/drive-node/drive-node/vclock"
)

// The sync decision. A path's state is a function of its heads: the ops on
// it that no other op on it has superseded (made after seeing them). A set
// of versions has one frontier whatever order its members arrive in, so
// every replica that has the same ops has the same heads, the same
// winner and the same record — that is what makes replicas converge.
//
// Among the heads, a live version (a write or a directory) beats a
// deletion, so an edit concurrent with a delete stays; a directory beats a
// file, because a file version can be kept whole as a conflict copy while a
// directory holds other paths' versions and could not be kept beside it;
// among the rest the higher (Lamport, device ID) wins. Every other live
// head with different content is kept as a conflict copy beside the path,
// so no accepted write is dropped.
//
// A path's type can still clash with what another path needs: a file that
// won (made after seeing a directory removed) while a concurrent edit keeps
// something inside the directory, or a version inside a directory whose
// path holds a file. The directory then stays or comes back, and the file
// goes to its conflict copy; both are recorded as local changes, made after
// seeing the file, so every replica ends with the directory and the copy
// whichever way it met the clash (the copy's name depends only on the file's
// version, so replicas that moved it aside independently agree).

// effectKind is one change a remote op makes to the folder.
type effectKind int

const (
	// effPlace writes the content described by op (hash, mode, mtime) at path.
	effPlace effectKind = iota
	// effMove renames path to to; the source must be there.
	effMove
	// effMoveAside renames path to to if path is there (a losing local
	// version kept as a conflict copy).
	effMoveAside
	// effRemove removes the file at path if it is there.
	effRemove
	// effRmdir removes the directory at path if it is empty; one that is
	// not stays, and is recorded again as a local mkdir.
	effRmdir
	// effMkdir creates the directory path (and its parents).
	effMkdir
)

// effect is one step of a remotePlan.
type effect struct {
	kind     effectKind
	path, to string
	op       oplog.Op // content, mode and mtime for effPlace and effMkdir
}

// conflictNote records a conflict copy for `drive-node status`.
type conflictNote struct {
	copyPath, original string
	winner, loser      certs.DeviceID
}

// remotePlan is what a remote op does: effects on the folder in order, the
// rows to record, conflicts to report, and paths whose resulting state must
// be recorded as local changes (conflict copies, directories brought back).
type remotePlan struct {
	effects   []effect
	records   []state.File
	conflicts []conflictNote
	observe   []string
}

// view is what planRemote may know of the replica: its records (with the
// batch's earlier ops applied) and the ops in its log.
type view interface {
	record(path string) *state.File
	op(id state.OpID) (oplog.Op, bool)
	// liveUnder reports whether some live record lies strictly under the
	// directory dir.
	liveUnder(dir string) bool
}

// head is one op's version of one path.
type head struct {
	id      state.OpID
	op      oplog.Op
	live    bool // a file or directory is there
	dir     bool
	content oplog.Op // hash, size, mode and mtime of what is there
	version vclock.Vector
}

// headOf returns op's version of path p (a rename is a removal at its
// source and a write of its content at its target).
func headOf(op oplog.Op, p string) head {
	h := head{id: state.OpID{Origin: op.Origin, Seq: op.Seq}, op: op, content: op, version: op.Version()}
	switch op.Kind {
	case oplog.KindWrite:
		h.live = true
	case oplog.KindMkdir:
		h.live, h.dir = true, true
	case oplog.KindRename:
		h.live = p == op.NewPath
	}
	return h
}

// heads returns the heads recorded for r, read from the log.
func heads(v view, r *state.File) []head {
	if r == nil {
		return nil
	}
	out := make([]head, 0, len(r.Heads))
	for _, id := range r.Heads {
		if op, ok := v.op(id); ok {
			out = append(out, headOf(op, r.Path))
		}
	}
	return out
}

// addHead returns the frontier of hs and h, and whether h changed it (it
// is not already there and no head has seen it).
//
// Supersession is one test in both directions, version against version, so
// the frontier does not depend on the order ops arrive in. It counts an
// origin's earlier op on the path as seen even when the later op's parent
// lacks it: a path observed with a new type yields two ops made from one
// record (a removal, then the write or mkdir), and the second replaces the
// first.
func addHead(hs []head, h head) ([]head, bool) {
	for _, x := range hs {
		if x.id == h.id || x.version.Dominates(h.version) {
			return hs, false
		}
	}
	out := make([]head, 0, len(hs)+1)
	for _, x := range hs {
		if !h.version.Dominates(x.version) {
			out = append(out, x)
		}
	}
	out = append(out, h)
	sort.Slice(out, func(i, j int) bool { return beats(out[i], out[j]) })
	return out, true
}

// beats orders heads: live before deleted, directory before file, then
// higher (Lamport, device).
func beats(a, b head) bool {
	if a.live != b.live {
		return a.live
	}
	if a.dir != b.dir {
		return a.dir
	}
	return wins(a.op.Lamport, a.op.Origin[:], b.op.Lamport, b.op.Origin[:])
}

// losers are the live file heads, other than the winner hs[0], whose
// content differs from the winner's: each is kept as a conflict copy.
func losers(hs []head) []head {
	var out []head
	for _, h := range hs[1:] {
		if h.live && !h.dir && (hs[0].dir || !hs[0].live || h.content.Hash != hs[0].content.Hash) {
			out = append(out, h)
		}
	}
	return out
}

// recordOf is the row for path p with heads hs (sorted, winner first).
func recordOf(p string, hs []head, at int64) state.File {
	w := hs[0]
	r := state.File{Path: p, Dir: w.dir, Lamport: w.op.Lamport, Origin: w.op.Origin, Seq: w.op.Seq, Deleted: !w.live}
	if w.live && !w.dir {
		r.Hash, r.Size = w.content.Hash, w.content.Size
	}
	if w.live {
		r.Mode, r.MTime = w.content.Mode, w.content.MTime
	} else {
		r.DeletedAt = at
	}
	for _, h := range hs {
		r.Version = r.Version.Merge(h.version)
		r.Heads = append(r.Heads, h.id)
	}
	return r
}

// planRemote decides what a remote op does here. It is pure: the folder
// and database are read only through v (whose records describe the disk:
// changes not yet recorded are recorded before it is called), and nothing
// is changed. sourceUsable says whether a rename's source is on disk as
// the op expects, so it can be moved rather than fetched.
func planRemote(op oplog.Op, v view, sourceUsable bool, at int64) remotePlan {
	var p remotePlan
	paths := []string{op.Path}
	if op.Kind == oplog.KindRename {
		paths = []string{op.NewPath, op.Path} // target first: it may take the source's file
	}
	fwd := forwardedEdit(op, v)
	moved := false
	for _, path := range paths {
		cur := v.record(path)
		hs, changed := addHead(heads(v, cur), headOf(op, path))
		if !changed {
			continue
		}
		rec := recordOf(path, hs, at)
		p.records = append(p.records, rec)
		if fwd != nil && (path == fwd.from || path == fwd.to) {
			// The records say what the heads say; the disk takes the
			// edit to the rename's target, and recording that as a
			// local change (a write there, a delete at the source, both
			// made after seeing the edit and the rename) settles it on
			// every peer.
			if path == fwd.from {
				p.effects = append(p.effects, fwd.effects...)
			}
			p.observe = append(p.observe, fwd.from, fwd.to)
			p.observe = append(p.observe, missingParents(v, fwd.to)...)
			continue
		}
		curLive := cur != nil && !cur.Deleted
		curHash := content.Hash{}
		if curLive && !cur.Dir {
			curHash = cur.Hash
		}
		// Keep every losing version that is not kept already.
		for _, l := range losers(hs) {
			cp := conflictName(path, l.op.Origin.Short(), time.Unix(0, l.content.MTime), l.content.Hash)
			if v.record(cp) != nil {
				continue // made before (and perhaps deleted since by a user)
			}
			if curHash == l.content.Hash && !curHash.IsZero() {
				p.effects = append(p.effects, effect{kind: effMoveAside, path: path, to: cp})
				curLive, curHash = false, content.Hash{}
			} else {
				p.effects = append(p.effects, effect{kind: effPlace, path: cp, op: l.content})
			}
			p.conflicts = append(p.conflicts, conflictNote{cp, path, hs[0].op.Origin, l.op.Origin})
			p.observe = append(p.observe, cp)
		}
		// Make the disk hold the winner.
		w := hs[0]
		switch {
		case w.live && w.dir:
			if !curLive || !cur.Dir {
				p.effects = append(p.effects, effect{kind: effMkdir, path: path, op: w.content})
				p.observe = append(p.observe, missingParents(v, path)...)
			}
		case w.live && curLive && cur.Dir && v.liveUnder(path):
			// The file won, but the directory still holds versions made
			// concurrently with its removal: it stays, and the file is
			// kept as a conflict copy.
			if cp := fileCopyName(path, w.op.Origin, w.content); v.record(cp) == nil {
				p.effects = append(p.effects, effect{kind: effPlace, path: cp, op: w.content})
				p.conflicts = append(p.conflicts, conflictNote{cp, path, op.Origin, w.op.Origin})
				p.observe = append(p.observe, cp)
			}
			p.observe = append(p.observe, path)
		case w.live:
			if curHash == w.content.Hash && curLive {
				break
			}
			if op.Kind == oplog.KindRename && path == op.NewPath && w.id.Origin == op.Origin && w.id.Seq == op.Seq && sourceUsable && sourceGoes(v, op, at) {
				p.effects = append(p.effects, effect{kind: effMove, path: op.Path, to: path})
				moved = true
			} else {
				p.effects = append(p.effects, effect{kind: effPlace, path: path, op: w.content})
			}
			p.observe = append(p.observe, missingParents(v, path)...)
		case curLive && cur.Dir:
			p.effects = append(p.effects, effect{kind: effRmdir, path: path})
		case curLive && !(moved && path == op.Path):
			p.effects = append(p.effects, effect{kind: effRemove, path: path})
		}
	}
	p.moveFilesOutOfTheWay(op, v)
	return p
}

// fileCopyName is the conflict copy of the file version (by device origin,
// with content c) at p: the same name on every replica.
func fileCopyName(p string, origin certs.DeviceID, c oplog.Op) string {
	return conflictName(p, origin.Short(), time.Unix(0, c.MTime), c.Hash)
}

// moveFilesOutOfTheWay puts before p's effects a move of every file that
// sits where a path p creates needs a directory, to the file's conflict
// copy; the directory and the copy are then recorded as local changes.
func (p *remotePlan) moveFilesOutOfTheWay(op oplog.Op, v view) {
	var first []effect
	moved := map[string]bool{}
	for _, e := range p.effects {
		target := e.path
		switch e.kind {
		case effMove, effMoveAside:
			target = e.to
		case effRemove, effRmdir:
			continue
		}
		for dir := path.Dir(target); dir != "." && dir != "/"; dir = path.Dir(dir) {
			r := p.recordNow(dir, v)
			if moved[dir] || r == nil || r.Deleted || r.Dir {
				continue
			}
			moved[dir] = true
			// Named after the winning version's op, as the copy a file
			// that won over a directory gets: the record's mtime is the
			// disk's, which may differ (a coarse file system).
			origin, c := r.Origin, oplog.Op{MTime: r.MTime, Hash: r.Hash}
			if hs := heads(v, r); len(hs) > 0 && hs[0].live && !hs[0].dir {
				origin, c = hs[0].op.Origin, hs[0].content
			}
			cp := fileCopyName(dir, origin, c)
			first = append(first, effect{kind: effMoveAside, path: dir, to: cp})
			p.conflicts = append(p.conflicts, conflictNote{cp, dir, op.Origin, origin})
			p.observe = append(p.observe, dir, cp)
		}
	}
	if len(first) > 0 {
		p.effects = append(first, p.effects...)
	}
}

// recordNow is path's record once p's records are made.
func (p *remotePlan) recordNow(path string, v view) *state.File {
	for i := len(p.records) - 1; i >= 0; i-- {
		if p.records[i].Path == path {
			return &p.records[i]
		}
	}
	return v.record(path)
}

// forwarding is an edit made concurrently with a rename of its file,
// carried to the rename's target: rename vs edit keeps the edit at the new
// name.
type forwarding struct {
	from, to string
	effects  []effect
}

// forwardedEdit returns how op forwards an edit, or nil. It applies when,
// once op is added, the source path's heads are one live file version E
// (an edit) and deletions among which a rename away R, concurrent with E
// (both are heads), and R's target still holds what R moved there (or E
// already): E's content then goes to the target and the source goes.
// Whichever of E and R arrives second triggers it, so every replica that
// has both makes the same change; the ops it records for it are identical
// in content, so they never conflict with one another.
func forwardedEdit(op oplog.Op, v view) *forwarding {
	if op.Kind != oplog.KindWrite && op.Kind != oplog.KindRename {
		return nil
	}
	from, opID := op.Path, state.OpID{Origin: op.Origin, Seq: op.Seq}
	hs, changed := addHead(heads(v, v.record(from)), headOf(op, from))
	if !changed || len(hs) < 2 || !hs[0].live || hs[0].dir || hs[0].op.Kind != oplog.KindWrite {
		return nil
	}
	edit := hs[0]
	if op.Kind == oplog.KindWrite && edit.id != opID {
		return nil // op is not the edit
	}
	var away *head
	for i := range hs[1:] {
		h := &hs[1+i]
		if h.live {
			return nil // another live version: an ordinary conflict
		}
		isAway := h.op.Kind == oplog.KindRename && h.op.Path == from
		// An edit that arrives takes the strongest rename away; a rename
		// that arrives forwards only over itself.
		if away == nil && isAway && (op.Kind == oplog.KindWrite || h.id == opID) {
			away = h
		}
	}
	if away == nil {
		return nil
	}
	to := away.op.NewPath
	target := v.record(to)
	if target != nil && !target.Deleted && target.Dir && v.liveUnder(to) {
		return nil // the target stays a directory: the edit stays where it is
	}
	if op.Kind == oplog.KindRename {
		// The target's record is about to take op: it must be op alone.
		ths, _ := addHead(heads(v, target), headOf(op, to))
		if len(ths) != 1 || ths[0].id != away.id {
			return nil
		}
	} else if target == nil || target.Deleted || target.Dir ||
		!(target.Hash == edit.content.Hash || len(target.Heads) == 1 && target.Heads[0] == away.id) {
		return nil
	}
	f := &forwarding{from: from, to: to}
	src := v.record(from)
	switch {
	case target != nil && !target.Deleted && target.Hash == edit.content.Hash && op.Kind == oplog.KindWrite:
		// The edit is at the target already (another peer forwarded it).
	case src != nil && !src.Deleted && !src.Dir && src.Hash == edit.content.Hash:
		f.effects = append(f.effects, effect{kind: effMove, path: from, to: to})
		return f
	default:
		f.effects = append(f.effects, effect{kind: effPlace, path: to, op: edit.content})
	}
	if src != nil && !src.Deleted && !src.Dir {
		f.effects = append(f.effects, effect{kind: effRemove, path: from})
	}
	return f
}

// sourceGoes reports whether a rename leaves its source deleted here (no
// concurrent edit keeps it), so its file may be moved to the target.
func sourceGoes(v view, op oplog.Op, at int64) bool {
	cur := v.record(op.Path)
	hs, changed := addHead(heads(v, cur), headOf(op, op.Path))
	return changed && !hs[0].live
}

// missingParents lists the directories above p that have no live record:
// writing p creates them, and they must be recorded (a file made inside a
// directory that another device removed brings the directory back).
func missingParents(v view, p string) []string {
	var out []string
	for dir := path.Dir(p); dir != "." && dir != "/"; dir = path.Dir(dir) {
		if r := v.record(dir); r == nil || r.Deleted {
			out = append(out, dir)
		}
	}
	return out
}
