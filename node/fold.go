package node

import (
	"context"
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"strconv"
	"time"

	"github.com/drive-node/drive-node/certs"
	"github.com/drive-node/drive-node/content"
	"github.com/drive-node/drive-node/oplog"
	"github.com/drive-node/drive-node/state"
)

// Folding the op log. An op is folded away once the folder's record of
// its path shows it superseded: it is not one of the path's heads (the
// versions no op has superseded, which the sync decision reads back from
// the log), and one of those heads, recorded here more than FoldAge ago,
// has seen it. A device that lacks such an op loses nothing without it:
// the op that superseded it is kept and carries the path's state, so
// every device converges on the same record. Which devices have the op
// does not matter: one that comes back after months takes the kept ops
// across the gaps (the sender says where its log is folded, wire.Fold),
// and a device paired later starts from the same.
//
// Kept whatever the record says: an origin's highest op (the log keeps
// it), ops not yet applied here, renames (they are heads of two paths),
// ops set aside by the device's role and ops not placed (both are read
// back from the log later), and ops of versions the version store keeps
// (restore --at replays them).

// DefaultFoldAfter is Config.FoldAfter when unset.
const DefaultFoldAfter = 4096

// DefaultFoldAge is Config.FoldAge when unset: an op stays at least this
// long after a later op superseded it, so that restoring to any moment of
// the last hour (restore --at) replays every change made in it, on every
// device, whatever the version store kept.
const DefaultFoldAge = time.Hour

// foldQuiet is how long the log must have taken no op before a due fold
// pass runs: a pass during a large sync would compete with it and find
// less superseded than it will a moment later.
const foldQuiet = 5 * time.Second

// foldSettle is how long the log must have taken no op before a pass is
// due for less growth than half the folder: a burst of changes that a
// pass in its middle left partly unfolded (a pause of foldQuiet in a
// rewrite of a million files) is folded once it is over, not at the next
// burst. At least a sixteenth of the folder must have come since the
// last pass, so that reading the log for it (a few CPU-seconds at a
// million ops) is paid by that many ops.
const foldSettle = time.Minute

// foldWindow is how many ops a pass decides on and folds at a time, so
// that it holds a bounded number of ops whatever the log's size.
const foldWindow = 2048

// reclaimAfter is how many ops a pass must fold before it compacts the
// log's files at once rather than leave it to pebble's own pace.
const reclaimAfter = 1024

// metaFoldedAt is the log's Count when the last fold pass ended.
const metaFoldedAt = "fold_count"

// foldLoop runs a fold pass once the log has taken Config.FoldAfter ops
// (and at least half the folder's record count) since the last pass, and
// then none for foldQuiet; once it has taken a sixteenth of the folder
// and then none for foldSettle; and again FoldAge after a pass that left
// ops superseded too recently to fold. It waits on the log's growth and
// on those deadlines, never on a ticker.
func (n *Node) foldLoop(ctx context.Context) {
	if n.cfg.FoldAfter < 0 {
		return
	}
	last, err := n.lastFold(ctx)
	if err != nil {
		n.log.Warn("reading when the op log was last folded failed", "err", err)
	}
	var aged <-chan time.Time // fires when ops a pass left young are old enough
	ripe := false             // they are: a pass is due whatever the log's growth
	settle := n.clock.NewTimer(n.foldSettle)
	settle.Stop()
	defer settle.Stop()
	settled := false // the log took a tail and then nothing for foldSettle
	for {
		grown := n.logWatch.changed()
		due, tail, err := n.foldDue(ctx, last)
		if err != nil {
			n.log.Warn("deciding whether to fold the op log failed", "err", err)
		}
		if due || ripe || settled {
			count := n.ops.Count()
			select {
			case <-ctx.Done():
				return
			case <-n.after(foldQuiet):
			}
			if n.ops.Count() != count {
				continue // still taking ops: wait for quiet again
			}
			res, err := n.foldPass(ctx)
			if err != nil && ctx.Err() == nil {
				n.log.Warn("folding the op log failed", "err", err)
			}
			// A failed pass waits for the log to grow again too.
			last, ripe, settled, aged = count, false, false, nil
			if res.Young > 0 {
				aged = n.after(n.foldAge())
			}
			continue
		}
		// Each growth starts the quiet period again.
		settle.Stop()
		select {
		case <-settle.C(): // fired while another case was taken: stale
		default:
		}
		var quiet <-chan time.Time
		if tail {
			settle.Reset(n.foldSettle)
			quiet = settle.C()
		}
		select {
		case <-ctx.Done():
			return
		case <-grown:
		case <-aged:
			ripe, aged = true, nil
		case <-quiet:
			settled = true
		}
	}
}

