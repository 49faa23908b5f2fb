package node

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"slices"
	"syscall"
	"time"

	"github.com/drive-node/drive-node/certs"
	"github.com/drive-node/drive-node/content"
	"github.com/drive-node/drive-node/node/internal/core"
	"github.com/drive-node/drive-node/node/internal/volume"
	"github.com/drive-node/drive-node/oplog"
	"github.com/drive-node/drive-node/state"
	"github.com/drive-node/drive-node/vclock"
	"github.com/drive-node/drive-node/watcher"
)

// applyChunk bounds the ops applied under one hold of the commit lock;
// the contents of the next chunk are fetched meanwhile.
const applyChunk = 1000

// applyPending brings the folder and the database up to the log: local ops
// are recorded, remote ops are carried out on the folder and recorded.
// It reads the ops to apply in windows (pendingReader), so what it holds
// is bounded whatever their number; what replaces an op it is blocked at
// further on is found by lookAhead. Content is fetched without holding
// the commit lock, so local changes keep being recorded during a long
// transfer, and a chunk's content is fetched while the chunk before it is
// applied. An op that cannot be applied now stays pending with every
// later op of its origin, while other origins' ops go on; the next call
// tries again. Passes never run concurrently: the apply loop runs them,
// or, before it starts, catchUp.
func (n *Node) applyPending(ctx context.Context) (err error) {
	applied, err := n.db.Applied(ctx)
	if err != nil {
		return fmt.Errorf("read what the database has applied: %w", err)
	}
	// What arrives during the pass waits for the next one, which it
	// started: a steady stream of ops does not make a pass endless.
	upto := n.ops.Vector()
	// Status counts the ops this pass is about to apply from now on, not
	// only once the pass, which can take minutes, is over; an origin keeps
	// the reason the last pass gave it until this one gives another.
	if err := n.pending.write(ctx, n, applied, n.pending.reasons(), ""); err != nil && ctx.Err() == nil {
		n.log.Debug("recording the pending changes for status failed", "err", err)
	}
	if err := n.retryCaseConflicts(ctx); err != nil {
		return err
	}
	if n.setAsideDue.Swap(false) {
		if err := n.resumeSetAside(ctx); err != nil {
			n.setAsideDue.Store(true)
			if ctx.Err() != nil {
				return err
			}
			// Said once; the passes after try again quietly.
			level := slog.LevelDebug
			if msg := err.Error(); msg != n.resumeNote {
				level, n.resumeNote = slog.LevelWarn, msg
			}
			n.log.Log(ctx, level, "changes set aside wait to be carried out", "err", err)
		} else {
			n.resumeNote = ""
		}
	}
	if !logAhead(upto, applied) {
		return nil // nothing was pending: the report just written holds
	}
	blocked := newBlocks()
	if err := n.holdBraked(ctx, applied, blocked); err != nil {
		return err
	}
	defer func() {
		// What is left pending, and why, for status; paused is the reason
		// when a pause cut the pass short.
		dflt := ""
		if n.paused.Load() {
			dflt = reasonPaused
		}
		n.pending.passEnded(n.clock.Now())
		// Also when the pass ended because the node stops: status then
		// shows what is left for the next run.
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if werr := n.pending.write(wctx, n, nil, blocked.why, dflt); werr != nil {
			n.log.Debug("recording the pending changes for status failed", "err", werr)
		}
	}()
	var stageErrs []error
	finished := false
	defer func() {
		switch {
		case errors.Is(err, syscall.ENOSPC):
			n.noteDiskFull(ctx, []error{err})
		case finished:
			n.noteDiskFull(ctx, stageErrs) // clears the note when space is back
		}
	}()
	handled := 0
	defer func() { n.noteBurst(handled) }()

	// This device's own ops (pending only after a crash between the log
	// and the database) describe what is on disk already: they are
	// recorded first, so that what the remote ops record as local changes
	// builds on them.
	if handled, err = n.recordOwn(ctx, applied, upto, blocked); err != nil {
		return err
	}
	r, err := newPendingReader(ctx, n.ops, applied, upto, n.windowOps, n.windowBytes)
	if err != nil {
		return err
	}
	// What earlier passes found beyond their windows that replaces ops
	// this one may be blocked at (see lookAhead); room is what this one
	// may add to it.
	later, size := n.ahead.pending(applied)
	room := n.windowBytes - size
	more, drained, first := false, false, true
	var lead *stagedSet // what a window fetched for the next one
	defer func() { n.dropStaged(lead) }()
	defer func() {
		if drained {
			n.ahead.keep(blocked) // a pass cut short did not see every origin
		}
		if more {
			n.kickApply() // the next pass skips what they replace
		}
	}()
	// A pause (the folder or the state dir is gone) stops the pass: the
	// windows left would only fail.
	for !n.paused.Load() {
		ops, err := r.window(ctx, blocked.has)
		if err != nil {
			return err
		}
		if len(ops) == 0 {
			drained = true
			break
		}
		ops, braked, err := n.brake(ctx, ops, applied, blocked)
		if err != nil {
			return err
		}
		if len(ops) == 0 {
			continue // the window was a held run's
		}
		// What an earlier pass found it needed and had not staged (the
		// losing version of a conflict) is staged with the first chunk.
		var extra []want
		if first {
			extra, first = n.unstaged.take(), false
		}
		handled += len(ops)
		// What the window holds is in its batch already.
		later = slices.DeleteFunc(later, func(op oplog.Op) bool { return op.Seq < r.next[op.Origin] })
		errs, next, err := n.applyWindow(ctx, ops, later, applied, blocked, extra, false, n.leadInto(r, blocked, lead))
		lead = next
		stageErrs = append(stageErrs, errs...)
		if err != nil {
			return err
		}
		braked()
		found, err := n.lookAhead(ctx, r, ops, blocked, &room)
		more = more || found
		if err != nil {
			return err
		}
	}
	finished = true
	if len(stageErrs) > 0 {
		return errors.Join(stageErrs...)
	}
	return nil
}

