package node

import (
	"context"
	"io/fs"
	"maps"
	"slices"

	"github.com/drive-node/drive-node/content"
	"github.com/drive-node/drive-node/node/internal/core"
	"github.com/drive-node/drive-node/oplog"
)

// What a pass fetches before it takes the commit lock: the contents its
// ops will place, less what the folder holds already.

// stageContents fetches the content of the remote writes and renames
// among ops lo to hi of batch that no later op supersedes, and whose content the
// folder does not hold already. It returns the staged temp files and, in
// their errs, what could not be had.
//
// seen holds the contents earlier chunks of the same window staged, and
// gains this chunk's: a content is staged once per window. Its temp file has
// one name, and the chunk that staged it moves it into place or removes
// it, possibly while this chunk is staged; a later chunk copies the
// content from where the earlier one placed it. What lead (staged ahead
// for the window, see applyWindow) holds is taken from it, not fetched.
func (n *Node) stageContents(ctx context.Context, batch *core.Batch, lo, hi int, seen map[content.Hash]bool, extra []want, lead *stagedSet) *stagedSet {
	staged := newStagedSet()
	wants, named := n.chunkWants(ctx, batch, lo, hi, seen, lead, staged)
	for _, w := range extra {
		if !seen[w.h] {
			seen[w.h] = true
			wants = append(wants, w)
		}
	}
	n.fetchAll(ctx, wants, staged)
	// Who brought the ops of this chunk matters no more: their contents
	// are staged, here already, or not wanted.
	if ctx.Err() == nil { // a pass stopped midway leaves its ops pending
		n.relays.fetched(named)
	}
	return staged
}

// stageAhead fetches the small contents that ops, the start of the next
// window, will want, while the window before is applied: between two
// windows the pipeline of a pass would otherwise stop for one chunk's
// fetch. seen is what the window being applied staged: its temp files
// are in use, and it places those contents itself. Nothing is taken for
// granted: the next window takes from what this stages only the contents
// its own chunks want (see chunkWants), and removes the rest.
func (n *Node) stageAhead(ctx context.Context, ops []oplog.Op, seen map[content.Hash]bool) *stagedSet {
	staged := newStagedSet()
	wants, _ := n.chunkWants(ctx, core.NewBatch(ops), 0, len(ops), maps.Clone(seen), nil, staged)
	// A large content may take long to come, for a window that may not
	// want it (an origin blocked since): its own chunk fetches it.
	wants = slices.DeleteFunc(wants, func(w want) bool { return w.size > smallContent })
	n.fetchAll(ctx, wants, staged)
	return staged
}

// chunkWants returns the contents the remote writes and renames among ops
// lo to hi of batch need (see stageContents) and every hash the ops name.
// A content lead holds is moved into staged instead of wanted.
func (n *Node) chunkWants(ctx context.Context, batch *core.Batch, lo, hi int, seen map[content.Hash]bool, lead, staged *stagedSet) ([]want, []content.Hash) {
	type placement struct {
		path string
		hash content.Hash
	}
	last := map[placement]int{}
	carried := map[int]oplog.Op{} // what of ops half ignored is carried out (see execute)
	var named []content.Hash
	for i := lo; i < hi; i++ {
		op, superseded := batch.Op(i), batch.Superseded(i)
		if !op.Hash.IsZero() {
			named = append(named, op.Hash)
		}
		if op.Origin == n.id.ID || superseded == core.Whole {
			continue
		}
		_, all, part := n.setAside(op)
		if all {
			continue // not carried out here: nothing to fetch
		}
		if part != nil {
			op, carried[i] = *part, *part
		}
		switch {
		case op.Kind == oplog.KindWrite:
			last[placement{op.Path, op.Hash}] = i
		case op.Kind == oplog.KindRename && superseded != core.Target:
			last[placement{op.NewPath, op.Hash}] = i
		}
	}
	// In the log's order: what was written first is fetched first, and a
	// simulated run fetches in one order.
	order := slices.Sorted(maps.Values(last))
	ops, paths := make([]oplog.Op, 0, len(order)), make([]string, 0, len(order))
	for _, i := range order {
		op, ok := carried[i]
		if !ok {
			op = batch.Op(i)
		}
		p := op.Path
		if op.Kind == oplog.KindRename {
			p = op.NewPath
		}
		if checkPath(p) != nil || n.refused(p) {
			continue
		}
		ops, paths = append(ops, op), append(paths, p)
	}
	// Read at once: where a record already holds the content, nothing is
	// fetched. What cannot be read now is fetched.
	recorded, _ := n.db.FilesAt(ctx, paths)
	var wants []want
	for k, op := range ops {
		if lead.give(op.Hash, op.Size, staged) {
			seen[op.Hash] = true
			continue
		}
		if seen[op.Hash] {
			continue
		}
		if op.Kind == oplog.KindRename && n.sourceUsable(ctx, op, nil, nil) {
			continue
		}
		if cur, ok := recorded[paths[k]]; ok && !cur.Deleted && cur.Hash == op.Hash {
			continue
		}
		seen[op.Hash] = true
		wants = append(wants, want{h: op.Hash, size: op.Size, mode: op.Mode, mtime: op.MTime})
	}
	return wants, named
}

// give moves the temp file of content h (of size bytes), if s staged it,
// to to, and reports whether it did. A nil s has none.
func (s *stagedSet) give(h content.Hash, size int64, to *stagedSet) bool {
	if s == nil {
		return false
	}
	name, ok := s.temp[h]
	if !ok {
		return false
	}
	delete(s.temp, h)
	to.temp[h] = name
	if info, ok := s.tempInfo[h]; ok {
		if to.tempInfo == nil {
			to.tempInfo = map[content.Hash]fs.FileInfo{}
		}
		to.tempInfo[h] = info
	}
	if !syncedAlone(size) {
		to.flush = true // see applyOps
	}
	return true
}

// dropStaged removes the temp files s holds (s may be nil): contents
// staged for ops that did not use them.
func (n *Node) dropStaged(s *stagedSet) {
	if s == nil {
		return
	}
	for _, name := range slices.Sorted(maps.Values(s.temp)) {
		n.folderRoot().Remove(name)
	}
	clear(s.temp)
	clear(s.tempInfo)
}

// newStagedSet is an empty stagedSet.
func newStagedSet() *stagedSet {
	return &stagedSet{temp: map[content.Hash]string{}, placed: map[content.Hash]string{}, dirs: map[string]bool{}, looks: map[string]look{}, names: newLookups()}
}

// sourceUsable reports whether a rename's source is on disk as the op
// expects, so it can be moved instead of fetched. pending holds the rows
// the batch decided and has not recorded yet: what an earlier op of the
// batch left at the source counts, not the database's older row.
func (n *Node) sourceUsable(ctx context.Context, op oplog.Op, pending *batchRecords, seen *lookups) bool {
	if checkPath(op.Path) != nil {
		return false
	}
	cur, err := n.recordAt(ctx, op.Path, pending)
	if err != nil || cur == nil || cur.Deleted || cur.Hash != op.Hash {
		return false
	}
	st, err := n.lstat(op.Path, seen)
	return err == nil && st.Mode().IsRegular() && st.Size() == cur.Size && n.sameMTime(st.ModTime().UnixNano(), cur.MTime)
}
