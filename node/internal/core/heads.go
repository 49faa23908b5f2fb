package core

import (
	"sort"

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
func heads(v reader, r *state.File) []head {
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
	// A directory's removal is a directory's tombstone, as its origin
	// records it (RecordsFor): the records of every replica agree.
	dir := w.dir || !w.live && w.op.Kind == oplog.KindRmdir
	r := state.File{Path: p, Dir: dir, Lamport: w.op.Lamport, Origin: w.op.Origin, Seq: w.op.Seq, Deleted: !w.live}
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
