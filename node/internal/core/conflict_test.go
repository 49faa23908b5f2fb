package core

import (
	"testing"

	"github.com/drive-node/drive-node/oplog"
	"github.com/drive-node/drive-node/vclock"
)

// Who wins when versions of one file meet, and which losers are kept.
func TestConcurrentVersionsOfAFile(t *testing.T) {
	type verdict struct{ effects, record string }
	for _, tc := range []struct {
		name string
		// alpha is what this replica did after the ancestor (a write of
		// "f" by A) and beta the op that arrives, both made by b.
		run  func(b *opBuilder, base oplog.Op) (alpha []oplog.Op, beta oplog.Op)
		want verdict
	}{
		{
			name: "beta edits after seeing the ancestor: plain update",
			run: func(b *opBuilder, base oplog.Op) ([]oplog.Op, oplog.Op) {
				return nil, b.make(devB, 2, oplog.KindWrite, "f", "", "beta", base)
			},
			want: verdict{"place f", "beta"},
		},
		{
			name: "concurrent edits, beta wins: alpha's version goes aside",
			run: func(b *opBuilder, base oplog.Op) ([]oplog.Op, oplog.Op) {
				return []oplog.Op{b.make(devA, 2, oplog.KindWrite, "f", "", "alpha", base)},
					b.make(devB, 3, oplog.KindWrite, "f", "", "beta", base)
			},
			want: verdict{"aside f>copy(f), place f", "beta"},
		},
		{
			name: "concurrent edits, alpha wins: beta's version is placed beside",
			run: func(b *opBuilder, base oplog.Op) ([]oplog.Op, oplog.Op) {
				return []oplog.Op{b.make(devA, 3, oplog.KindWrite, "f", "", "alpha", base)},
					b.make(devB, 2, oplog.KindWrite, "f", "", "beta", base)
			},
			want: verdict{"place copy(f)", "alpha"},
		},
		{
			name: "equal Lamport: the higher device wins",
			run: func(b *opBuilder, base oplog.Op) ([]oplog.Op, oplog.Op) {
				return []oplog.Op{b.make(devA, 2, oplog.KindWrite, "f", "", "alpha", base)},
					b.make(devB, 2, oplog.KindWrite, "f", "", "beta", base)
			},
			want: verdict{"aside f>copy(f), place f", "beta"},
		},
		{
			name: "concurrent edits to the same content: no copy",
			run: func(b *opBuilder, base oplog.Op) ([]oplog.Op, oplog.Op) {
				return []oplog.Op{b.make(devA, 2, oplog.KindWrite, "f", "", "same", base)},
					b.make(devB, 3, oplog.KindWrite, "f", "", "same", base)
			},
			want: verdict{"", "same"},
		},
		{
			name: "beta deletes what alpha edited: the edit stays",
			run: func(b *opBuilder, base oplog.Op) ([]oplog.Op, oplog.Op) {
				return []oplog.Op{b.make(devA, 2, oplog.KindWrite, "f", "", "alpha", base)},
					b.make(devB, 3, oplog.KindDelete, "f", "", "", base)
			},
			want: verdict{"", "alpha"},
		},
		{
			name: "beta edits what alpha deleted: the edit comes back",
			run: func(b *opBuilder, base oplog.Op) ([]oplog.Op, oplog.Op) {
				return []oplog.Op{b.make(devA, 3, oplog.KindDelete, "f", "", "", base)},
					b.make(devB, 2, oplog.KindWrite, "f", "", "beta", base)
			},
			want: verdict{"place f", "beta"},
		},
		{
			name: "beta deletes after seeing the ancestor: removed",
			run: func(b *opBuilder, base oplog.Op) ([]oplog.Op, oplog.Op) {
				return nil, b.make(devB, 2, oplog.KindDelete, "f", "", "", base)
			},
			want: verdict{"remove f", "deleted"},
		},
		{
			name: "an op already among the heads changes nothing",
			run: func(b *opBuilder, base oplog.Op) ([]oplog.Op, oplog.Op) {
				edit := b.make(devB, 2, oplog.KindWrite, "f", "", "beta", base)
				return []oplog.Op{edit}, edit
			},
			want: verdict{"", "unchanged"},
		},
		{
			name: "an op alpha saw and replaced changes nothing",
			run: func(b *opBuilder, base oplog.Op) ([]oplog.Op, oplog.Op) {
				old := b.make(devB, 2, oplog.KindWrite, "f", "", "beta", base)
				return []oplog.Op{old, b.make(devA, 3, oplog.KindWrite, "f", "", "alpha", old)}, old
			},
			want: verdict{"", "unchanged"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newOps()
			base := b.make(devA, 1, oplog.KindWrite, "f", "", "ancestor")
			alpha, beta := tc.run(b, base)
			plan := decide(t, recorded(append([]oplog.Op{base}, alpha...)...), beta, false)
			got := verdict{effects(plan), winner(plan, "f", "ancestor", "alpha", "beta", "same")}
			if got != tc.want {
				t.Errorf("plan = %+v, want %+v", got, tc.want)
			}
			for _, c := range plan.Conflicts {
				if c.Original != "f" || c.Winner == c.Loser {
					t.Errorf("conflict note %+v", c)
				}
			}
		})
	}
}

// The verdict does not depend on the order concurrent versions arrive in:
// both replicas end with the same record.
func TestConcurrentEditsConvergeEitherWay(t *testing.T) {
	b := newOps()
	base := b.make(devA, 1, oplog.KindWrite, "f", "", "ancestor")
	alpha := b.make(devA, 2, oplog.KindWrite, "f", "", "alpha", base)
	beta := b.make(devB, 3, oplog.KindWrite, "f", "", "beta", base)
	onA := decide(t, recorded(base, alpha), beta, false)
	onB := decide(t, recorded(base, beta), alpha, false)
	ra, rb := onA.Records[0], onB.Records[0]
	if ra.Hash != rb.Hash || ra.Origin != rb.Origin || len(ra.Heads) != 2 || len(rb.Heads) != 2 || ra.Version.Compare(rb.Version) != vclock.Equal {
		t.Fatalf("records differ:\n%+v\n%+v", ra, rb)
	}
	if len(onA.Conflicts) != 1 || len(onB.Conflicts) != 1 || onA.Conflicts[0].CopyPath != onB.Conflicts[0].CopyPath {
		t.Fatalf("conflict copies differ: %+v vs %+v", onA.Conflicts, onB.Conflicts)
	}
}