// lastFold returns the log's Count when the last pass ended.
func (n *Node) lastFold(ctx context.Context) (uint64, error) {
	v, ok, err := n.db.Meta(ctx, metaFoldedAt)
	if err != nil || !ok {
		return 0, err
	}
	last, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("meta %s %q: %w", metaFoldedAt, v, err)
	}
	return last, nil
}

// foldDue reports whether the log has grown enough since the pass that
// ended at Count last for a pass (due), or for one once it is settled
// (tail, see foldSettle).
func (n *Node) foldDue(ctx context.Context, last uint64) (due, tail bool, err error) {
	after := uint64(n.cfg.FoldAfter)
	if after == 0 {
		after = DefaultFoldAfter
	}
	count := n.ops.Count()
	if count < last+after {
		return false, false, nil
	}
	st, err := n.db.Stats(ctx)
	if err != nil {
		return false, false, err
	}
	return count >= last+uint64(st.Files)/2, count >= last+uint64(st.Files)/16, nil
}

// FoldResult is what a fold pass did.
type FoldResult struct {
	Read   int // ops read
	Folded int // ops removed from the log
	// Young counts the superseded ops kept because what superseded them
	// was recorded less than FoldAge ago.
	Young int
}

// foldPass folds every op it finds superseded, a window at a time, and
// compacts the log's files if it folded many. It records the log's
// Count, so the next pass waits for the log to grow again.
func (n *Node) foldPass(ctx context.Context) (FoldResult, error) {
	var res FoldResult
	defer func() {
		if res.Folded > 0 {
			// Status counted the folded ops among what a peer lacks;
			// also after a pass that failed part way.
			n.live.mu.Lock()
			n.live.sizes = sizeIndex{}
			n.live.mu.Unlock()
		}
	}()
	start := n.clock.Now()
	count := n.ops.Count()
	times, err := n.recordTimes(ctx)
	if err != nil {
		return res, err
	}
	applied := times.applied
	keep, err := n.opsReadBack(ctx)
	if err != nil {
		return res, err
	}
	vector := n.ops.Vector()
	named, err := n.namedOps(ctx, vector)
	if err != nil {
		return res, err
	}
	f := folding{keep: keep, named: named, times: times, before: start.Add(-n.foldAge()).UnixNano()}
	origins := make([]certs.DeviceID, 0, len(vector))
	for o := range vector {
		origins = append(origins, o)
	}
	slices.SortFunc(origins, func(a, b certs.DeviceID) int { return slices.Compare(a[:], b[:]) })
	for _, o := range origins {
		// Below the highest, and only what is applied here.
		limit := min(applied[o], vector[o]-1)
		if err := n.foldOrigin(ctx, o, limit, &f, &res); err != nil {
			return res, fmt.Errorf("fold %s: %w", o.Short(), err)
		}
	}
	if res.Folded >= reclaimAfter {
		if err := n.ops.Reclaim(ctx); err != nil {
			return res, err
		}
	}
	if err := n.db.SetMeta(ctx, metaFoldedAt, strconv.FormatUint(count, 10)); err != nil {
		return res, err
	}
	n.log.Info("op log folded", "read", res.Read, "folded", res.Folded, "young", res.Young, "took", n.clock.Now().Sub(start).Round(time.Millisecond))
	return res, nil
}

