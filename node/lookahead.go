package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"path"
	"slices"
	"sync/atomic"

	"github.com/drive-node/drive-node/certs"
	"github.com/drive-node/drive-node/node/internal/core"
	"github.com/drive-node/drive-node/oplog"
	"github.com/drive-node/drive-node/vclock"
)

// A pass over every pending op at once skipped an op that a later pending
// op replaces (core.Batch): a version nobody will keep is not placed, and
// a content that existed only briefly on its origin is never asked for.
// A pass in windows sees only a window's ops; what replaces an op can be
// further on. A device that built 5,000 files and removed them leaves
// writes whose contents are nowhere, with the removals more than a window
// later: the first write would block its origin for ever. So when an op
// blocks its origin, the pass reads on in that origin's log for ops that
// replace it, and the next pass's batches hold them.

// blocks holds, for one pass, the origins whose next op cannot be
// applied yet: why (status shows it) and at which op; for the window just
// applied, the op itself (lookAhead reads on from it).
type blocks struct {
	why map[certs.DeviceID]string
	seq map[certs.DeviceID]uint64
	at  map[certs.DeviceID]oplog.Op
	// some is set once an op failed in the pass; a window's fetcher reads
	// it while the window is applied (see applyWindow's lead).
	some atomic.Bool
}

func newBlocks() *blocks {
	return &blocks{why: map[certs.DeviceID]string{}, seq: map[certs.DeviceID]uint64{}, at: map[certs.DeviceID]oplog.Op{}}
}

// has reports whether origin's ops wait for the next pass.
func (b *blocks) has(origin certs.DeviceID) bool {
	_, ok := b.why[origin]
	return ok
}

// block notes that op cannot be applied now, and why: its origin's later
// ops wait with it.
func (b *blocks) block(op oplog.Op, why string) {
	b.why[op.Origin], b.seq[op.Origin], b.at[op.Origin] = why, op.Seq, op
	b.some.Store(true)
}

// aheadState is what lookAhead found, per origin blocked at an op, for
// the passes after. Only apply passes use it, and they never run
// concurrently.
type aheadState struct {
	origins map[certs.DeviceID]*ahead
}

// ahead is what lookAhead found for one origin blocked at op seq: the
// later ops that replace it or the ops after it (later), and how far it
// read the origin's log (through): a peer's million ops after an op whose
// content never comes are read once, not at every pass. replaced holds
// the paths at which later replaces the blocking op.
type ahead struct {
	seq, through uint64
	later        []oplog.Op
	replaced     map[string]bool
}

// aheadOps bounds the paths at which the ops kept for an origin replace
// its blocking op: its path, a rename's other path and the op's conflict
// copies take a few.
const aheadOps = 16

// pending returns what lookAhead found that applied (the database's
// vector) does not cover yet, for a pass's batches, and the bytes it
// takes.
func (a *aheadState) pending(applied map[certs.DeviceID]uint64) ([]oplog.Op, int) {
	var out []oplog.Op
	size := 0
	for _, origin := range slices.SortedFunc(maps.Keys(a.origins), compareIDs) {
		for _, op := range a.origins[origin].later {
			if op.Seq > applied[origin] {
				out = append(out, op)
				size += opFootprint(op)
			}
		}
	}
	return out, size
}

// keep forgets what was found for origins no longer blocked where it was
// found for, after a pass that left blocked.
func (a *aheadState) keep(blocked *blocks) {
	for origin, e := range a.origins {
		if seq, ok := blocked.seq[origin]; !ok || seq != e.seq {
			delete(a.origins, origin)
		}
	}
}

// compareIDs orders device IDs by their bytes: what is done per origin is
// done in one order, and a simulated run replays.
func compareIDs(a, b certs.DeviceID) int { return bytes.Compare(a[:], b[:]) }

