package node

import (
	"context"
	"fmt"

	"github.com/drive-node/drive-node/certs"
	"github.com/drive-node/drive-node/oplog"
	"github.com/drive-node/drive-node/state"
)

// A received op this device counts as handled without carrying it out is
// set aside (state.SetAside) with its reason: its path is ignored here
// (whyIgnored), or the device is send-only (whySendOnly). When the reason
// goes (a rule removed, the device started in another role), the op is
// carried out as an apply pass would have.

// resumeSetAside carries out the set-aside ops whose reason is gone, as
// one batch in Lamport order (which every causal order keeps): an op a
// later one replaces is not fetched or placed, and each op handled is set
// aside no more. An op set aside now for another reason is noted with
// that reason. An op that cannot be carried out yet (its content is on no
// connected peer) stays set aside, with the later ops of its origin, and
// the next pass tries again.
func (n *Node) resumeSetAside(ctx context.Context) error {
	var rows []state.SetAside
	if err := n.db.SetAsideOps(ctx, "", func(s state.SetAside) error {
		if s.Why != whySendOnly || n.cfg.Role != SendOnly {
			rows = append(rows, s)
		}
		return nil
	}); err != nil {
		return err
	}
	var due []oplog.Op
	var still []state.SetAside
	for _, s := range rows {
		op, found, err := n.ops.Get(s.Op.Origin, s.Op.Seq)
		if err != nil {
			return err
		}
		if !found {
			continue
		}
		switch why, all, _ := n.setAside(op); {
		case all && why != s.Why:
			still = append(still, setAsideOf(op, why))
		case !all:
			due = append(due, op)
		}
	}
	if len(still) > 0 {
		if err := n.db.Apply(ctx, state.Batch{SetAside: still}); err != nil {
			return err
		}
	}
	if len(due) == 0 {
		return nil
	}
	sortCausal(due)
	blocked := newBlocks()
	errs, _, err := n.applyWindow(ctx, due, nil, map[certs.DeviceID]uint64{}, blocked, nil, true, windowLead{})
	if err != nil {
		return err
	}
	for origin, op := range blocked.at {
		return fmt.Errorf("a change set aside waits to be carried out: %s: %s", op.String(), blocked.why[origin])
	}
	if len(errs) > 0 {
		return errs[0]
	}
	return nil
}

// splitRenamesOverSetAside makes each rename whose target has ops set
// aside a removal of its source and a write of its target. A rename's
// version takes in its source's, which may claim to follow a peer's op
// at the target that this device set aside and never placed (it counted
// it handled): the write, made after seeing only what is recorded at the
// target, is concurrent with that op instead, so that neither is lost.
func (n *Node) splitRenamesOverSetAside(ctx context.Context, ops []oplog.Op, known map[string]state.File) ([]oplog.Op, error) {
	out := make([]oplog.Op, 0, len(ops))
	for _, op := range ops {
		if op.Kind == oplog.KindRename {
			aside, err := n.db.SetAsideAt(ctx, op.NewPath)
			if err != nil {
				return nil, err
			}
			if aside {
				from, to := known[op.Path], known[op.NewPath]
				out = append(out,
					oplog.Op{Kind: oplog.KindWrite, Path: op.NewPath, Hash: op.Hash, Size: op.Size, Mode: op.Mode, MTime: op.MTime, Parent: to.Version},
					oplog.Op{Kind: oplog.KindDelete, Path: op.Path, Hash: from.Hash, Size: from.Size, Parent: from.Version})
				continue
			}
		}
		out = append(out, op)
	}
	return out, nil
}