// leadInto is the windowLead of the window r returned last, staged holding
// what the window before fetched for it. The next window is read ahead
// from where r is, one chunk of it, while the window's last chunk is
// applied: not if nothing is left to read, nor once an op of the pass
// failed (checked when the read starts), as an origin blocked in the
// window would make the read wrong, and a pass retried every few seconds
// for an op whose content is missing would fetch a chunk for nothing at
// every try. A failure in the last chunk itself is not known yet: a
// window of one chunk (cut short by its byte bound) may still read ahead
// once per pass, and what it fetched is removed with the next window.
func (n *Node) leadInto(r *pendingReader, blocked *blocks, staged *stagedSet) windowLead {
	lead := windowLead{staged: staged}
	if !r.more() || blocked.some.Load() {
		return lead
	}
	reader, skip := r.ahead(min(applyChunk, n.windowOps)), maps.Clone(blocked.why)
	lead.ahead = func(ctx context.Context, seen map[content.Hash]bool) *stagedSet {
		if blocked.some.Load() {
			return nil
		}
		ops, err := reader.window(ctx, func(origin certs.DeviceID) bool { _, ok := skip[origin]; return ok })
		if err != nil || len(ops) == 0 {
			return nil // the window reads them itself
		}
		return n.stageAhead(ctx, ops, seen)
	}
	return lead
}

// logAhead reports whether the log (upto) holds an op the database
// (applied) has not applied.
func logAhead(upto, applied map[certs.DeviceID]uint64) bool {
	for origin, highest := range upto {
		if applied[origin] < highest {
			return true
		}
	}
	return false
}

// recordOwn records this device's pending ops, a window at a time, and
// returns how many there were.
func (n *Node) recordOwn(ctx context.Context, applied, upto map[certs.DeviceID]uint64, blocked *blocks) (int, error) {
	self, recorded := n.id.ID, 0
	for from := applied[self] + 1; from <= upto[self]; {
		own, next, err := readOrigin(ctx, n.ops, self, from, upto[self], n.windowOps, n.windowBytes)
		if err != nil || len(own) == 0 {
			return recorded, err
		}
		if err := n.applyOps(ctx, nil, 0, 0, own, newStagedSet(), applied, blocked); err != nil {
			return recorded, err
		}
		recorded += len(own)
		from = next
	}
	return recorded, nil
}

