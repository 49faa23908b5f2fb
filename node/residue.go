package node

import (
	"context"
	"errors"
	"fmt"
	"path"
	"sync"

	"github.com/drive-node/drive-node/certs"
	"github.com/drive-node/drive-node/content"
	"github.com/drive-node/drive-node/node/internal/core"
	"github.com/drive-node/drive-node/oplog"
	"github.com/drive-node/drive-node/state"
	"github.com/drive-node/drive-node/watcher"
)

// residue is what the remote ops pending when the node opens may have left in the
// folder before a crash: a chunk of ops is placed first and recorded after,
// so a crash in between leaves files (and removals) the database does not
// know. The start-up scan would take them for this device's own changes,
// made concurrently with the very ops that made them, and every later
// edit by a peer would then end in a conflict copy, or a deletion be
// undone. An observation that matches what such an op leaves is not a
// local change: the op is applied again and records it (resumeLocked).
//
// Its zero value holds nothing and explains nothing. It is safe for
// concurrent use.
type residue struct {
	mu  sync.Mutex
	at  map[string][]leftover
	ops map[state.OpID]bool
}

// leftover is one thing an op leaves at a path.
type leftover struct {
	op          state.OpID
	exists, dir bool
	hash        content.Hash // for a file
}

// leftovers returns what op leaves in the folder: its content at the
// path it writes or renames to, the directories above it, nothing at the
// path it deletes or renames from.
func leftovers(op oplog.Op) map[string]leftover {
	id := state.OpID{Origin: op.Origin, Seq: op.Seq}
	out := map[string]leftover{}
	created := func(p string, l leftover) {
		out[p] = l
		for d := path.Dir(p); d != "." && d != "/" && d != ""; d = path.Dir(d) {
			out[d] = leftover{op: id, exists: true, dir: true}
		}
	}
	switch op.Kind {
	case oplog.KindWrite:
		created(op.Path, leftover{op: id, exists: true, hash: op.Hash})
	case oplog.KindMkdir:
		created(op.Path, leftover{op: id, exists: true, dir: true})
	case oplog.KindRename:
		out[op.Path] = leftover{op: id}
		created(op.NewPath, leftover{op: id, exists: true, hash: op.Hash})
	case oplog.KindDelete, oplog.KindRmdir:
		out[op.Path] = leftover{op: id}
	}
	return out
}

// leftBy reports whether obs, a fresh look at p, is what op leaves at p
// (see leftovers).
func leftBy(op oplog.Op, p string, obs []watcher.Observation) bool {
	l, ok := leftovers(op)[p]
	return ok && len(obs) > 0 && l.matches(obs[0])
}

// matches reports whether o, a look at the path, finds what l says is left
// there.
func (l leftover) matches(o watcher.Observation) bool {
	switch {
	case !l.exists:
		return !o.Exists
	case l.dir:
		return o.Exists && o.Dir
	default:
		return o.Exists && !o.Dir && o.Hash == l.hash
	}
}

// add takes the remote ops that were pending when the node started. Only
// the first applyChunk of each origin can have been placed: a chunk is
// recorded before the next one is placed, and it starts at the recorded
// marks.
func (r *residue) add(ops []oplog.Op, self certs.DeviceID) {
	r.mu.Lock()
	defer r.mu.Unlock()
	taken := map[certs.DeviceID]int{}
	for _, op := range ops {
		if op.Origin == self || taken[op.Origin] >= applyChunk {
			continue
		}
		taken[op.Origin]++
		if r.at == nil {
			r.at, r.ops = map[string][]leftover{}, map[state.OpID]bool{}
		}
		for p, l := range leftovers(op) {
			r.at[p] = append(r.at[p], l)
		}
		r.ops[state.OpID{Origin: op.Origin, Seq: op.Seq}] = true
	}
}

// active reports whether anything is left to explain.
func (r *residue) active() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.at != nil
}

// has reports whether op may have left something unrecorded.
func (r *residue) has(op oplog.Op) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ops[state.OpID{Origin: op.Origin, Seq: op.Seq}]
}

