package core

import (
	"testing"

	"github.com/drive-node/drive-node/oplog"
)

// Rename vs edit: an edit made concurrently with a rename of its file is
// carried to the rename's target, whichever of the two arrives second.
func TestEditConcurrentWithARename(t *testing.T) {
	for _, tc := range []struct {
		name             string
		local            func(b *opBuilder, base oplog.Op) []oplog.Op
		remote           func(b *opBuilder, base oplog.Op) oplog.Op
		usable           bool
		effects, forward string
	}{
		{
			name: "the rename was here, the edit arrives: its content goes to the target",
			local: func(b *opBuilder, base oplog.Op) []oplog.Op {
				return []oplog.Op{b.make(devA, 2, oplog.KindRename, "a", "b", "v1", base)}
			},
			remote: func(b *opBuilder, base oplog.Op) oplog.Op {
				return b.make(devB, 2, oplog.KindWrite, "a", "", "v2", base)
			},
			effects: "place b", forward: "b",
		},
		{
			name: "the edit was here, the rename arrives: the edited file moves",
			local: func(b *opBuilder, base oplog.Op) []oplog.Op {
				return []oplog.Op{b.make(devA, 2, oplog.KindWrite, "a", "", "v2", base)}
			},
			remote: func(b *opBuilder, base oplog.Op) oplog.Op {
				return b.make(devB, 2, oplog.KindRename, "a", "b", "v1", base)
			},
			effects: "move a>b", forward: "b",
		},
		{
			name:  "a rename that saw the edit is an ordinary move",
			local: func(b *opBuilder, base oplog.Op) []oplog.Op { return nil },
			remote: func(b *opBuilder, base oplog.Op) oplog.Op {
				return b.make(devB, 2, oplog.KindRename, "a", "b", "v1", base)
			},
			usable:  true,
			effects: "move a>b", forward: "",
		},
		{
			name: "the target was replaced since: the edit stays where it is",
			local: func(b *opBuilder, base oplog.Op) []oplog.Op {
				r := b.make(devA, 2, oplog.KindRename, "a", "b", "v1", base)
				return []oplog.Op{r, b.make(devA, 3, oplog.KindWrite, "b", "", "other", r)}
			},
			remote: func(b *opBuilder, base oplog.Op) oplog.Op {
				return b.make(devB, 2, oplog.KindWrite, "a", "", "v2", base)
			},
			effects: "place a", forward: "",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newOps()
			base := b.make(devA, 1, oplog.KindWrite, "a", "", "v1")
			s := recorded(append([]oplog.Op{base}, tc.local(b, base)...)...)
			op := tc.remote(b, base)
			to, needs := ForwardTarget(op, s)
			for !needs.Empty() {
				decide(t, s, op, tc.usable) // answers the same needs
				to, needs = ForwardTarget(op, s)
			}
			if to != tc.forward {
				t.Errorf("ForwardTarget = %q, want %q", to, tc.forward)
			}
			plan := decide(t, s, op, tc.usable)
			if got := effects(plan); got != tc.effects {
				t.Errorf("effects = %q, want %q", got, tc.effects)
			}
			if tc.forward != "" && len(plan.Observe) == 0 {
				t.Error("a forwarded edit must be recorded as a local change afterwards")
			}
		})
	}
}
