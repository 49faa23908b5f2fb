package core

import (
	"strings"
	"testing"

	"github.com/drive-node/drive-node/oplog"
)

// supersession is what Batch says of each op, as "K" (kept), "W" (whole)
// or "T" (a rename's target).
func supersession(ops ...oplog.Op) string {
	b := NewBatch(ops)
	var out []string
	for i := range ops {
		out = append(out, map[Superseded]string{Kept: "K", Whole: "W", Target: "T"}[b.Superseded(i)])
	}
	return strings.Join(out, " ")
}

func TestBatchSupersession(t *testing.T) {
	cases := []struct {
		name string
		ops  func(b *opBuilder) []oplog.Op
		want string
	}{
		{"an overwrite replaces the write it saw", func(b *opBuilder) []oplog.Op {
			w1 := b.make(devA, 1, oplog.KindWrite, "a", "", "one")
			return []oplog.Op{w1, b.make(devA, 2, oplog.KindWrite, "a", "", "two", w1)}
		}, "W K"},
		{"concurrent writes are both kept", func(b *opBuilder) []oplog.Op {
			return []oplog.Op{b.make(devA, 1, oplog.KindWrite, "a", "", "one"), b.make(devB, 1, oplog.KindWrite, "a", "", "two")}
		}, "K K"},
		{"a write moved, moved again and deleted needs nothing", func(b *opBuilder) []oplog.Op {
			w := b.make(devA, 1, oplog.KindWrite, "a", "", "one")
			m1 := b.make(devA, 2, oplog.KindRename, "a", "b", "one", w)
			m2 := b.make(devA, 3, oplog.KindRename, "b", "c", "one", m1)
			return []oplog.Op{w, m1, m2, b.make(devA, 4, oplog.KindDelete, "c", "", "", m2)}
		}, "W T T K"},
		{"a write moved away is placed by the rename", func(b *opBuilder) []oplog.Op {
			w := b.make(devA, 1, oplog.KindWrite, "a", "", "one")
			return []oplog.Op{w, b.make(devA, 2, oplog.KindRename, "a", "b", "one", w)}
		}, "W K"},
		{"a rename whose target is overwritten only removes its source", func(b *opBuilder) []oplog.Op {
			m := b.make(devA, 1, oplog.KindRename, "a", "b", "one")
			return []oplog.Op{m, b.make(devA, 2, oplog.KindWrite, "b", "", "two", m)}
		}, "T K"},
		{"a rename whose target another device overwrote unseen is kept", func(b *opBuilder) []oplog.Op {
			m := b.make(devA, 1, oplog.KindRename, "a", "b", "one")
			return []oplog.Op{m, b.make(devB, 1, oplog.KindWrite, "b", "", "two")}
		}, "K K"},
		{"any later op that saw it replaces it, not only the last", func(b *opBuilder) []oplog.Op {
			// B's write is concurrent with A's later delete, which saw A's
			// own write: the write goes, though the last op on the path
			// did not see it.
			w := b.make(devA, 1, oplog.KindWrite, "a", "", "one")
			d := b.make(devA, 2, oplog.KindDelete, "a", "", "", w)
			return []oplog.Op{w, d, b.make(devB, 1, oplog.KindWrite, "a", "", "two")}
		}, "W K K"},
		{"a conflict copy a later op records is not the op's own path", func(b *opBuilder) []oplog.Op {
			w := b.make(devA, 1, oplog.KindWrite, "a", "", "one")
			return []oplog.Op{w, b.make(devA, 2, oplog.KindWrite, "a.conflict", "", "one", w)}
		}, "K K"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := supersession(c.ops(newOps())...); got != c.want {
				t.Errorf("got %s, want %s", got, c.want)
			}
		})
	}
}

func TestBatchReplacedAfterLooksOnlyLater(t *testing.T) {
	b := newOps()
	w1 := b.make(devA, 1, oplog.KindWrite, "a", "", "one")
	w2 := b.make(devA, 2, oplog.KindWrite, "a", "", "two", w1)
	batch := NewBatch([]oplog.Op{w1, w2})
	for _, c := range []struct {
		i    int
		path string
		want bool
	}{{0, "a", true}, {1, "a", false}, {0, "b", false}} {
		if got := batch.ReplacedAfter(c.i, c.path); got != c.want {
			t.Errorf("ReplacedAfter(%d, %q) = %v, want %v", c.i, c.path, got, c.want)
		}
	}
	var none *Batch
	if none.ReplacedAfter(0, "a") || none.Superseded(0) != Kept {
		t.Error("a nil batch replaces something")
	}
}

// A losing version whose conflict copy a later op of the batch records
// (and perhaps removes) is not placed: its content may be nowhere now.
func TestConflictCopyALaterOpRecordsIsNotPlaced(t *testing.T) {
	b := newOps()
	base := b.make(devA, 1, oplog.KindWrite, "a", "", "base")
	mine := b.make(devB, 2, oplog.KindWrite, "a", "", "mine", base)
	theirs := b.make(devA, 3, oplog.KindWrite, "a", "", "theirs", base)
	// This replica holds theirs; mine arrives and loses.
	plan := decide(t, recorded(base, theirs), mine, false)
	var cp string
	for _, e := range plan.Effects {
		if e.Kind == Place && e.Path != "a" {
			cp = e.Path
		}
	}
	if cp == "" {
		t.Fatalf("no conflict copy placed without a batch: %s", effects(plan))
	}
	// The copy's maker recorded it and removed it, after seeing mine.
	keep := b.make(devA, 4, oplog.KindWrite, cp, "", "mine", mine)
	gone := b.make(devA, 5, oplog.KindDelete, cp, "", "", keep)
	batch := NewBatch([]oplog.Op{mine, keep, gone})
	plan = decideArrival(t, recorded(base, theirs), Arrival{Op: mine, Batch: batch, Index: 0})
	for _, e := range plan.Effects {
		if e.Path == cp {
			t.Errorf("conflict copy %s placed though a later op records it: %s", cp, effects(plan))
		}
	}
	if len(plan.Conflicts) != 0 || len(plan.Records) == 0 {
		t.Errorf("want the winner recorded and no conflict noted, got records %v, conflicts %v", plan.Records, plan.Conflicts)
	}
}
