package core

import (
	"testing"

	"github.com/drive-node/drive-node/oplog"
	"github.com/drive-node/drive-node/vclock"
)

// A file and a directory at one path, or a file where a directory is
// needed: the directory stays and the file goes to its conflict copy.
func TestFileAndDirectoryClash(t *testing.T) {
	for _, tc := range []struct {
		name            string
		run             func(b *opBuilder) (local []oplog.Op, remote oplog.Op)
		effects, record string
	}{
		{
			name: "a directory arrives where a concurrent file is: the file goes aside",
			run: func(b *opBuilder) ([]oplog.Op, oplog.Op) {
				return []oplog.Op{b.make(devA, 1, oplog.KindWrite, "d", "", "file")}, b.make(devB, 1, oplog.KindMkdir, "d", "", "")
			},
			effects: "aside d>copy(d), mkdir d", record: "dir",
		},
		{
			name: "a file arrives where a concurrent directory is: the file is placed beside",
			run: func(b *opBuilder) ([]oplog.Op, oplog.Op) {
				return []oplog.Op{b.make(devA, 1, oplog.KindMkdir, "d", "", "")}, b.make(devB, 2, oplog.KindWrite, "d", "", "file")
			},
			effects: "place copy(d)", record: "dir",
		},
		{
			name: "a file inside a path that is a file here: that file goes aside",
			run: func(b *opBuilder) ([]oplog.Op, oplog.Op) {
				return []oplog.Op{b.make(devA, 1, oplog.KindWrite, "d", "", "file")}, b.make(devB, 1, oplog.KindWrite, "d/x", "", "inner")
			},
			effects: "aside d>copy(d), place d/x", record: "inner",
		},
		{
			name: "a file replaced a directory that still holds a concurrent entry: the directory stays",
			run: func(b *opBuilder) ([]oplog.Op, oplog.Op) {
				mk := b.make(devA, 1, oplog.KindMkdir, "d", "", "")
				inner := b.make(devA, 2, oplog.KindWrite, "d/x", "", "inner", mk)
				return []oplog.Op{mk, inner}, b.make(devB, 3, oplog.KindWrite, "d", "", "file", mk)
			},
			effects: "place copy(d)", record: "file",
		},
		{
			name: "a directory removed after seeing everything in it goes",
			run: func(b *opBuilder) ([]oplog.Op, oplog.Op) {
				mk := b.make(devA, 1, oplog.KindMkdir, "d", "", "")
				return []oplog.Op{mk}, b.make(devB, 2, oplog.KindRmdir, "d", "", "", mk)
			},
			effects: "rmdir d", record: "deleted",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newOps()
			local, remote := tc.run(b)
			plan := decide(t, recorded(local...), remote, false)
			if got := effects(plan); got != tc.effects {
				t.Errorf("effects = %q, want %q", got, tc.effects)
			}
			path := remote.Path
			if got := winner(plan, path, "file", "inner"); got != tc.record {
				t.Errorf("record of %s = %q, want %q", path, got, tc.record)
			}
		})
	}
}

// A received op leaves the record its origin made of it (RecordsFor):
// a replica's records do not depend on which device made a change.
func TestReceivedOpRecordedAsItsOriginRecordsIt(t *testing.T) {
	for _, kind := range []oplog.Kind{oplog.KindWrite, oplog.KindMkdir, oplog.KindDelete, oplog.KindRmdir} {
		b := newOps()
		base := b.make(devA, 1, oplog.KindMkdir, "p", "", "")
		if kind == oplog.KindDelete {
			base = b.make(devA, 1, oplog.KindWrite, "p", "", "x")
		}
		op := b.make(devB, 2, kind, "p", "", "y", base)
		plan := decide(t, recorded(base), op, false)
		want := RecordsFor(op, 0)[0]
		if len(plan.Records) != 1 {
			t.Fatalf("%v: records %+v", kind, plan.Records)
		}
		got := plan.Records[0]
		if got.Dir != want.Dir || got.Deleted != want.Deleted || got.Hash != want.Hash || got.Version.Compare(want.Version) != vclock.Equal {
			t.Errorf("%v: recorded %+v, its origin records %+v", kind, got, want)
		}
	}
}
