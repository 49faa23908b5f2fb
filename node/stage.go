package node

import (
	"context"
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
// content from where the earlier one placed it.
func (n *Node) stageContents(ctx context.Context, batch *core.Batch, lo, hi int, seen map[content.Hash]bool, extra []want) *stagedSet {
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
	var wants []want
	for _, i := range order {
		op, ok := carried[i]
		if !ok {
			op = batch.Op(i)
		}
		p := op.Path
		if op.Kind == oplog.KindRename {
			p = op.NewPath
		}
		if checkPath(p) != nil || seen[op.Hash] || n.refused(p) {
			continue
		}
		if op.Kind == oplog.KindRename && n.sourceUsable(ctx, op, nil, nil) {
			continue
		}
		if cur, ok, _ := n.db.File(ctx, p); ok && !cur.Deleted && cur.Hash == op.Hash {
			continue
		}
		seen[op.Hash] = true
		wants = append(wants, want{h: op.Hash, size: op.Size, mode: op.Mode})
	}
	for _, w := range extra {
		if !seen[w.h] {
			seen[w.h] = true
			wants = append(wants, w)
		}
	}
	staged := newStagedSet()
	n.fetchAll(ctx, wants, staged)
	// Who brought the ops of this chunk matters no more: their contents
	// are staged, here already, or not wanted.
	if ctx.Err() == nil { // a pass stopped midway leaves its ops pending
		n.relays.fetched(named)
	}
	return staged
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
