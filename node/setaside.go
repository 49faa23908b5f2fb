package node

import (
	"context"

	"github.com/drive-node/drive-node/oplog"
	"github.com/drive-node/drive-node/state"
)

// A received op this device counts as handled without carrying it out is
// set aside (state.SetAside) with its reason: its path is ignored here
// (whyIgnored), or the device is send-only (whySendOnly). When the reason
// goes (a rule removed, the device started in another role), the op is
// carried out as an apply pass would have.

// resumeSetAside carries out the set-aside ops whose reason is gone,
// oldest first (in Lamport order, which every causal order keeps). An op
// still set aside for another reason is noted with that reason. An op that
// fails stays set aside, and the next pass tries again.
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
		all, _ := n.ignoredPart(op)
		switch {
		case all && s.Why != whyIgnored:
			still = append(still, setAsideOf(op, whyIgnored))
		case !all:
			due = append(due, op)
		}
	}
	if len(still) > 0 {
		if err := n.db.Apply(ctx, state.Batch{SetAside: still}); err != nil {
			return err
		}
	}
	sortCausal(due)
	var failed error
	for _, op := range due {
		b := state.Batch{Resumed: []state.OpID{opID(op)}}
		if _, part := n.ignoredPart(op); part != nil {
			// A rename still half ignored stays set aside for its other
			// half.
			b = state.Batch{SetAside: []state.SetAside{setAsideOf(op, whyIgnored)}}
		}
		if err := n.placeAgain(ctx, op, b); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			n.log.Debug("a change set aside could not be carried out yet", "op", op.String(), "err", err)
			failed = err
			continue
		}
		n.log.Debug("a change set aside is carried out", "op", op.String())
	}
	return failed
}