// folding is what a fold pass decides with.
type folding struct {
	keep   map[state.OpID]bool       // ops read back later (opsReadBack)
	named  map[certs.DeviceID]seqSet // ops a record names: never superseded
	times  recordTimes               // when heads were recorded here
	before int64                     // a head recorded after this (unix ns) keeps what it superseded
}

// foldAge is Config.FoldAge, its default filled in.
func (n *Node) foldAge() time.Duration {
	switch {
	case n.cfg.FoldAge < 0:
		return 0
	case n.cfg.FoldAge == 0:
		return DefaultFoldAge
	}
	return n.cfg.FoldAge
}

// foldOrigin folds origin o's superseded ops up to limit.
func (n *Node) foldOrigin(ctx context.Context, o certs.DeviceID, limit uint64, f *folding, res *FoldResult) error {
	if limit == 0 {
		return nil
	}
	if f.named[o].countThrough(limit) == limit {
		// A record names every sequence up to limit: whatever of them the
		// log holds is not superseded, and reading it would only confirm
		// that (after a first scan or sync of a large folder, the whole
		// log).
		return nil
	}
	window := make([]oplog.Op, 0, foldWindow)
	flush := func() error {
		drop, young, err := n.superseded(ctx, window, f)
		res.Young += young
		window = window[:0]
		if err != nil || len(drop) == 0 {
			return err
		}
		k, err := n.ops.Fold(ctx, o, drop)
		res.Folded += k
		return err
	}
	err := n.ops.Iterate(ctx, o, 1, func(op oplog.Op) error {
		if op.Seq > limit {
			return errStop
		}
		res.Read++
		if op.Kind == oplog.KindRename || op.Legacy || f.named[o].has(op.Seq) || f.keep[state.OpID{Origin: op.Origin, Seq: op.Seq}] {
			return nil
		}
		if window = append(window, op); len(window) == foldWindow {
			return flush()
		}
		return nil
	})
	if err != nil && !errors.Is(err, errStop) {
		return err
	}
	return flush()
}

// superseded returns the sequences of the ops in window that can go:
// the record of the op's path shows it superseded, one of the path's
// heads recorded before f.before has seen it, and no version the store
// keeps of the path is its content or was replaced by it (restore and
// history read those ops back from the log, see loggedOps).
func (n *Node) superseded(ctx context.Context, window []oplog.Op, f *folding) (drop []uint64, young int, err error) {
	paths := make([]string, len(window))
	for i, op := range window {
		paths[i] = op.Path
	}
	recs, err := n.db.FilesAt(ctx, paths)
	if err != nil {
		return nil, 0, err
	}
	for _, op := range window {
		rec, ok := recs[op.Path]
		if !ok || !opSuperseded(op, rec) {
			continue
		}
		seen, err := n.headSaw(op, rec, f)
		if err != nil {
			return nil, 0, err
		}
		if seen == headTooRecent {
			young++
		}
		if seen != headOld {
			continue
		}
		retained, err := n.versionNeeds(ctx, op)
		if err != nil {
			return nil, 0, err
		}
		if !retained {
			drop = append(drop, op.Seq)
		}
	}
	return drop, young, nil
}

// opSuperseded reports whether rec, the record of op's path, shows op
// superseded: its version has seen op's, and op is not one of its heads.
func opSuperseded(op oplog.Op, rec state.File) bool {
	if slices.Contains(rec.Heads, state.OpID{Origin: op.Origin, Seq: op.Seq}) {
		return false
	}
	if rec.Origin == op.Origin && rec.Seq == op.Seq {
		return false
	}
	return rec.Version.Dominates(op.Version())
}

