package node

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strings"

	"github.com/drive-node/drive-node/node/internal/core"
	"github.com/drive-node/drive-node/oplog"
	"github.com/drive-node/drive-node/state"
)

// The core decides from a snapshot; this file gathers one, which is where
// the decision's IO is: the batch's pending rows, the database, the op log
// and the folder.

// planRemote asks the core what op does here, gathering what it needs
// until the plan is final.
func (n *Node) planRemote(ctx context.Context, a core.Arrival, pending *batchRecords) (core.RemotePlan, error) {
	return decide(ctx, n, a.Op, pending, func(s *core.Snapshot) (core.RemotePlan, core.Needs) {
		plan := core.PlanRemote(a, s)
		return plan, plan.Needs
	})
}

// forwardTarget asks the core where op carries an edit concurrent with a
// rename ("" for nowhere).
func (n *Node) forwardTarget(ctx context.Context, op oplog.Op, pending *batchRecords) (string, error) {
	return decide(ctx, n, op, pending, func(s *core.Snapshot) (string, core.Needs) { return core.ForwardTarget(op, s) })
}

// decide runs one of the core's decisions about op on a snapshot that
// starts empty, gathering what the decision says it lacks, until it lacks
// nothing.
func decide[T any](ctx context.Context, n *Node, op oplog.Op, pending *batchRecords, f func(*core.Snapshot) (T, core.Needs)) (T, error) {
	s := core.NewSnapshot()
	for {
		v, needs := f(s)
		if needs.Empty() {
			return v, nil
		}
		if err := n.gather(ctx, s, needs, pending); err != nil {
			var zero T
			return zero, fmt.Errorf("deciding %s: %w", op, err)
		}
	}
}

// gather adds to s what needs lists.
func (n *Node) gather(ctx context.Context, s *core.Snapshot, needs core.Needs, pending *batchRecords) error {
	for _, p := range needs.Records {
		f, err := n.recordAt(ctx, p, pending)
		if err != nil {
			return err
		}
		s.Records[p] = f
	}
	for _, id := range needs.Ops {
		op, ok, err := n.ops.Get(id.Origin, id.Seq)
		if err != nil {
			return fmt.Errorf("op %s/%d: %w", id.Origin.Short(), id.Seq, err)
		}
		s.Ops[id] = nil
		if ok {
			s.Ops[id] = &op
		}
	}
	for _, dir := range needs.Occupied {
		busy, err := n.occupied(ctx, dir, pending)
		if err != nil {
			return err
		}
		s.Occupied[dir] = busy
	}
	return nil
}

// recordAt is p's record: the batch's latest row if pending has one,
// else the database's; nil when there is none.
func (n *Node) recordAt(ctx context.Context, p string, pending *batchRecords) (*state.File, error) {
	if f := pending.get(p); f != nil {
		return f, nil
	}
	f, ok, err := n.db.File(ctx, p)
	if err != nil {
		return nil, fmt.Errorf("record of %s: %w", p, err)
	}
	if !ok {
		return nil, nil
	}
	return &f, nil
}

// warmPaths bounds the paths warmRecords reads: the database keeps about
// twice as many records at hand (state.maxCachedFiles), and forgets them
// all when it would keep more.
const warmPaths = 2048

// warmRecords reads at once the records of the paths ops lo to hi of
// batch name and of the directories above them, which the decisions ask
// for one at a time: the database keeps what it read at hand, and one
// read of many costs a fraction of as many reads (see state.DB.FilesAt).
// What it could not read is read when a decision asks.
func (n *Node) warmRecords(ctx context.Context, batch *core.Batch, lo, hi int) {
	seen := map[string]bool{}
	var paths []string
	add := func(p string) {
		for p != "" && p != "." && p != "/" && !seen[p] && len(paths) < warmPaths {
			seen[p] = true
			paths = append(paths, p)
			p = path.Dir(p)
		}
	}
	for i := lo; i < hi; i++ {
		op := batch.Op(i)
		add(op.Path)
		add(op.NewPath)
	}
	n.db.FilesAt(ctx, paths)
}

// occupied reports whether something keeps the directory dir: a live row
// strictly under it (the batch's rows first), or an entry on disk that
// is never recorded.
func (n *Node) occupied(ctx context.Context, dir string, pending *batchRecords) (bool, error) {
	prefix := dir + "/"
	decided := map[string]bool{} // paths whose latest row is the batch's
	if pending != nil {
		for p, i := range pending.latest {
			if strings.HasPrefix(p, prefix) {
				if !pending.files[i].Deleted {
					return true, nil
				}
				decided[p] = true
			}
		}
	}
	errFound := errors.New("found")
	err := n.db.FilesUnder(ctx, dir, func(f state.File) error {
		if decided[f.Path] {
			return nil
		}
		return errFound
	})
	if errors.Is(err, errFound) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("records under %s: %w", dir, err)
	}
	// Entries that are never recorded (symlinks, devices) keep a directory
	// too: a file could not replace it, and the op would wait for ever.
	return n.holdsEntries(dir), nil
}

// holdsEntries reports whether the directory dir on disk has entries other
// than drive-node's temp files.
func (n *Node) holdsEntries(dir string) bool {
	d, err := n.folderRoot().Open(dir)
	if err != nil {
		return false
	}
	defer d.Close()
	for {
		entries, err := d.ReadDir(64)
		for _, e := range entries {
			if !strings.HasPrefix(e.Name(), TempPrefix) {
				return true
			}
		}
		if err != nil {
			return false
		}
	}
}
