package core

import (
	"sort"

	"github.com/drive-node/drive-node/oplog"
)

// Batch is the ops of one apply pass, in causal order, indexed by the
// paths they touch. It answers which of an op's results a later op of the
// batch, made after seeing it, replaces: such a version never becomes a
// head, so nothing of it needs placing, and a content that existed only
// briefly on its origin (written, moved or kept as a conflict copy, then
// removed before any peer fetched it) is never asked for.
type Batch struct {
	ops        []oplog.Op
	touching   map[string][]int // indexes of the ops touching a path, ascending
	superseded []Superseded     // per op, decided once: staging and applying both ask
}

// NewBatch indexes ops, which must be in causal order.
func NewBatch(ops []oplog.Op) *Batch {
	b := &Batch{ops: ops, touching: map[string][]int{}, superseded: make([]Superseded, len(ops))}
	for i, op := range ops {
		b.touching[op.Path] = append(b.touching[op.Path], i)
		if op.Kind == oplog.KindRename {
			b.touching[op.NewPath] = append(b.touching[op.NewPath], i)
		}
	}
	for i := range ops {
		b.superseded[i] = b.decideSuperseded(i)
	}
	return b
}

// Op returns the i-th op.
func (b *Batch) Op(i int) oplog.Op { return b.ops[i] }

// ReplacedAfter reports whether an op after the i-th touches p (writes,
// removes, makes or renames from or to it) and was made after seeing the
// i-th. A nil Batch replaces nothing.
func (b *Batch) ReplacedAfter(i int, p string) bool {
	if b == nil {
		return false
	}
	later := b.touching[p]
	v := b.ops[i].Version()
	for _, j := range later[sort.SearchInts(later, i+1):] {
		if b.ops[j].Parent.Dominates(v) {
			return true
		}
	}
	return false
}

// RemovedLater reports whether an op after the i-th, from the same
// device, removes p or renames it away: what that device did next to the
// i-th op's path's neighbour (a change of a directory name's case, seen
// on a folder that cannot hold both names, is a mkdir of the new name and
// a removal of the old).
func (b *Batch) RemovedLater(i int, p string) bool {
	if b == nil {
		return false
	}
	later := b.touching[p]
	for _, j := range later[sort.SearchInts(later, i+1):] {
		op := b.ops[j]
		if op.Origin != b.ops[i].Origin {
			continue
		}
		switch {
		case op.Path != p:
		case op.Kind == oplog.KindRmdir, op.Kind == oplog.KindDelete, op.Kind == oplog.KindRename:
			return true
		}
	}
	return false
}

// Superseded says how much of a batch's op a later op of the batch
// replaces.
type Superseded uint8

const (
	// Kept: the op is applied.
	Kept Superseded = iota
	// Whole: every path the op touches is replaced; the op is skipped.
	Whole
	// Target: what a rename put at its target is replaced; the rename
	// only removes its source, and needs no content.
	Target
)

// Superseded says how much of the i-th op a later op replaces. A rename
// away from a path replaces a write there too: the rename then places the
// content at its target itself. A nil Batch replaces nothing.
func (b *Batch) Superseded(i int) Superseded {
	if b == nil {
		return Kept
	}
	return b.superseded[i]
}

func (b *Batch) decideSuperseded(i int) Superseded {
	op := b.ops[i]
	src := b.ReplacedAfter(i, op.Path)
	if op.Kind != oplog.KindRename {
		if src {
			return Whole
		}
		return Kept
	}
	switch dst := b.ReplacedAfter(i, op.NewPath); {
	case src && dst:
		return Whole
	case dst:
		return Target
	}
	return Kept
}
