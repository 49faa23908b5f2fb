// Package core decides what the engine does, from values to values: which
// ops a batch of local observations makes (PlanLocal), the records an op
// leaves (RecordsFor), which ops a batch can skip (Batch), and
// what a remote op does to the folder and the records (PlanRemote): who
// wins, which versions are kept as conflict copies, where an edit
// concurrent with a rename goes, how a file and a directory at one path
// are settled, and what must be recorded as local changes afterwards.
//
// It does no IO and takes no callbacks: what it may know of a replica is
// a Snapshot gathered before the call. A decision that needs a value the
// snapshot lacks says so (RemotePlan.Needs); the caller gathers it and
// decides again, so the same inputs always give the same plan, on the
// daemon and in the simulation alike.
package core

import (
	"slices"

	"github.com/drive-node/drive-node/oplog"
	"github.com/drive-node/drive-node/state"
)

// Snapshot is what a decision may know of a replica, gathered before it:
// records (with the batch's earlier decisions applied, which take
// precedence over the database), the ops their heads name, and whether
// directories hold anything.
//
// A key missing from a map was not gathered; a key present with a nil or
// false value was looked up and found empty. The core never changes a
// Snapshot.
type Snapshot struct {
	// Records maps a path to its record, or nil when it has none.
	Records map[string]*state.File
	// Ops maps an op to itself, or nil when the log lacks it.
	Ops map[state.OpID]*oplog.Op
	// Occupied maps a directory to whether something keeps it: a live
	// record strictly under it, or an entry on disk that is never
	// recorded (a symlink, a device) other than the engine's temp files.
	Occupied map[string]bool
}

// NewSnapshot returns an empty snapshot ready to be filled.
func NewSnapshot() *Snapshot {
	return &Snapshot{Records: map[string]*state.File{}, Ops: map[state.OpID]*oplog.Op{}, Occupied: map[string]bool{}}
}

// Needs lists what a decision looked for in a Snapshot and did not find.
// Gathering it and deciding again converges: each round only adds keys,
// and the keys a decision can ask for are finite.
type Needs struct {
	Records  []string
	Ops      []state.OpID
	Occupied []string
}

// Empty reports whether nothing was missing: the decision is final.
func (n Needs) Empty() bool { return len(n.Records) == 0 && len(n.Ops) == 0 && len(n.Occupied) == 0 }

// reader reads a Snapshot for one decision, noting what it lacks.
type reader struct {
	s     *Snapshot
	needs *Needs
}

func newReader(s *Snapshot) reader { return reader{s: s, needs: &Needs{}} }

// record returns a copy of p's record, or nil (none, or not gathered).
func (r reader) record(p string) *state.File {
	f, ok := r.s.Records[p]
	if !ok {
		if !slices.Contains(r.needs.Records, p) {
			r.needs.Records = append(r.needs.Records, p)
		}
		return nil
	}
	if f == nil {
		return nil
	}
	c := *f
	return &c
}

func (r reader) op(id state.OpID) (oplog.Op, bool) {
	op, ok := r.s.Ops[id]
	if !ok {
		if !slices.Contains(r.needs.Ops, id) {
			r.needs.Ops = append(r.needs.Ops, id)
		}
		return oplog.Op{}, false
	}
	if op == nil {
		return oplog.Op{}, false
	}
	return *op, true
}

// liveUnder reports whether something keeps the directory dir (see
// Snapshot.Occupied).
func (r reader) liveUnder(dir string) bool {
	v, ok := r.s.Occupied[dir]
	if !ok && !slices.Contains(r.needs.Occupied, dir) {
		r.needs.Occupied = append(r.needs.Occupied, dir)
	}
	return v
}