// applyWindow carries out one window of remote ops (in causal order), a
// chunk at a time, and returns what could not be staged. later holds ops
// beyond the window that replace what some of its ops do (see lookAhead):
// the batch takes them into account, and does not apply them. extra is
// what to stage with the first chunk besides the window's contents. With
// resume set, the ops are set-aside ones carried out now (see
// resumeSetAside). lead carries the pipeline over from the window before
// and into the next: it returns what lead.ahead staged for the next one.
func (n *Node) applyWindow(ctx context.Context, ops, later []oplog.Op, applied map[certs.DeviceID]uint64,
	blocked *blocks, extra []want, resume bool, lead windowLead) (stageErrs []error, next *stagedSet, err error) {
	batch := core.NewBatch(slices.Concat(ops, later))
	// A content is staged once per window (see stageContents). Not once
	// per pass: what a window staged and did not use (its op's origin was
	// blocked) is removed when the window ends, and a later window that
	// needs it stages it again. What the window before staged for this
	// one counts as this one's.
	seen := map[content.Hash]bool{}
	if lead.staged != nil {
		for h := range lead.staged.temp {
			seen[h] = true
		}
	}
	defer n.dropStaged(lead.staged) // after the fetcher below has ended

	// Chunks in causal order: a prefix of a causal order is causally
	// closed, so each chunk builds only on what is applied before it.
	type stagedChunk struct {
		lo, hi int
		staged *stagedSet
	}
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	chunks := make(chan stagedChunk, 1)
	var ahead *stagedSet // the fetcher's; read once it has ended
	go func() {
		defer close(chunks)
		for lo := 0; lo < len(ops); lo += applyChunk {
			hi := min(lo+applyChunk, len(ops))
			c := stagedChunk{lo, hi, n.stageContents(sctx, batch, lo, hi, seen, extra, lead.staged)}
			extra = nil
			select {
			case chunks <- c:
			case <-sctx.Done():
				return
			}
		}
		// The last chunk is being applied: the next window's first one
		// is fetched meanwhile.
		if lead.ahead != nil && sctx.Err() == nil {
			ahead = lead.ahead(sctx, seen)
		}
	}()
	defer func() {
		stop()
		for range chunks { // let the fetcher end before returning
		}
		if err != nil {
			n.dropStaged(ahead)
			return
		}
		next = ahead
	}()

	for c := range chunks {
		c.staged.resume = resume
		if err := n.applyOps(ctx, batch, c.lo, c.hi, nil, c.staged, applied, blocked); err != nil {
			return stageErrs, nil, err
		}
		stageErrs = append(stageErrs, c.staged.errs...)
	}
	return stageErrs, next, nil
}

// windowLead keeps a pass's pipeline going from one window to the next:
// the contents of a window's first chunk are fetched while the last chunk
// of the window before is applied, not after it.
type windowLead struct {
	// staged holds what the window before fetched for this one.
	staged *stagedSet
	// ahead, if not nil, stages the next window's first contents, seen
	// being what this window staged (see stageAhead).
	ahead func(ctx context.Context, seen map[content.Hash]bool) *stagedSet
}

