package core

import (
	"path"
	"time"

	"github.com/drive-node/drive-node/certs"
	"github.com/drive-node/drive-node/content"
	"github.com/drive-node/drive-node/oplog"
	"github.com/drive-node/drive-node/state"
)

// EffectKind is one change a remote op makes to the folder.
type EffectKind int

// The effects a RemotePlan is made of.
const (
	// Place writes the content described by op (hash, mode, mtime) at path.
	Place EffectKind = iota
	// Move renames path to to; the source must be there.
	Move
	// MoveAside renames path to to if path is there (a losing local
	// version kept as a conflict copy).
	MoveAside
	// Remove removes the file at path if it is there.
	Remove
	// Rmdir removes the directory at path if it is empty; one that is
	// not stays, and is recorded again as a local mkdir.
	Rmdir
	// Mkdir creates the directory path (and its parents).
	Mkdir
	// Chmod gives the file at path op's mode: its content is already the
	// op's.
	Chmod
)

// Effect is one step of a RemotePlan.
type Effect struct {
	Kind     EffectKind
	Path, To string
	Op       oplog.Op // content, mode and mtime for Place and Mkdir
}

// ConflictNote records a conflict copy for `drive-node status`.
type ConflictNote struct {
	CopyPath, Original string
	Winner, Loser      certs.DeviceID
}

// RemotePlan is what a remote op does: effects on the folder in order, the
// rows to record, conflicts to report, and paths whose resulting state must
// be recorded as local changes (conflict copies, directories brought back).
// A plan whose Needs is not empty is incomplete: the snapshot lacked what
// Needs lists, and nothing else in the plan may be used.
type RemotePlan struct {
	Effects   []Effect
	Records   []state.File
	Conflicts []ConflictNote
	Observe   []string
	Needs     Needs
}

// Arrival is a remote op and what is known of it beyond the snapshot.
type Arrival struct {
	Op oplog.Op
	// SourceUsable says whether a rename's source is on disk as the op
	// expects, so it can be moved rather than fetched.
	SourceUsable bool
	// Batch, when set, is the batch the op is the Index-th of: what a
	// later op there replaces is not placed (a rename whose target is
	// replaced only removes its source; a conflict copy that a later op
	// records or removes is left to it).
	Batch *Batch
	Index int
	// At is the time tombstones are stamped with.
	At int64
}

// PlanRemote decides what a remote op does here. It is pure: the folder
// and database are known only through s (whose records describe the disk:
// changes not yet recorded are recorded before it is gathered), and
// nothing is changed. A plan with Needs must be decided again once they
// are gathered.
func PlanRemote(a Arrival, s *Snapshot) RemotePlan {
	v := newReader(s)
	p := planRemote(a, v)
	if !v.needs.Empty() {
		return RemotePlan{Needs: *v.needs}
	}
	return p
}