// explains reports whether obs, a fresh look at one path, is what one of
// the pending ops leaves there.
func (r *residue) explains(obs []watcher.Observation) bool {
	if len(obs) == 0 {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.explainsLocked(obs[0])
}

func (r *residue) explainsLocked(o watcher.Observation) bool {
	for _, l := range r.at[o.Path] {
		if l.matches(o) {
			return true
		}
	}
	return false
}

// filter returns the observations that the pending ops do not explain.
func (r *residue) filter(obs []watcher.Observation) []watcher.Observation {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := obs[:0:0]
	for _, o := range obs {
		if !r.explainsLocked(o) {
			out = append(out, o)
		}
	}
	return out
}

// retire forgets what the ops applied up to the marks left: their
// records now say it.
func (r *residue) retire(applied map[certs.DeviceID]uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for id := range r.ops {
		if id.Seq <= applied[id.Origin] {
			delete(r.ops, id)
		}
	}
	if len(r.ops) == 0 {
		r.at, r.ops = nil, nil
		return
	}
	for p, ls := range r.at {
		kept := ls[:0]
		for _, l := range ls {
			if r.ops[l.op] {
				kept = append(kept, l)
			}
		}
		if len(kept) == 0 {
			delete(r.at, p)
		} else {
			r.at[p] = kept
		}
	}
}

// noteResidue takes the remote ops pending when the node opens as what a
// crash may have left in the folder unrecorded. It reads them one at a
// time, only as many of each origin as residue.add keeps, so a log a peer
// filled is not read whole into memory.
func (n *Node) noteResidue(ctx context.Context) error {
	applied, err := n.db.Applied(ctx)
	if err != nil {
		return fmt.Errorf("read what the database has applied: %w", err)
	}
	var pending uint64
	for origin, highest := range n.ops.Vector() {
		if origin == n.id.ID || applied[origin] >= highest {
			continue
		}
		pending += highest - applied[origin]
		taken := 0
		err := n.ops.Iterate(ctx, origin, applied[origin]+1, func(op oplog.Op) error {
			if taken >= applyChunk {
				return errStop
			}
			taken++
			n.residue.add([]oplog.Op{op}, n.id.ID)
			return nil
		})
		if err != nil && !errors.Is(err, errStop) {
			return fmt.Errorf("read the pending ops of %s: %w", origin.Short(), err)
		}
	}
	if n.residue.active() {
		n.log.Info("changes received before the last stop are applied again; what they left on disk is not taken as a local change", "pending", pending)
	}
	return nil
}

// retireResidue forgets the residue of the ops now applied. The caller
// holds the commit lock, at the end of a chunk: within one, an op marked
// applied may still be superseded by a later op that must see its
// residue.
func (n *Node) retireResidue(ctx context.Context) {
	if !n.residue.active() {
		return
	}
	if applied, err := n.db.Applied(ctx); err == nil {
		n.residue.retire(applied)
	}
}

// resumeLocked records op as applied without carrying it out again when
// the folder holds, unrecorded, exactly what op leaves: it was carried
// out before a crash that came before its records were written. It
// returns the records, or nil when op must be carried out. Carrying it out
// again would fetch its content anew, and an op skipped because a later
// one supersedes it would otherwise leave its file unrecorded, to be taken
// for a local change concurrent with that later op.
func (n *Node) resumeLocked(ctx context.Context, op oplog.Op, pending *batchRecords) ([]state.File, error) {
	var paths []string
	switch op.Kind {
	case oplog.KindWrite, oplog.KindDelete:
		paths = []string{op.Path}
	case oplog.KindRename:
		paths = []string{op.Path, op.NewPath}
	default:
		return nil, nil
	}
	for _, p := range paths {
		if checkPath(p) != nil {
			return nil, nil
		}
		differs, err := n.diskDiffers(ctx, p, pending, nil)
		if err != nil || !differs {
			return nil, err
		}
		obs, err := n.observe(ctx, p)
		if err != nil || !leftBy(op, p, obs) {
			return nil, err
		}
	}
	// The records are the core's, as when op is applied: op joins the
	// heads already recorded, and a version concurrent with it stays one.
	// Op alone would drop such a head here and nowhere else.
	plan, err := n.planRemote(ctx, core.Arrival{Op: op, At: n.clock.Now().UnixNano()}, pending)
	if err != nil {
		return nil, err
	}
	rows := append([]state.File{}, plan.Records...)
	for i := range rows {
		if !rows[i].Deleted {
			n.fillFromDisk(&rows[i], true, nil, nil) // what op left there
		}
	}
	n.log.Debug("op found carried out before a crash; recorded", "op", op.String())
	return rows, nil
}
