package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/drive-node/drive-node/certs"
	"github.com/drive-node/drive-node/content"
	"github.com/drive-node/drive-node/oplog"
	"github.com/drive-node/drive-node/state"
	"github.com/drive-node/drive-node/watcher"
)

// pendingOps returns the ops in the log that the database has not
// recorded, in Lamport order (which respects causality across origins).
func (n *Node) pendingOps(ctx context.Context) ([]oplog.Op, error) {
	applied, err := n.db.Applied(ctx)
	if err != nil {
		return nil, err
	}
	var missing []oplog.Op
	for origin, highest := range n.ops.Vector() {
		if applied[origin] >= highest {
			continue
		}
		err := n.ops.Iterate(ctx, origin, applied[origin]+1, func(op oplog.Op) error {
			missing = append(missing, op)
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	sortCausal(missing)
	return missing, nil
}

// sortCausal orders ops by (Lamport, origin, sequence): an order that
// respects causality across origins.
func sortCausal(ops []oplog.Op) {
	sort.Slice(ops, func(i, j int) bool {
		a, b := ops[i], ops[j]
		if a.Lamport != b.Lamport {
			return a.Lamport < b.Lamport
		}
		if a.Origin != b.Origin {
			return string(a.Origin[:]) < string(b.Origin[:])
		}
		return a.Seq < b.Seq
	})
}

// applyChunk bounds the ops applied under one hold of the commit lock;
// the contents of the next chunk are fetched meanwhile.
const applyChunk = 1000

// applyPending brings the folder and the database up to the log: local ops
// are recorded, remote ops are carried out on the folder and recorded.
// Content is fetched without holding the commit lock, so local changes
// keep being recorded during a long transfer, and a chunk's content is
// fetched while the chunk before it is applied. An op whose content
// cannot be had now stays pending with every later op of its origin; the
// next call tries again.
func (n *Node) applyPending(ctx context.Context) error {
	ops, err := n.pendingOps(ctx)
	if err != nil {
		return err
	}
	return n.applyPendingOps(ctx, ops)
}

// applyPendingOps is applyPending with the pending ops already read.
func (n *Node) applyPendingOps(ctx context.Context, ops []oplog.Op) (err error) {
	blocked := map[certs.DeviceID]string{} // origin -> why its next op waits
	// Status counts the ops this pass is about to apply from now on, not
	// only once the pass, which can take minutes, is over; an origin keeps
	// the reason the last pass gave it until this one gives another.
	if err := n.pending.write(ctx, n, n.pending.reasons(), ""); err != nil && ctx.Err() == nil {
		n.log.Debug("recording the pending changes for status failed", "err", err)
	}
	defer func() {
		// What is left pending, and why, for status; paused is the reason
		// when a pause cut the pass short.
		dflt := ""
		if n.paused.Load() {
			dflt = reasonPaused
		}
		n.pending.passEnded(n.now())
		// Also when the pass ended because the node stops: status then
		// shows what is left for the next run.
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if werr := n.pending.write(wctx, n, blocked, dflt); werr != nil {
			n.log.Debug("recording the pending changes for status failed", "err", werr)
		}
	}()
	if len(ops) == 0 {
		return nil
	}
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
	defer n.noteBurst(len(ops))
	skip := supersededInBatch(ops)
	applied, err := n.db.Applied(ctx)
	if err != nil {
		return err
	}

	// Chunks in causal order: a prefix of a causal order is causally
	// closed, so each chunk builds only on what is applied before it.
	type stagedChunk struct {
		lo, hi int
		staged *stagedSet
	}
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	chunks := make(chan stagedChunk, 1)
	go func() {
		defer close(chunks)
		seen := map[content.Hash]bool{}
		for lo := 0; lo < len(ops); lo += applyChunk {
			hi := min(lo+applyChunk, len(ops))
			c := stagedChunk{lo, hi, n.stageContents(sctx, ops[lo:hi], skip[lo:hi], seen)}
			select {
			case chunks <- c:
			case <-sctx.Done():
				return
			}
		}
	}()
	defer func() {
		stop()
		for range chunks { // let the fetcher end before returning
		}
	}()

	first := true
	for c := range chunks {
		var own []oplog.Op
		if first {
			// This device's own ops (pending only after a crash between
			// the log and the database) describe what is on disk already:
			// they are recorded first, so that what the remote ops record
			// as local changes builds on them.
			for _, op := range ops {
				if op.Origin == n.id.ID && op.Seq > applied[op.Origin] {
					own = append(own, op)
				}
			}
			first = false
		}
		if err := n.applyOps(ctx, ops[c.lo:c.hi], skip[c.lo:c.hi], own, c.staged, applied, blocked); err != nil {
			return err
		}
		stageErrs = append(stageErrs, c.staged.errs...)
	}
	finished = true
	if len(stageErrs) > 0 {
		return errors.Join(stageErrs...)
	}
	return nil
}

// applyOps carries out one chunk of remote ops under the commit lock,
// after recording own (this device's pending ops). Ops of a blocked
// origin are left pending; an op that fails blocks its origin, and
// blocked says why (see pendingReason).
func (n *Node) applyOps(ctx context.Context, ops []oplog.Op, skip []bool, own []oplog.Op, staged *stagedSet,
	applied map[certs.DeviceID]uint64, blocked map[certs.DeviceID]string) error {
	if staged.flush {
		// One flush for the chunk's small files: every fetched file is on
		// disk before any is renamed into place.
		start := time.Now()
		if err := syncFS(n.folderRoot()); err != nil {
			return fmt.Errorf("flush received files: %w", err)
		}
		n.log.Debug("received files flushed", "files", len(staged.temp), "took", time.Since(start))
	}
	n.commitMu.Lock()
	defer n.commitMu.Unlock()
	defer n.placing.reset()
	at := n.now().UnixNano()
	b := state.Batch{Applied: map[certs.DeviceID]uint64{}}
	var recs batchRecords
	// flush records what the chunk has done so far, after the directories
	// of the files it placed are synced: a record never claims a rename
	// that a crash could still undo.
	flush := func() error {
		if err := n.syncDirs(staged); err != nil {
			return err
		}
		b.Files = recs.files
		if err := n.db.Apply(ctx, b); err != nil {
			return err
		}
		n.progress.Add(uint64(len(b.Applied)))
		n.placing.reset()
		b, recs = state.Batch{Applied: map[certs.DeviceID]uint64{}}, batchRecords{}
		return nil
	}
	for _, op := range own {
		recs.add(recordsFor(op, at)...)
		b.Applied[op.Origin] = op.Seq
	}
	for i, op := range ops {
		if op.Origin == n.id.ID || blocked[op.Origin] != "" || op.Seq <= applied[op.Origin] {
			continue
		}
		if skip[i] {
			if n.residue.has(op) {
				rows, err := n.resumeLocked(ctx, op, &recs)
				if err != nil {
					return err
				}
				recs.add(rows...)
				n.placing.add(rows)
			}
			b.Applied[op.Origin] = op.Seq
			continue
		}
		rows, more, err := n.execute(ctx, op, staged, &recs)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			n.log.Warn("op stays pending", "op", op.String(), "err", err)
			if errors.Is(err, syscall.ENOSPC) {
				staged.errs = append(staged.errs, err)
			}
			blocked[op.Origin] = pendingReason(err)
			continue
		}
		recs.add(rows...)
		n.placing.add(rows)
		b.Applied[op.Origin] = op.Seq
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
	for _, name := range staged.temp {
		n.folderRoot().Remove(name) // not needed after all (a later op superseded it)
	}
	if err := flush(); err != nil {
		return err
	}
	n.retireResidue(ctx)
	return nil
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
	if msg != "" {
		n.log.Error("the folder's disk is full; received changes wait and are retried", "folder", n.cfg.Folder)
	} else {
		n.log.Info("disk space is back; received changes are applied again")
	}
	n.db.SetMeta(ctx, metaDiskFull, msg)
}

// stageContents fetches the content of the remote writes and renames
// among ops that no later op supersedes (skip) and whose content the
// folder does not hold already. It returns the staged temp files and, in
// their errs, what could not be had.
//
// seen holds the contents earlier chunks of the same pass staged, and
// gains this chunk's: a content is staged once per pass. Its temp file has
// one name, and the chunk that staged it moves it into place or removes
// it, possibly while this chunk is staged; a later chunk copies the
// content from where the earlier one placed it.
func (n *Node) stageContents(ctx context.Context, ops []oplog.Op, skip []bool, seen map[content.Hash]bool) *stagedSet {
	type placement struct {
		path string
		hash content.Hash
	}
	last := map[placement]int{}
	for i, op := range ops {
		if op.Origin == n.id.ID || skip[i] {
			continue
		}
		switch op.Kind {
		case oplog.KindWrite:
			last[placement{op.Path, op.Hash}] = i
		case oplog.KindRename:
			last[placement{op.NewPath, op.Hash}] = i
		}
	}
	var wants []want
	for key, i := range last {
		op, p := ops[i], key.path
		if checkPath(p) != nil || seen[op.Hash] {
			continue
		}
		if op.Kind == oplog.KindRename && n.sourceUsable(ctx, op) {
			continue
		}
		if cur, ok, _ := n.db.File(ctx, p); ok && !cur.Deleted && cur.Hash == op.Hash {
			continue
		}
		seen[op.Hash] = true
		wants = append(wants, want{op.Hash, op.Size})
	}
	staged := &stagedSet{temp: map[content.Hash]string{}, placed: map[content.Hash]string{}, dirs: map[string]bool{}, looks: map[string]look{}}
	n.fetchAll(ctx, wants, staged)
	return staged
}

// supersededInBatch marks the ops that a later op in the same batch on
// the same path was made after seeing: they never become heads, so they
// are skipped (their content is never needed).
func supersededInBatch(ops []oplog.Op) []bool {
	skip := make([]bool, len(ops))
	latest := map[string]int{}
	for i := len(ops) - 1; i >= 0; i-- {
		op := ops[i]
		if op.Kind != oplog.KindRename {
			if j, ok := latest[op.Path]; ok && ops[j].Parent.Dominates(op.Version()) {
				skip[i] = true
				continue
			}
			latest[op.Path] = i
		}
	}
	return skip
}

// sourceUsable reports whether a rename's source is on disk as the op
// expects, so it can be moved instead of fetched.
func (n *Node) sourceUsable(ctx context.Context, op oplog.Op) bool {
	if checkPath(op.Path) != nil {
		return false
	}
	cur, ok, _ := n.db.File(ctx, op.Path)
	if !ok || cur.Deleted || cur.Hash != op.Hash {
		return false
	}
	st, err := n.folderRoot().Lstat(op.Path)
	return err == nil && st.Mode().IsRegular() && st.Size() == cur.Size && st.ModTime().UnixNano() == cur.MTime
}

// execute carries out one remote op on the folder: planRemote decides,
// this runs the plan's effects and returns the rows to record and the
// paths to record as local changes afterwards. pending holds the rows
// decided earlier in the same batch, which take precedence over the
// database.
func (n *Node) execute(ctx context.Context, op oplog.Op, staged *stagedSet, pending *batchRecords) ([]state.File, []string, error) {
	for _, p := range []string{op.Path, op.NewPath} {
		if p == "" && op.Kind != oplog.KindRename {
			continue
		}
		err := checkPath(p)
		if err == nil {
			err = n.throughSymlink(p)
		}
		if err != nil {
			n.log.Error("refusing op from peer: it names a path this device must not write (outside the folder, or a name its file system cannot hold)", "op", op.String(), "err", err)
			return nil, nil, nil // recorded as handled, never applied
		}
	}
	if n.residue.has(op) {
		if rows, err := n.resumeLocked(ctx, op, pending); err != nil || rows != nil {
			return rows, nil, err
		}
	}
	v := &nodeView{n: n, ctx: ctx, pending: pending}
	// A change on disk the watcher has not reported yet is recorded first,
	// so it takes part in the decision and is never overwritten unseen:
	// at the op's paths and where an edit it forwards goes. A path an
	// earlier op of this batch wrote holds what that op put there (the
	// commit lock is held), and the database does not know it yet.
	touched := []string{op.Path, op.NewPath}
	if f := forwardedEdit(op, v); f != nil {
		touched = append(touched, f.to)
	}
	for _, p := range touched {
		// What the decision below is based on, looked at before the
		// record is brought up to date: a change in between makes the
		// effects fail rather than go unseen.
		if _, ok := staged.looks[p]; p != "" && !ok {
			staged.looks[p] = n.lookAt(p)
		}
	}
	for _, p := range touched {
		if p != "" && pending.get(p) == nil {
			if err := n.recordIfChangedLocked(ctx, p, op); err != nil {
				return nil, nil, err
			}
		}
	}
	usable := op.Kind == oplog.KindRename && n.sourceUsable(ctx, op)
	plan := planRemote(op, v, usable, n.now().UnixNano())
	if v.err != nil {
		return nil, nil, v.err
	}
	if n.decided != nil {
		n.decided(op)
	}
	n.log.Debug("remote op", "op", op.String(), "effects", len(plan.effects), "records", len(plan.records))
	observe := plan.observe
	for _, e := range plan.effects {
		stays, err := n.runEffect(ctx, e, staged)
		if err != nil {
			return nil, nil, err
		}
		if stays {
			observe = append(observe, e.path)
		}
	}
	for i := range plan.records {
		if !plan.records[i].Deleted {
			n.fillFromDisk(&plan.records[i])
		}
	}
	for _, c := range plan.conflicts {
		n.recordConflict(ctx, c.copyPath, c.original, c.winner, c.loser)
	}
	return plan.records, observe, nil
}

// batchRecords are the rows a batch has decided and not yet written to
// the database, with the latest row of each path at hand: a batch of
// thousands of ops looks paths up once per op.
type batchRecords struct {
	files  []state.File
	latest map[string]int // path → index in files of its latest row
}

// add appends rows; a later row of a path supersedes an earlier one.
func (r *batchRecords) add(rows ...state.File) {
	if r.latest == nil {
		r.latest = map[string]int{}
	}
	for _, f := range rows {
		r.latest[f.Path] = len(r.files)
		r.files = append(r.files, f)
	}
}

// get returns a copy of p's latest row, or nil if the batch has none (or
// there is no batch: r is nil).
func (r *batchRecords) get(p string) *state.File {
	if r == nil {
		return nil
	}
	i, ok := r.latest[p]
	if !ok {
		return nil
	}
	f := r.files[i]
	return &f
}

// nodeView is planRemote's view of this node.
type nodeView struct {
	n       *Node
	ctx     context.Context
	pending *batchRecords
	err     error
}

func (v *nodeView) record(p string) *state.File {
	if f := v.pending.get(p); f != nil {
		return f
	}
	f, ok, err := v.n.db.File(v.ctx, p)
	if err != nil && v.err == nil {
		v.err = err
	}
	if !ok {
		return nil
	}
	return &f
}

func (v *nodeView) liveUnder(dir string) bool {
	prefix := dir + "/"
	decided := map[string]bool{} // paths whose latest row is the batch's
	if v.pending != nil {
		for p, i := range v.pending.latest {
			if strings.HasPrefix(p, prefix) {
				if !v.pending.files[i].Deleted {
					return true
				}
				decided[p] = true
			}
		}
	}
	errFound := errors.New("found")
	err := v.n.db.FilesUnder(v.ctx, dir, func(f state.File) error {
		if decided[f.Path] {
			return nil
		}
		return errFound
	})
	if err != nil && !errors.Is(err, errFound) && v.err == nil {
		v.err = err
	}
	// Entries that are never recorded (symlinks, devices) keep a directory
	// too: a file could not replace it, and the op would wait for ever.
	return errors.Is(err, errFound) || v.n.holdsEntries(dir)
}

// holdsEntries reports whether the directory dir on disk has entries other
// than drive-node's temp files.
func (n *Node) holdsEntries(dir string) bool {
	d, err := n.folderRoot().Open(dir)
	if err != nil {
		return false
	}
	defer d.Close()
	for {
		entries, err := d.ReadDir(64)
		for _, e := range entries {
			if !strings.HasPrefix(e.Name(), TempPrefix) {
				return true
			}
		}
		if err != nil {
			return false
		}
	}
}

func (v *nodeView) op(id state.OpID) (oplog.Op, bool) {
	op, ok, err := v.n.ops.Get(id.Origin, id.Seq)
	if err != nil && v.err == nil {
		v.err = err
	}
	return op, ok
}

// runEffect carries out one effect. stays reports a directory that an
// effRmdir could not remove because it is not empty.
func (n *Node) runEffect(ctx context.Context, e effect, staged *stagedSet) (stays bool, err error) {
	switch e.kind {
	case effPlace:
		return false, n.place(ctx, e.path, e.op, staged)
	case effMove, effMoveAside:
		if err := n.unchangedSince(staged, e.to); err != nil {
			return false, err
		}
		if st, err := n.folderRoot().Lstat(e.path); err == nil && st.IsDir() {
			// The plan moves a recorded file; a directory there now was
			// made since and not recorded yet.
			return false, fmt.Errorf("%s: %w", e.path, errChangedMeanwhile)
		}
		if e.kind == effMove {
			if err := n.unchangedSince(staged, e.path); err != nil {
				return false, err
			}
		}
		defer staged.looked(n, e.path, e.to)
		if err := n.mkdirAll(staged, parentDir(e.to), 0o755); err != nil {
			return false, fmt.Errorf("move %s to %s: %w", e.path, e.to, err)
		}
		if err := n.removeEmptyDir(e.to); err != nil {
			return false, fmt.Errorf("move %s to %s: %w", e.path, e.to, err)
		}
		if err := n.folderRoot().Rename(e.path, e.to); err != nil {
			if e.kind == effMoveAside && notThere(err) {
				return false, nil
			}
			return false, fmt.Errorf("move %s to %s: %w", e.path, e.to, err)
		}
		staged.touch(e.to, e.path)
		return false, nil
	case effRemove:
		if err := n.unchangedSince(staged, e.path); err != nil {
			return false, err
		}
		defer staged.looked(n, e.path)
		if err := n.folderRoot().Remove(e.path); err != nil && !notThere(err) {
			if st, serr := n.folderRoot().Lstat(e.path); serr == nil && st.IsDir() {
				return false, nil // a directory in the way is not this op's to remove
			}
			return false, fmt.Errorf("delete %s: %w", e.path, err)
		}
		staged.touch(e.path)
		return false, nil
	case effRmdir:
		defer staged.looked(n, e.path)
		n.folderRoot().Remove(e.path) // fails on a non-empty directory, which stays
		st, err := n.folderRoot().Lstat(e.path)
		return err == nil && st.IsDir(), nil
	case effMkdir:
		if err := n.unchangedSince(staged, e.path); err != nil {
			return false, err
		}
		defer staged.looked(n, e.path)
		if st, err := n.folderRoot().Lstat(e.path); err == nil && !st.IsDir() {
			if err := n.folderRoot().Remove(e.path); err != nil {
				return false, fmt.Errorf("replace %s with a directory: %w", e.path, err)
			}
		}
		if err := n.mkdirAll(staged, e.path, dirMode(e.op.Mode)); err != nil {
			return false, fmt.Errorf("mkdir %s: %w", e.path, err)
		}
		return false, nil
	}
	return false, fmt.Errorf("unknown effect %d", e.kind)
}

// stagedSet is the content fetched for one batch: temp files not yet
// used, and where content already placed in this batch can be copied from.
type stagedSet struct {
	temp   map[content.Hash]string
	placed map[content.Hash]string
	dirs   map[string]bool // directories whose entries the batch changed
	// looks holds what the batch last saw at the paths its ops decided
	// on, or last left there itself: an effect that would replace or
	// remove something else fails instead (see unchangedSince).
	looks map[string]look
	errs  []error // why contents could not be had
	flush bool    // small files among temp wait for syncFS
}

// looked notes what is at paths now, after the batch changed them.
func (s *stagedSet) looked(n *Node, paths ...string) {
	if s.looks == nil {
		s.looks = map[string]look{}
	}
	for _, p := range paths {
		s.looks[p] = n.lookAt(p)
	}
}

// look is what Lstat shows at a path, as far as it tells a user's change:
// a file's size, mtime and inode (the watcher's test), a directory's type.
type look struct {
	exists, dir bool
	size, mtime int64
	inode       uint64
}

func (n *Node) lookAt(p string) look {
	st, err := n.folderRoot().Lstat(p)
	if err != nil {
		return look{}
	}
	if st.IsDir() {
		return look{exists: true, dir: true}
	}
	return look{exists: true, size: st.Size(), mtime: st.ModTime().UnixNano(), inode: watcher.InodeOf(st)}
}

// errChangedMeanwhile is a path a user changed after a remote op was
// decided on it.
var errChangedMeanwhile = errors.New("changed on disk while a received change was applied; it waits until that change is recorded")

// unchangedSince fails when what is at p is not what the batch saw when
// it decided (or left there itself): a user changed it since, and
// replacing or removing it now would lose that change without a trace.
// The op then stays pending; the watcher records the change, and the op
// is decided again with it.
func (n *Node) unchangedSince(s *stagedSet, p string) error {
	want, ok := s.looks[p]
	if !ok {
		return nil
	}
	if n.lookAt(p) != want {
		return fmt.Errorf("%s: %w", p, errChangedMeanwhile)
	}
	return nil
}

// touch notes the directories of paths whose entries changed; they are
// fsynced once per batch, before the batch is recorded.
func (s *stagedSet) touch(paths ...string) {
	for _, p := range paths {
		s.dirs[parentDir(p)] = true
	}
}

// syncDirs makes the batch's renames and removals durable: after it a
// crash cannot undo on disk what the database is about to record.
func (n *Node) syncDirs(s *stagedSet) error {
	for dir := range s.dirs {
		if err := syncDir(n.folderRoot(), dir); err != nil && !notThere(err) {
			return fmt.Errorf("sync directory %q: %w", dir, err)
		}
	}
	return nil
}

// place puts op's content at p with op's mode and mtime. The first use of
// fetched content moves its temp file into place; a further use copies
// from where it was placed (checking the hash, since a later op may have
// changed that file). Every file is fsynced before the rename, so p holds
// either its old or its new content after a crash, never a torn one.
func (n *Node) place(ctx context.Context, p string, op oplog.Op, staged *stagedSet) error {
	if err := n.mkdirAll(staged, parentDir(p), 0o755); err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	name, fetched := staged.temp[op.Hash]
	if !fetched {
		name = path.Join(parentDir(p), TempPrefix+"w-"+op.Hash.String()[:16])
		src, ok := staged.placed[op.Hash]
		switch {
		case ok:
			if err := copyInRoot(ctx, n.folderRoot(), src, name, op.Hash); err != nil {
				n.folderRoot().Remove(name)
				return fmt.Errorf("write %s from %s: %w", p, src, err)
			}
		case op.Hash == content.EmptyHash:
			if err := n.folderRoot().WriteFile(name, nil, 0o600); err != nil {
				return fmt.Errorf("write %s: %w", p, err)
			}
		default:
			// Content this batch did not fetch (an older version that is
			// the winner again): copy it from a file here that has it, or
			// fetch it now.
			if err := n.contentFromElsewhere(ctx, op, name); err != nil {
				return fmt.Errorf("content %s of %s: %w", op.Hash.Short(), p, err)
			}
		}
	}
	mt := time.Unix(0, op.MTime)
	n.folderRoot().Chmod(name, fileMode(op.Mode))
	n.folderRoot().Chtimes(name, mt, mt)
	if err := n.unchangedSince(staged, p); err != nil {
		if !fetched {
			n.folderRoot().Remove(name) // fetched content is removed with the batch's unused temps
		}
		return err
	}
	defer staged.looked(n, p)
	if err := n.removeEmptyDir(p); err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	if err := n.folderRoot().Rename(name, p); err != nil {
		n.folderRoot().Remove(name)
		return fmt.Errorf("write %s: %w", p, err)
	}
	delete(staged.temp, op.Hash)
	staged.placed[op.Hash] = p
	staged.touch(p)
	return nil
}

// mkdirAll creates dir and the directories above it that are missing, and
// notes each new one's parent for syncDirs: the database is about to
// record what goes inside, so the new entries must be as durable as a
// placed file's.
func (n *Node) mkdirAll(staged *stagedSet, dir string, mode os.FileMode) error {
	if dir == "" || dir == "." {
		return nil
	}
	var missing []string
	for d := dir; d != "." && d != "/" && d != ""; d = path.Dir(d) {
		if _, err := n.folderRoot().Lstat(d); err == nil {
			break
		}
		missing = append(missing, d)
	}
	if len(missing) == 0 {
		return nil
	}
	if err := n.folderRoot().MkdirAll(dir, mode); err != nil {
		return err
	}
	staged.touch(missing...)
	staged.looked(n, missing...)
	return nil
}

// removeEmptyDir removes the directory at p, where a file is about to go
// (the plan superseded it). One that still has entries is an error: the
// plan keeps a directory with recorded entries, so those were not recorded
// yet, and the op waits until they are.
func (n *Node) removeEmptyDir(p string) error {
	st, err := n.folderRoot().Lstat(p)
	if err != nil || !st.IsDir() {
		return nil
	}
	if !n.holdsEntries(p) {
		// Temp files a crash left in it go with it.
		if d, err := n.folderRoot().Open(p); err == nil {
			names, _ := d.Readdirnames(-1)
			d.Close()
			for _, name := range names {
				n.folderRoot().Remove(path.Join(p, name))
			}
		}
	}
	if err := n.folderRoot().Remove(p); err != nil {
		return fmt.Errorf("a directory with entries is in the way: %w", err)
	}
	return nil
}

// contentFromElsewhere writes op's content to the temp file name: copied
// from a recorded file with that hash, or fetched from a peer.
func (n *Node) contentFromElsewhere(ctx context.Context, op oplog.Op, name string) error {
	if n.copyFromRecorded(ctx, op.Hash, name) {
		return nil
	}
	n.folderRoot().Remove(name)
	staged, err := n.stage(ctx, op.Hash, op.Size, n.fetchers())
	if err != nil {
		return err
	}
	if !syncedAlone(op.Size) {
		if err := syncFS(n.folderRoot()); err != nil {
			return err
		}
	}
	return n.folderRoot().Rename(staged, name)
}

// copyFromRecorded copies the content h to the temp file name from a
// recorded file that has it, and reports whether one did.
func (n *Node) copyFromRecorded(ctx context.Context, h content.Hash, name string) bool {
	defer n.busyWith()()
	files, err := n.db.FilesByHash(ctx, h)
	if err != nil {
		return false
	}
	for _, f := range files {
		if err := copyInRoot(ctx, n.folderRoot(), f.Path, name, h); err == nil {
			return true
		}
	}
	return false
}

// copyInRoot copies src to dst inside root, checks that the bytes hash to
// want, and fsyncs dst.
func copyInRoot(ctx context.Context, root *os.Root, src, dst string, want content.Hash) error {
	in, err := root.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := root.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	h := content.NewHasher()
	if _, err := io.Copy(io.MultiWriter(out, h), in); err != nil {
		out.Close()
		return err
	}
	if h.Sum() != want {
		out.Close()
		return ErrHashMismatch
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// fillFromDisk records what the file system says about r's path (inode,
// mtime as stored), so the watcher does not mistake the node's own write
// for a local change.
func (n *Node) fillFromDisk(r *state.File) {
	st, err := n.folderRoot().Lstat(r.Path)
	if err != nil {
		return
	}
	r.MTime = st.ModTime().UnixNano()
	r.Mode = uint32(st.Mode().Perm())
	r.Inode = watcher.InodeOf(st)
	if !r.Dir {
		r.Size = st.Size()
	}
}

func (n *Node) recordConflict(ctx context.Context, copyPath, original string, winner, loser certs.DeviceID) {
	n.log.Warn("conflicting edits: kept the losing version as a conflict copy", "path", original, "copy", copyPath, "winner", winner.Short(), "loser", loser.Short())
	if err := n.db.RecordConflict(ctx, state.Conflict{CopyPath: copyPath, OriginalPath: original, Winner: winner, Loser: loser, CreatedAt: n.now().UnixNano()}); err != nil {
		n.log.Warn("recording conflict failed", "copy", copyPath, "err", err)
	}
}

func fileMode(m uint32) os.FileMode {
	if m == 0 {
		return 0o644
	}
	return os.FileMode(m) & os.ModePerm
}

func dirMode(m uint32) os.FileMode {
	if m == 0 {
		return 0o755
	}
	return os.FileMode(m) & os.ModePerm
}