// lookAhead reads on, for each origin the window just applied blocked at
// an op, in that origin's log beyond the window, for ops that replace the
// blocking op and the ops the window held back after it. It reports
// whether it found any: the next pass, which the caller asks for at once,
// takes them into its batches. room is what the pass may still keep of
// them, in bytes (see replacedLater).
//
// The blocking op waits for the next pass, not for the next window: what
// it did before it failed (a file moved aside) is on disk, and the
// watcher records it before the op is decided again, as when a later op
// that replaces it arrives from a peer. Only the origin's own ops are
// read: an op of another origin that replaces one is applied in a later
// window (that origin is not blocked on it), and the next pass finds the
// op outdated and applies it with nothing to place.
func (n *Node) lookAhead(ctx context.Context, r *pendingReader, window []oplog.Op, blocked *blocks, room *int) (bool, error) {
	if n.ahead.origins == nil {
		n.ahead.origins = map[certs.DeviceID]*ahead{}
	}
	// Per blocked origin, the ops the window held back for the blocking
	// op's sake, that op first.
	waiting := map[certs.DeviceID][]oplog.Op{}
	for _, w := range window {
		if op, ok := blocked.at[w.Origin]; ok && w.Seq >= op.Seq {
			waiting[w.Origin] = append(waiting[w.Origin], w)
		}
	}
	foundAny := false
	for _, origin := range slices.SortedFunc(maps.Keys(blocked.at), compareIDs) {
		op := blocked.at[origin]
		e := n.ahead.origins[origin]
		if e == nil || e.seq != op.Seq {
			e = &ahead{seq: op.Seq, replaced: map[string]bool{}}
			n.ahead.origins[origin] = e
		}
		found, err := n.replacedLater(ctx, waiting[origin], max(r.next[origin], e.through+1), r.upto[origin], e, room)
		if err != nil {
			return foundAny, err
		}
		if found > 0 {
			n.log.Debug("later ops replace ops that wait: the next pass skips them", "op", op.String(), "later", found)
			foundAny = true
		}
	}
	clear(blocked.at)
	return foundAny, nil
}

// replacedLater reads the ops of the origin of waiting (its ops from the
// one it is blocked at) from sequence from up to upto, and adds to e
// those that replace what one of them does (core.Batch): made after
// seeing it (their version dominates its), at a path it touches, or at a
// conflict copy of the content it places; one per waiting op and path is
// enough. It keeps what room (bytes) allows, and the first that replaces
// waiting[0], the blocking op, whatever room is left; no more than
// aheadOps paths at which the blocking op is replaced. It returns how
// many it added.
func (n *Node) replacedLater(ctx context.Context, waiting []oplog.Op, from, upto uint64, e *ahead, room *int) (int, error) {
	if from > upto {
		return 0, nil
	}
	// The waiting ops by the paths they touch, and by where a conflict
	// copy of their content would be.
	at, copies := map[string][]int{}, map[string][]int{}
	for k, w := range waiting {
		at[w.Path] = append(at[w.Path], k)
		placed := w.Path
		if w.Kind == oplog.KindRename {
			at[w.NewPath] = append(at[w.NewPath], k)
			placed = w.NewPath
		}
		if w.Kind == oplog.KindWrite || w.Kind == oplog.KindRename {
			key := copyKey(path.Dir(placed), w.Hash.String()[:6])
			copies[key] = append(copies[key], k)
		}
	}
	type slot struct {
		k int
		p string
	}
	taken := map[slot]bool{}
	versions := make([]vclock.Vector, len(waiting))
	// fill adds to fills the slots later takes at p.
	fill := func(later oplog.Op, p string, fills []slot) []slot {
		ks := at[p]
		if h, ok := core.CopyHash(p); ok {
			ks = append(ks[:len(ks):len(ks)], copies[copyKey(path.Dir(p), h)]...)
		}
		for _, k := range ks {
			if taken[slot{k, p}] || k == 0 && e.replaced[p] {
				continue
			}
			if versions[k] == nil {
				versions[k] = waiting[k].Version()
			}
			if later.Parent.Dominates(versions[k]) {
				fills = append(fills, slot{k, p})
			}
		}
		return fills
	}
	added := 0
	err := n.ops.Iterate(ctx, waiting[0].Origin, from, func(later oplog.Op) error {
		if later.Seq > upto {
			return errStop
		}
		fills := fill(later, later.Path, nil)
		if later.Kind == oplog.KindRename {
			fills = fill(later, later.NewPath, fills)
		}
		blocking := slices.ContainsFunc(fills, func(s slot) bool { return s.k == 0 })
		size := opFootprint(later)
		switch {
		case len(fills) == 0, blocking && len(e.replaced) >= aheadOps:
			return nil
		case size > *room && !(blocking && len(e.replaced) == 0):
			return nil // past room, only the first op that replaces the blocking one is kept
		}
		for _, s := range fills {
			taken[s] = true
			if s.k == 0 {
				e.replaced[s.p] = true
			}
		}
		*room -= size
		e.later = append(e.later, later)
		added++
		return nil
	})
	if err != nil && !errors.Is(err, errStop) {
		return added, fmt.Errorf("read on for ops that replace %s: %w", waiting[0], err)
	}
	e.through = upto
	return added, nil
}

// copyKey indexes a content's conflict copies: by directory and the short
// hash their names carry.
func copyKey(dir, shortHash string) string { return dir + "\x00" + shortHash }