// applyOps carries out one chunk of remote ops under the commit lock,
// after recording own (this device's pending ops). Ops of a blocked
// origin are left pending; an op that fails blocks its origin (see
// blocks). The chunk is ops lo to hi of batch.
func (n *Node) applyOps(ctx context.Context, batch *core.Batch, lo, hi int, own []oplog.Op, staged *stagedSet,
	applied map[certs.DeviceID]uint64, blocked *blocks) error {
	if staged.flush {
		// One flush for the chunk's small files: every fetched file is on
		// disk before any is renamed into place.
		start := time.Now()
		if err := n.folderRoot().SyncFS(); err != nil {
			return fmt.Errorf("flush received files: %w", err)
		}
		n.log.Debug("received files flushed", "files", len(staged.temp), "took", time.Since(start))
	}
	n.commitMu.Lock()
	defer n.commitMu.Unlock()
	defer n.placing.reset()
	at := n.clock.Now().UnixNano()
	b := state.Batch{Applied: map[certs.DeviceID]uint64{}}
	var recs batchRecords
	// settled holds the paths ops of the chunk recorded: what status
	// listed there as not placed is out of date.
	settled := map[string]vclock.Vector{}
	// done holds the ops the chunk carried out, published once recorded.
	var done []oplog.Op
	// flush records what the chunk has done so far, after the directories
	// of the files it placed are synced: a record never claims a rename
	// that a crash could still undo.
	flush := func() error {
		if err := n.syncDirs(staged); err != nil {
			return err
		}
		b.Files, b.Versions, b.At = recs.files, staged.kept, n.clock.Now().UnixNano()
		if n.cfg.Role == ReceiveOnly {
			// Where what peers' ops put in place replaced a local
			// change, it is listed no more.
			for _, r := range recs.files {
				if n.diskHolds(r) {
					b.Undone = append(b.Undone, r.Path)
				}
			}
			b.Undone, staged.undone = append(b.Undone, staged.undone...), nil
		}
		if err := n.db.Apply(ctx, b); err != nil {
			return err
		}
		n.applying.recorded.Fire() // a peer may wait for what was placed
		if recs.get(IgnoreFileName) != nil {
			n.ignoreKick.Kick() // the folder's rules file was placed
		}
		staged.kept = nil
		n.progress.Add(uint64(len(b.Applied)))
		n.live.applied.Add(uint64(len(done)))
		for _, op := range done {
			n.events.publish(EventApplied, opFields(op, op.Origin))
		}
		done = done[:0]
		n.placing.reset()
		b, recs = state.Batch{Applied: map[certs.DeviceID]uint64{}}, batchRecords{}
		return nil
	}
	n.warmRecords(ctx, batch, lo, hi)
	for _, op := range own {
		recs.add(core.RecordsFor(op, at)...)
		b.Applied[op.Origin] = op.Seq
	}
	for i := lo; i < hi; i++ {
		op := batch.Op(i)
		if op.Origin == n.id.ID || blocked.has(op.Origin) || op.Seq <= applied[op.Origin] {
			continue
		}
		if batch.Superseded(i) == core.Whole {
			if n.residue.has(op) {
				rows, err := n.resumeLocked(ctx, op, &recs)
				if err != nil {
					return err
				}
				recs.add(rows...)
				n.placing.add(rows)
			}
			b.Applied[op.Origin] = op.Seq
			staged.resumed(&b, op)
			continue
		}
		why, all, part := n.setAside(op)
		var rows []state.File
		var more []string
		var err error
		if !all {
			rows, more, err = n.execute(ctx, batch, i, staged, &recs)
			// Its effects here would change an ignored path (an edit
			// carried to a rename's target there).
			all = errors.Is(err, errTouchesIgnored)
		}
		if all {
			n.log.Debug("remote op set aside", "op", op.String(), "why", why, "err", err)
			b.SetAside = append(b.SetAside, setAsideOf(op, why))
			b.Applied[op.Origin] = op.Seq
			continue
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if n.unplaced.failed(op, err) {
				if err := n.giveUp(ctx, op, err); err != nil {
					return err
				}
				b.Applied[op.Origin] = op.Seq
				staged.resumed(&b, op)
				continue
			}
			n.log.Warn("op stays pending", "op", op.String(), "err", err)
			if errors.Is(err, syscall.ENOSPC) {
				staged.errs = append(staged.errs, err)
			}
			blocked.block(op, pendingReason(err))
			continue
		}
		recs.add(rows...)
		n.placing.add(rows)
		done = append(done, op)
		for _, r := range rows {
			settled[r.Path] = r.Version
		}
		b.Applied[op.Origin] = op.Seq
		if part != nil {
			// Carried out but for its ignored half, for which it stays
			// set aside.
			b.SetAside = append(b.SetAside, setAsideOf(op, why))
		} else {
			staged.resumed(&b, op)
		}
		if len(more) > 0 {
			// What the op left on disk that its records do not say (a
			// conflict copy, an edit carried to a rename's target, a
			// directory that had to stay) is recorded now, before a later
			// op of the batch decides on the same paths.
			if err := flush(); err != nil {
				return err
			}
			if err := n.observeLocked(ctx, more...); err != nil {
				return err
			}
		}
	}
	for _, name := range slices.Sorted(maps.Values(staged.temp)) {
		n.folderRoot().Remove(name) // not needed after all (a later op superseded it)
	}
	if err := flush(); err != nil {
		return err
	}
	n.retireResidue(ctx)
	return n.dropUnplaced(ctx, settled)
}