func planRemote(a Arrival, v reader) RemotePlan {
	op, sourceUsable, at := a.Op, a.SourceUsable, a.At
	var p RemotePlan
	paths := []string{op.Path}
	if op.Kind == oplog.KindRename && a.Batch.Superseded(a.Index) != Target {
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
		p.Records = append(p.Records, rec)
		if fwd != nil && (path == fwd.from || path == fwd.to) {
			// The records say what the heads say; the disk takes the
			// edit to the rename's target, and recording that as a
			// local change (a write there, a delete at the source, both
			// made after seeing the edit and the rename) settles it on
			// every peer.
			if path == fwd.from {
				p.Effects = append(p.Effects, fwd.effects...)
			}
			p.Observe = append(p.Observe, fwd.from, fwd.to)
			p.Observe = append(p.Observe, missingParents(v, fwd.to)...)
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
				p.Effects = append(p.Effects, Effect{Kind: MoveAside, Path: path, To: cp})
				curLive, curHash = false, content.Hash{}
			} else if a.Batch.ReplacedAfter(a.Index, cp) {
				// The batch records the copy later, as the device that
				// made it did, and perhaps its removal: the content may
				// be nowhere now.
				continue
			} else {
				p.Effects = append(p.Effects, Effect{Kind: Place, Path: cp, Op: l.content})
			}
			p.Conflicts = append(p.Conflicts, ConflictNote{cp, path, hs[0].op.Origin, l.op.Origin})
			p.Observe = append(p.Observe, cp)
		}
		// Make the disk hold the winner.
		w := hs[0]
		switch {
		case w.live && w.dir:
			if !curLive || !cur.Dir {
				p.Effects = append(p.Effects, Effect{Kind: Mkdir, Path: path, Op: w.content})
				p.Observe = append(p.Observe, missingParents(v, path)...)
			}
		case w.live && curLive && cur.Dir && v.liveUnder(path):
			// The file won, but the directory still holds versions made
			// concurrently with its removal: it stays, and the file is
			// kept as a conflict copy.
			if cp := fileCopyName(path, w.op.Origin, w.content); v.record(cp) == nil {
				p.Effects = append(p.Effects, Effect{Kind: Place, Path: cp, Op: w.content})
				p.Conflicts = append(p.Conflicts, ConflictNote{cp, path, op.Origin, w.op.Origin})
				p.Observe = append(p.Observe, cp)
			}
			p.Observe = append(p.Observe, path)
		case w.live:
			if curHash == w.content.Hash && curLive {
				if cur.Mode != w.content.Mode {
					p.Effects = append(p.Effects, Effect{Kind: Chmod, Path: path, Op: w.content})
				}
				break
			}
			if op.Kind == oplog.KindRename && path == op.NewPath && w.id.Origin == op.Origin && w.id.Seq == op.Seq && sourceUsable && sourceGoes(v, op, at) {
				p.Effects = append(p.Effects, Effect{Kind: Move, Path: op.Path, To: path})
				moved = true
			} else {
				p.Effects = append(p.Effects, Effect{Kind: Place, Path: path, Op: w.content})
			}
			p.Observe = append(p.Observe, missingParents(v, path)...)
		case curLive && cur.Dir:
			p.Effects = append(p.Effects, Effect{Kind: Rmdir, Path: path})
		case curLive && !(moved && path == op.Path):
			p.Effects = append(p.Effects, Effect{Kind: Remove, Path: path})
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
func (p *RemotePlan) moveFilesOutOfTheWay(op oplog.Op, v reader) {
	var first []Effect
	moved := map[string]bool{}
	for _, e := range p.Effects {
		target := e.Path
		switch e.Kind {
		case Move, MoveAside:
			target = e.To
		case Remove, Rmdir:
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
			first = append(first, Effect{Kind: MoveAside, Path: dir, To: cp})
			p.Conflicts = append(p.Conflicts, ConflictNote{cp, dir, op.Origin, origin})
			p.Observe = append(p.Observe, dir, cp)
		}
	}
	if len(first) > 0 {
		p.Effects = append(first, p.Effects...)
	}
}

// recordNow is path's record once p's records are made.
func (p *RemotePlan) recordNow(path string, v reader) *state.File {
	for i := len(p.Records) - 1; i >= 0; i-- {
		if p.Records[i].Path == path {
			return &p.Records[i]
		}
	}
	return v.record(path)
}

// forwarding is an edit made concurrently with a rename of its file,
// carried to the rename's target: rename vs edit keeps the edit at the new
// name.
type forwarding struct {
	from, to string
	effects  []Effect
}

// ForwardTarget returns where op carries an edit made concurrently with a
// rename of its file (see forwardedEdit), or "" when it carries none. With
// Needs not empty the answer is not final: gather them and ask again.
func ForwardTarget(op oplog.Op, s *Snapshot) (string, Needs) {
	v := newReader(s)
	f := forwardedEdit(op, v)
	if !v.needs.Empty() || f == nil {
		return "", *v.needs
	}
	return f.to, Needs{}
}

// forwardedEdit returns how op forwards an edit, or nil. It applies when,
// once op is added, the source path's heads are one live file version E
// (an edit) and deletions among which a rename away R, concurrent with E
// (both are heads), and R's target still holds what R moved there (or E
// already): E's content then goes to the target and the source goes.
// Whichever of E and R arrives second triggers it, so every replica that
// has both makes the same change; the ops it records for it are identical
// in content, so they never conflict with one another.
func forwardedEdit(op oplog.Op, v reader) *forwarding {
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
		f.effects = append(f.effects, Effect{Kind: Move, Path: from, To: to})
		return f
	default:
		f.effects = append(f.effects, Effect{Kind: Place, Path: to, Op: edit.content})
	}
	if src != nil && !src.Deleted && !src.Dir {
		f.effects = append(f.effects, Effect{Kind: Remove, Path: from})
	}
	return f
}

// sourceGoes reports whether a rename leaves its source deleted here (no
// concurrent edit keeps it), so its file may be moved to the target.
func sourceGoes(v reader, op oplog.Op, at int64) bool {
	cur := v.record(op.Path)
	hs, changed := addHead(heads(v, cur), headOf(op, op.Path))
	return changed && !hs[0].live
}

// missingParents lists the directories above p that have no live record:
// writing p creates them, and they must be recorded (a file made inside a
// directory that another device removed brings the directory back).
func missingParents(v reader, p string) []string {
	var out []string
	for dir := path.Dir(p); dir != "." && dir != "/"; dir = path.Dir(dir) {
		if r := v.record(dir); r == nil || r.Deleted {
			out = append(out, dir)
		}
	}
	return out
}
