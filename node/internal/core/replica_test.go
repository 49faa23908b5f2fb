package core

import (
	"strings"
	"testing"

	"github.com/drive-node/drive-node/certs"
	"github.com/drive-node/drive-node/content"
	"github.com/drive-node/drive-node/oplog"
	"github.com/drive-node/drive-node/state"
	"github.com/drive-node/drive-node/vclock"
)

// The remote rules are tested as Mutagen tests reconcile(ancestor, alpha,
// beta): an ancestor every replica has, what this replica did (alpha, its
// records), and the op that arrives (beta); the plan is the verdict.

var devA, devB = certs.DeviceID{0xa}, certs.DeviceID{0xb}

// opBuilder makes ops of one history: each gets the next sequence of its
// origin, and a parent of the ops it names.
type opBuilder struct{ seq map[certs.DeviceID]uint64 }

func newOps() *opBuilder { return &opBuilder{seq: map[certs.DeviceID]uint64{}} }

func (b *opBuilder) make(origin certs.DeviceID, lamport uint64, kind oplog.Kind, path, newPath, data string, seen ...oplog.Op) oplog.Op {
	b.seq[origin]++
	op := oplog.Op{Kind: kind, Path: path, NewPath: newPath, Origin: origin, Seq: b.seq[origin], Lamport: lamport, Mode: 0o644, MTime: int64(lamport) * 1e9}
	if kind == oplog.KindWrite || kind == oplog.KindRename {
		op.Hash, op.Size = content.Sum([]byte(data)), int64(len(data))
	}
	if kind == oplog.KindMkdir {
		op.Mode = 0o755
	}
	var parent vclock.Vector
	for _, s := range seen {
		parent = parent.Merge(s.Version())
	}
	op.Parent = parent
	return op
}

// recorded is a replica's snapshot after it recorded ops in order, as a
// local op or an op with no concurrent head is recorded (RecordsFor).
func recorded(ops ...oplog.Op) *Snapshot {
	s := NewSnapshot()
	for _, op := range ops {
		o := op
		s.Ops[state.OpID{Origin: op.Origin, Seq: op.Seq}] = &o
		for _, r := range RecordsFor(op, 0) {
			s.Records[r.Path] = &r
		}
	}
	return s
}

// decide plans op on s as the node does, answering every need: what the
// snapshot lacks is not there.
func decide(t *testing.T, s *Snapshot, op oplog.Op, sourceUsable bool) RemotePlan {
	t.Helper()
	return decideArrival(t, s, Arrival{Op: op, SourceUsable: sourceUsable})
}

// decideArrival is decide for an op with what is known of it beyond s.
func decideArrival(t *testing.T, s *Snapshot, a Arrival) RemotePlan {
	t.Helper()
	for round := 0; ; round++ {
		plan := PlanRemote(a, s)
		if plan.Needs.Empty() {
			return plan
		}
		if round > 20 {
			t.Fatalf("needs do not settle: %+v", plan.Needs)
		}
		for _, p := range plan.Needs.Records {
			s.Records[p] = nil
		}
		for _, id := range plan.Needs.Ops {
			s.Ops[id] = nil
		}
		for _, d := range plan.Needs.Occupied {
			s.Occupied[d] = false
			for p, r := range s.Records {
				if r != nil && !r.Deleted && strings.HasPrefix(p, d+"/") {
					s.Occupied[d] = true
				}
			}
		}
	}
}

// effects renders a plan's effects compactly, a conflict copy as "copy(p)".
func effects(p RemotePlan) string {
	name := func(s string) string {
		if i := strings.Index(s, ".conflict-"); i >= 0 {
			return "copy(" + s[:i] + ")"
		}
		return s
	}
	var out []string
	for _, e := range p.Effects {
		k := [...]string{"place", "move", "aside", "remove", "rmdir", "mkdir", "chmod"}[e.Kind]
		s := k + " " + name(e.Path)
		if e.Kind == Move || e.Kind == MoveAside {
			s += ">" + name(e.To)
		}
		out = append(out, s)
	}
	return strings.Join(out, ", ")
}

// winner renders the record of path p in the plan: "dir", "deleted" or
// the content's data as given to hashOf.
func winner(p RemotePlan, path string, data ...string) string {
	for i := len(p.Records) - 1; i >= 0; i-- {
		r := p.Records[i]
		if r.Path != path {
			continue
		}
		switch {
		case r.Deleted:
			return "deleted"
		case r.Dir:
			return "dir"
		}
		for _, d := range data {
			if r.Hash == content.Sum([]byte(d)) {
				return d
			}
		}
		return "?"
	}
	return "unchanged"
}