// noteDiskFull shows in status whether received files wait for disk space.
func (n *Node) noteDiskFull(ctx context.Context, errs []error) {
	msg := ""
	for _, err := range errs {
		if errors.Is(err, ErrDiskFull) || errors.Is(err, syscall.ENOSPC) {
			msg = "disk full: received changes wait for space in " + n.cfg.Folder
			break
		}
	}
	prev, _, _ := n.db.Meta(ctx, metaDiskFull)
	if prev == msg {
		return
	}
	n.events.publish(EventDiskFull, EventFields{Reason: msg})
	if msg != "" {
		n.log.Error("the folder's disk is full; received changes wait and are retried", "folder", n.cfg.Folder)
	} else {
		n.log.Info("disk space is back; received changes are applied again")
	}
	n.db.SetMeta(ctx, metaDiskFull, msg)
}

// execute carries out one remote op on the folder: the core decides,
// this runs the plan's effects and returns the rows to record and the
// paths to record as local changes afterwards. pending holds the rows
// decided earlier in the same batch, which take precedence over the
// database.
func (n *Node) execute(ctx context.Context, batch *core.Batch, i int, staged *stagedSet, pending *batchRecords) ([]state.File, []string, error) {
	op := batch.Op(i)
	staged.recs, staged.by = pending, opID(op)
	clear(staged.placedAs)
	if _, part := n.ignoredPart(op); part != nil {
		op = *part // the rest is out of view here (see ignoredPart)
	}
	for _, p := range []string{op.Path, op.NewPath} {
		if p == "" && op.Kind != oplog.KindRename {
			continue
		}
		err := checkPath(p)
		if err == nil {
			err = n.throughSymlink(p)
		}
		if err != nil {
			// Counted as handled, never applied, and listed in status.
			return nil, nil, n.giveUp(ctx, op, err)
		}
	}
	// A name the folder cannot hold is not placed, before anything on
	// disk is looked at: on a case-insensitive disk a look at report.txt
	// finds Report.txt, and would record it as a local change of the
	// peer's file.
	if err := n.placeable(ctx, op, pending); err != nil {
		var cc *CaseConflictError
		switch {
		case errors.As(err, &cc) && n.adoptCase(ctx, batch, i, cc, pending, staged):
		case (errors.Is(err, volume.ErrRefused) || errors.As(err, &cc)) && op.Kind == oplog.KindRename:
			// The new name cannot be held here; the old one goes, as it
			// goes on every other device (the content stays on those
			// that hold the new name). The new name is listed, and
			// placed if the conflict is resolved.
			if err := n.giveUp(ctx, op, err); err != nil {
				return nil, nil, err
			}
			op = removalOf(op)
		case errors.Is(err, volume.ErrRefused) || errors.As(err, &cc):
			return nil, nil, n.giveUp(ctx, op, err)
		default:
			return nil, nil, err
		}
	}
	if n.residue.has(op) {
		if rows, err := n.resumeLocked(ctx, op, pending); err != nil || rows != nil {
			return rows, nil, err
		}
	}
	// A change on disk the watcher has not reported yet is recorded first,
	// so it takes part in the decision and is never overwritten unseen:
	// at the op's paths and where an edit it forwards goes. A path an
	// earlier op of this batch wrote holds what that op put there (the
	// commit lock is held), and the database does not know it yet.
	touched := []string{op.Path, op.NewPath}
	to, err := n.forwardTarget(ctx, op, pending)
	if err != nil {
		return nil, nil, err
	}
	if to != "" {
		touched = append(touched, to)
	}
	fresh := make([]*rawLook, len(touched)) // the looks taken just now, by touched's index
	for i, p := range touched {
		// What the decision below is based on, looked at before the
		// record is brought up to date: a change in between makes the
		// effects fail rather than go unseen.
		if _, ok := staged.looks[p]; p != "" && !ok {
			st, err := n.folderRoot().Lstat(p)
			if err != nil {
				st = nil
			}
			fresh[i], staged.looks[p] = &rawLook{st, err}, lookOfStat(st)
		}
	}
	for i, p := range touched {
		// A receive-only device records no change of its own: a local
		// change where the plan's effects write makes way for them below.
		// The look just taken serves as the disk's side.
		if p != "" && pending.get(p) == nil && n.cfg.Role != ReceiveOnly {
			if err := n.recordIfChangedLocked(ctx, p, op, pending, staged.names, fresh[i]); err != nil {
				return nil, nil, err
			}
		}
	}
	usable := op.Kind == oplog.KindRename && n.sourceUsable(ctx, op, pending, staged.names)
	plan, err := n.planRemote(ctx, core.Arrival{Op: op, SourceUsable: usable, Batch: batch, Index: i, At: n.clock.Now().UnixNano()}, pending)
	if err != nil {
		return nil, nil, err
	}
	for _, e := range plan.Effects {
		for _, p := range []string{e.Path, e.To} {
			if p != "" && n.ignored(p, e.Kind == core.Mkdir || e.Kind == core.Rmdir) {
				// An edit carried to a rename's target, a copy or a file
				// moved out of the way, where the rules ignore.
				return nil, nil, fmt.Errorf("%s: %w", p, errTouchesIgnored)
			}
		}
	}
	if n.decided != nil {
		n.decided(op, plan)
	}
	if n.log.Enabled(ctx, slog.LevelDebug) { // op.String costs, once per received op
		n.log.Debug("remote op", "op", op.String(), "effects", len(plan.Effects), "records", len(plan.Records))
	}
	if n.cfg.Role == ReceiveOnly {
		for i, e := range plan.Effects {
			if e.Kind == core.Chmod {
				// The plan takes the disk to hold the record's content;
				// a local change may not: the peer's version replaces it.
				rec, err := n.recordAt(ctx, e.Path, pending)
				if err != nil {
					return nil, nil, err
				}
				if rec == nil || !n.diskHolds(*rec) {
					plan.Effects[i].Kind = core.Place
				}
			}
			if err := n.yieldLocalLocked(ctx, effectTarget(e), pending, staged); err != nil {
				return nil, nil, err
			}
		}
	}
	// Noted before the effects run: a file placed in a directory the
	// watcher does not watch yet, and removed before it does, is then
	// reported gone by the watcher's look at that directory.
	n.placing.expect(plan.Records)
	observe := plan.Observe
	for _, e := range plan.Effects {
		stays, err := n.runEffect(ctx, e, staged)
		if err != nil {
			var gone *sourceGoneError
			if errors.As(err, &gone) && pending.get(gone.path) == nil {
				// Recorded as a local change, crash residue or not: the op
				// stays pending and is decided again from that record,
				// instead of trying the same move for ever.
				if rerr := n.observeLocked(ctx, gone.path); rerr != nil {
					return nil, nil, errors.Join(err, rerr)
				}
			}
			return nil, nil, err
		}
		if stays {
			observe = append(observe, e.Path)
		}
	}
	for i := range plan.Records {
		r := &plan.Records[i]
		// On a receive-only device a path the effects did not write may
		// hold a local change: its look is not the record's content's.
		if !r.Deleted && (n.cfg.Role != ReceiveOnly || wrote(plan.Effects, r.Path)) {
			var left *look
			if lk, ok := staged.looks[r.Path]; ok {
				left = &lk
			}
			n.fillFromDisk(r, wrote(plan.Effects, r.Path), left, staged.placedAs[r.Path])
		}
	}
	for _, c := range plan.Conflicts {
		n.recordConflict(ctx, c.CopyPath, c.Original, c.Winner, c.Loser)
	}
	return plan.Records, observe, nil
}