// What headSaw found of an op's heads.
const (
	headNone      = iota // no head has seen the op
	headTooRecent        // only heads recorded since f.before have
	headOld              // a head recorded before f.before has
)

// headSaw reports whether one of rec's heads, each an op the log keeps,
// has seen op, and whether it was recorded here before f.before. The
// record's version merges its heads' but may also hold versions no head
// carries (an op applied but not placed): only a head stands for op on a
// device that never gets it. A head recorded since f.before may have
// superseded op within the time restore --at must replay exactly.
func (n *Node) headSaw(op oplog.Op, rec state.File, f *folding) (int, error) {
	seen := headNone
	for _, id := range rec.Heads {
		h, found, err := n.ops.Get(id.Origin, id.Seq)
		if err != nil {
			return headNone, err
		}
		if !found || !h.Version().Dominates(op.Version()) {
			continue
		}
		// 0: recorded before times were kept, long ago.
		if at := f.times.at(id.Origin, id.Seq); at < f.before {
			return headOld, nil
		}
		seen = headTooRecent
	}
	return seen, nil
}

// versionNeeds reports whether the version store keeps a version of op's
// path that op wrote or replaced: restoring to a time within it replays
// op.
func (n *Node) versionNeeds(ctx context.Context, op oplog.Op) (bool, error) {
	var h content.Hash // no content of a version is the op's but a write's
	if op.Kind == oplog.KindWrite {
		h = op.Hash
	}
	return n.db.KeepsVersionFor(ctx, op.Path, state.OpID{Origin: op.Origin, Seq: op.Seq}, h)
}

// seqSet is a set of sequences of one origin, a bit each: a pass holds
// one bit per op of the log, not a record.
type seqSet []uint64

func (s seqSet) has(seq uint64) bool {
	i := seq / 64
	return i < uint64(len(s)) && s[i]&(1<<(seq%64)) != 0
}

// countThrough returns how many of the sequences 1 to last s holds.
func (s seqSet) countThrough(last uint64) uint64 {
	var n int
	for i, w := range s {
		if i == 0 {
			w &^= 1 // sequence 0 names no op
		}
		lo := uint64(i) * 64
		if lo > last {
			break
		}
		if last-lo < 63 {
			w &= 1<<(last-lo+1) - 1
		}
		n += bits.OnesCount64(w)
	}
	return uint64(n)
}

// namedOps returns, per origin, the ops some record names (the op that
// made it or one of its heads). Those are not superseded, and a pass
// looks up only the others: after a sync that replaced nothing, none.
func (n *Node) namedOps(ctx context.Context, vector map[certs.DeviceID]uint64) (map[certs.DeviceID]seqSet, error) {
	named := map[certs.DeviceID]seqSet{}
	err := n.db.EachHead(ctx, func(id state.OpID) error {
		top, ok := vector[id.Origin]
		if !ok || id.Seq > top {
			return nil
		}
		set := named[id.Origin]
		if set == nil {
			set = make(seqSet, top/64+1)
			named[id.Origin] = set
		}
		set[id.Seq/64] |= 1 << (id.Seq % 64)
		return nil
	})
	return named, err
}

// opsReadBack returns the ops the node reads back from the log later:
// those set aside by its role and those not placed.
func (n *Node) opsReadBack(ctx context.Context) (map[state.OpID]bool, error) {
	keep := map[state.OpID]bool{}
	if err := n.db.SetAsideOps(ctx, "", func(s state.SetAside) error {
		keep[s.Op] = true
		return nil
	}); err != nil {
		return nil, err
	}
	list, err := readUnplaced(ctx, n.db)
	if err != nil {
		return nil, err
	}
	for _, u := range list {
		if origin, err := certs.ParseDeviceID(u.Origin); err == nil {
			keep[state.OpID{Origin: origin, Seq: u.Seq}] = true
		}
	}
	return keep, nil
}