// effectTarget is where the effect e puts something, or "" for a removal.
func effectTarget(e core.Effect) string {
	switch e.Kind {
	case core.Place, core.Mkdir, core.Chmod:
		return e.Path
	case core.Move, core.MoveAside:
		return e.To
	}
	return ""
}

// wrote reports whether one of effects puts something at p.
func wrote(effects []core.Effect, p string) bool {
	return slices.ContainsFunc(effects, func(e core.Effect) bool { return effectTarget(e) == p })
}

// fillFromDisk records what the file system says about r's path (inode,
// mtime as stored), so the watcher does not mistake the node's own write
// for a local change. placed says that the op behind r put the file
// there: a file that lost the op's mode gets it back first. left, if not
// nil, is what the batch saw at the path or left there itself: a path
// that no longer looks so was changed by a user since, and the record
// keeps what the batch left, so that the watcher finds the change. Read
// from the disk now, that change would be taken for the op's content and
// never recorded. as, if not nil, is what place put at the path, looked
// at on its temp file: on a file system with Unix modes (and so inodes
// a rename keeps) it stands for a look at the path now, which would find
// the same or a user's change, and the record then differs from the
// disk either way.
func (n *Node) fillFromDisk(r *state.File, placed bool, left *look, as fs.FileInfo) {
	st := as
	if st == nil || n.volume().NoModes {
		var err error
		if st, err = n.folderRoot().Lstat(r.Path); err != nil {
			return
		}
	}
	if left != nil && lookOf(st) != *left {
		if !left.exists || left.dir != r.Dir {
			return // the op's own values stand; the disk shows the change
		}
		r.Inode = left.inode
		if !r.Dir {
			r.MTime, r.Size = left.mtime, left.size
			if !n.volume().NoModes {
				r.Mode = uint32(fileMode(r.Mode))
			}
		} else if !n.volume().NoModes {
			r.Mode = uint32(dirMode(r.Mode))
		}
		return
	}
	r.MTime = st.ModTime().UnixNano()
	if !n.volume().NoModes { // else the op's mode stays: the disk shows one mode for all
		// A file the engine carried out has the op's mode; one that lost
		// it (a crash kept its place and not its mode, the temp file's
		// 0600) gets it back, else the devices would differ in it for good.
		if want := fileMode(r.Mode); placed && !r.Dir && st.Mode().Perm() != want && n.folderRoot().Chmod(r.Path, want) == nil {
			if again, err := n.folderRoot().Lstat(r.Path); err == nil {
				st = again
			}
		}
		r.Mode = uint32(st.Mode().Perm())
	}
	r.Inode = watcher.InodeOf(st)
	if !r.Dir {
		r.Size = st.Size()
	}
}

func (n *Node) recordConflict(ctx context.Context, copyPath, original string, winner, loser certs.DeviceID) {
	n.log.Warn("conflicting edits: kept the losing version as a conflict copy", "path", original, "copy", copyPath, "winner", winner.Short(), "loser", loser.Short())
	n.live.conflicts.Add(1)
	n.events.publish(EventConflict, EventFields{Path: original, Copy: copyPath, Device: loser.String()})
	if err := n.db.RecordConflict(ctx, state.Conflict{CopyPath: copyPath, OriginalPath: original, Winner: winner, Loser: loser, CreatedAt: n.clock.Now().UnixNano()}); err != nil {
		n.log.Warn("recording conflict failed", "copy", copyPath, "err", err)
	}
}

// fileMode and dirMode are the modes a received file or directory gets:
// the op's (a default for none) without the group and other write bits,
// which no peer may grant to every user of this device.
func fileMode(m uint32) os.FileMode {
	if m == 0 {
		return 0o644
	}
	return os.FileMode(m) & os.ModePerm &^ 0o022
}

func dirMode(m uint32) os.FileMode {
	if m == 0 {
		return 0o755
	}
	return os.FileMode(m) & os.ModePerm &^ 0o022
}
