package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
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
	sort.Slice(missing, func(i, j int) bool {
		a, b := missing[i], missing[j]
		if a.Lamport != b.Lamport {
			return a.Lamport < b.Lamport
		}
		if a.Origin != b.Origin {
			return string(a.Origin[:]) < string(b.Origin[:])
		}
		return a.Seq < b.Seq
	})
	return missing, nil
}

// applyPending brings the folder and the database up to the log: local ops
// are recorded, remote ops are carried out on the folder and recorded.
// Content is fetched first, without holding the commit lock, so local
// changes keep being recorded during a long transfer. An op whose content
// cannot be had now stays pending with every later op of its origin; the
// next call tries again.
func (n *Node) applyPending(ctx context.Context) error {
	ops, err := n.pendingOps(ctx)
	if err != nil || len(ops) == 0 {
		return err
	}
	staged, stageErrs := n.stageContents(ctx, ops)
	// A write that a later op in this batch overwrites needs no content.
	lastWrite := map[string]int{}
	for i, op := range ops {
		if op.Kind == oplog.KindWrite {
			lastWrite[op.Path] = i
		}
	}

	n.commitMu.Lock()
	defer n.commitMu.Unlock()
	at := n.now().UnixNano()
	b := state.Batch{Applied: map[certs.DeviceID]uint64{}}
	blocked := map[certs.DeviceID]bool{}
	applied, err := n.db.Applied(ctx)
	if err != nil {
		return err
	}
	var followUps []string // paths to record as local changes afterwards
	for i, op := range ops {
		if blocked[op.Origin] || op.Seq <= applied[op.Origin] {
			continue
		}
		var recs []state.File
		if op.Origin == n.id.ID {
			recs = recordsFor(op, at)
		} else {
			var more []string
			superseded := op.Kind == oplog.KindWrite && lastWrite[op.Path] != i
			recs, more, err = n.execute(ctx, op, staged, b.Files, superseded)
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				n.log.Warn("op stays pending", "op", op.String(), "err", err)
				blocked[op.Origin] = true
				continue
			}
			followUps = append(followUps, more...)
		}
		b.Files = append(b.Files, recs...)
		b.Applied[op.Origin] = op.Seq
	}
	for _, name := range staged.temp {
		n.root.Remove(name) // not needed after all (a later op superseded it)
	}
	if err := n.db.Apply(ctx, b); err != nil {
		return err
	}
	if len(followUps) > 0 {
		if err := n.observeLocked(ctx, followUps...); err != nil {
			return err
		}
	}
	if len(stageErrs) > 0 {
		return errors.Join(stageErrs...)
	}
	return nil
}

// stageContents fetches the content of every write that is the last write
// to its path among ops (earlier ones would be overwritten at once) and
// that the folder does not already hold. It returns staged temp names by
// hash.
func (n *Node) stageContents(ctx context.Context, ops []oplog.Op) (*stagedSet, []error) {
	last := map[string]int{}
	for i, op := range ops {
		if op.Origin == n.id.ID {
			continue
		}
		switch op.Kind {
		case oplog.KindWrite:
			last[op.Path] = i
		case oplog.KindRename:
			last[op.NewPath] = i
		}
	}
	type want struct {
		h    content.Hash
		size int64
	}
	var wants []want
	seen := map[content.Hash]bool{}
	for p, i := range last {
		op := ops[i]
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
	staged := &stagedSet{temp: map[content.Hash]string{}, placed: map[content.Hash]string{}}
	if len(wants) == 0 {
		return staged, nil
	}
	peers := n.fetchers()
	type result struct {
		h    content.Hash
		name string
		err  error
	}
	results := make(chan result)
	sem := make(chan struct{}, 32) // bounded: the transport bounds streams per peer as well
	for _, w := range wants {
		go func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			name, err := n.stage(ctx, w.h, w.size, peers)
			results <- result{w.h, name, err}
		}()
	}
	var errs []error
	for range wants {
		r := <-results
		if r.err != nil {
			errs = append(errs, r.err)
			continue
		}
		staged.temp[r.h] = r.name
	}
	return staged, errs
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
	st, err := n.root.Lstat(op.Path)
	return err == nil && st.Mode().IsRegular() && st.Size() == cur.Size && st.ModTime().UnixNano() == cur.MTime
}

// execute carries out one remote op on the folder and returns the rows to
// record, plus paths whose new local state must be recorded as local ops
// (conflict copies, directories that had to stay). pendingRecs are rows
// recorded earlier in the same batch, which take precedence over the
// database.
func (n *Node) execute(ctx context.Context, op oplog.Op, staged *stagedSet, pendingRecs []state.File, superseded bool) ([]state.File, []string, error) {
	for _, p := range []string{op.Path, op.NewPath} {
		if p == "" && op.Kind != oplog.KindRename {
			continue
		}
		err := checkPath(p)
		if err == nil {
			err = n.throughSymlink(p)
		}
		if err != nil {
			n.log.Error("refusing op from peer: it names a path outside the folder", "op", op.String(), "err", err)
			return nil, nil, nil // recorded as handled, never applied
		}
	}
	lookup := func(p string) (*state.File, error) {
		for i := len(pendingRecs) - 1; i >= 0; i-- {
			if pendingRecs[i].Path == p {
				f := pendingRecs[i]
				return &f, nil
			}
		}
		// A change on disk that the watcher has not reported yet is
		// recorded first, so it takes part in the decision and is not
		// overwritten unseen.
		if err := n.recordIfChangedLocked(ctx, p); err != nil {
			return nil, err
		}
		f, ok, err := n.db.File(ctx, p)
		if err != nil || !ok {
			return nil, err
		}
		return &f, nil
	}
	local, err := lookup(op.Path)
	if err != nil {
		return nil, nil, err
	}
	at := n.now().UnixNano()
	switch op.Kind {
	case oplog.KindRename:
		return n.executeRename(ctx, op, local, lookup, staged, at)
	}
	v := decide(local, op)
	n.log.Debug("remote op", "op", op.String(), "verdict", v.String())
	if superseded && v == apply {
		// Overwritten later in this batch: only its version is recorded.
		recs := recordsFor(op, at)
		if local != nil {
			recs[0].Version = recs[0].Version.Merge(local.Version)
		}
		return recs, nil, nil
	}
	switch v {
	case ignore:
		return nil, nil, nil
	case merge:
		keep := *local
		return []state.File{mergedRecord(keep, local, op)}, nil, nil
	case conflictRemoteLoses:
		copyPath := conflictName(op.Path, op.Origin.Short(), time.Unix(0, op.MTime))
		if err := n.place(ctx, copyPath, op, staged); err != nil {
			return nil, nil, err
		}
		n.recordConflict(ctx, copyPath, op.Path, local.Origin, op.Origin)
		return []state.File{mergedRecord(*local, local, op)}, []string{copyPath}, nil
	case conflictLocalLoses:
		copyPath := conflictName(op.Path, local.Origin.Short(), time.Unix(0, local.MTime))
		if err := n.root.Rename(op.Path, copyPath); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, nil, fmt.Errorf("keep conflict copy %s: %w", copyPath, err)
		}
		n.recordConflict(ctx, copyPath, op.Path, op.Origin, local.Origin)
		recs, err := n.applyAt(ctx, op, local, staged)
		return recs, []string{copyPath}, err
	}
	recs, err := n.applyAt(ctx, op, local, staged)
	if err == nil && op.Kind == oplog.KindRmdir {
		// A directory that still holds something this op did not know of
		// stays, and comes back on every peer as a local mkdir.
		if st, serr := n.root.Lstat(op.Path); serr == nil && st.IsDir() {
			return recs, []string{op.Path}, nil
		}
	}
	return recs, nil, err
}

// throughSymlink refuses a path whose existing parent directories include
// a symlink: following it could lead out of the folder. (os.Root refuses
// such writes as well; this turns them into a clear refusal instead of a
// retry.)
func (n *Node) throughSymlink(p string) error {
	dir := parentDir(p)
	for dir != "" {
		st, err := n.root.Lstat(dir)
		if err == nil && st.Mode()&fs.ModeSymlink != 0 {
			return fmt.Errorf("%w %q: goes through the symlink %q", ErrUnsafePath, p, dir)
		}
		dir = parentDir(dir)
	}
	return nil
}

// applyAt makes op.Path on disk what op says and returns its record.
func (n *Node) applyAt(ctx context.Context, op oplog.Op, local *state.File, staged *stagedSet) ([]state.File, error) {
	at := n.now().UnixNano()
	recs := recordsFor(op, at)
	if local != nil {
		for i := range recs {
			recs[i].Version = recs[i].Version.Merge(local.Version)
		}
	}
	switch op.Kind {
	case oplog.KindWrite:
		if err := n.place(ctx, op.Path, op, staged); err != nil {
			return nil, err
		}
		n.fillFromDisk(&recs[0])
	case oplog.KindMkdir:
		if st, err := n.root.Lstat(op.Path); err == nil && !st.IsDir() {
			if err := n.root.Remove(op.Path); err != nil {
				return nil, fmt.Errorf("replace %s with a directory: %w", op.Path, err)
			}
		}
		if err := n.root.MkdirAll(op.Path, dirMode(op.Mode)); err != nil {
			return nil, fmt.Errorf("mkdir %s: %w", op.Path, err)
		}
		n.fillFromDisk(&recs[0])
	case oplog.KindDelete:
		if err := n.root.Remove(op.Path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			// A directory in the way is not this op's to remove.
			if st, serr := n.root.Lstat(op.Path); serr == nil && st.IsDir() {
				return recs, nil
			}
			return nil, fmt.Errorf("delete %s: %w", op.Path, err)
		}
		syncDir(n.root, parentDir(op.Path))
	case oplog.KindRmdir:
		// Only an empty directory goes: Remove fails on a non-empty one,
		// and the caller then keeps it.
		n.root.Remove(op.Path)
	}
	return recs, nil
}

// executeRename moves the file when the source is here as the op expects,
// and otherwise writes the target from fetched content. The source is
// removed only when the op may remove it (an edit made here concurrently
// keeps the file, as with a delete).
func (n *Node) executeRename(ctx context.Context, op oplog.Op, src *state.File, lookup func(string) (*state.File, error), staged *stagedSet, at int64) ([]state.File, []string, error) {
	dst, err := lookup(op.NewPath)
	if err != nil {
		return nil, nil, err
	}
	srcVerdict := decide(src, op)
	asWrite := op
	asWrite.Kind, asWrite.Path, asWrite.NewPath = oplog.KindWrite, op.NewPath, ""
	dstVerdict := decide(dst, asWrite)
	var recs []state.File
	var follow []string
	recs = append(recs, recordsFor(op, at)[0]) // the source's tombstone
	if src != nil {
		recs[0].Version = recs[0].Version.Merge(src.Version)
	}
	moved := false
	if srcVerdict == apply && dstVerdict == apply && n.sourceUsable(ctx, op) {
		if err := n.root.MkdirAll(parentDir(op.NewPath), 0o755); err != nil && parentDir(op.NewPath) != "" {
			return nil, nil, fmt.Errorf("rename %s: %w", op, err)
		}
		if err := n.root.Rename(op.Path, op.NewPath); err != nil {
			return nil, nil, fmt.Errorf("rename %s: %w", op, err)
		}
		syncDir(n.root, parentDir(op.NewPath))
		syncDir(n.root, parentDir(op.Path))
		moved = true
	}
	switch {
	case moved:
	case srcVerdict == apply:
		n.root.Remove(op.Path)
	case srcVerdict == merge || srcVerdict == conflictLocalLoses || srcVerdict == conflictRemoteLoses:
		// Edited here while renamed there: the edit stays.
		recs[0] = mergedRecord(*src, src, op)
	default: // ignore
		recs = recs[:0]
	}
	switch dstVerdict {
	case ignore:
	case merge:
		recs = append(recs, mergedRecord(*dst, dst, asWrite))
	case conflictRemoteLoses:
		copyPath := conflictName(op.NewPath, op.Origin.Short(), time.Unix(0, op.MTime))
		if err := n.place(ctx, copyPath, asWrite, staged); err != nil {
			return nil, nil, err
		}
		recs = append(recs, mergedRecord(*dst, dst, asWrite))
		follow = append(follow, copyPath)
	default:
		if dstVerdict == conflictLocalLoses {
			copyPath := conflictName(op.NewPath, dst.Origin.Short(), time.Unix(0, dst.MTime))
			if err := n.root.Rename(op.NewPath, copyPath); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return nil, nil, err
			}
			follow = append(follow, copyPath)
		}
		if !moved {
			if err := n.place(ctx, op.NewPath, asWrite, staged); err != nil {
				return nil, nil, err
			}
		}
		r := recordsFor(op, at)[1]
		if dst != nil {
			r.Version = r.Version.Merge(dst.Version)
		}
		n.fillFromDisk(&r)
		recs = append(recs, r)
	}
	return recs, follow, nil
}

// stagedSet is the content fetched for one batch: temp files not yet
// used, and where content already placed in this batch can be copied from.
type stagedSet struct {
	temp   map[content.Hash]string
	placed map[content.Hash]string
}

// place puts op's content at p with op's mode and mtime. The first use of
// fetched content moves its temp file into place; a further use copies
// from where it was placed (checking the hash, since a later op may have
// changed that file). Every file is fsynced before the rename, so p holds
// either its old or its new content after a crash, never a torn one.
func (n *Node) place(ctx context.Context, p string, op oplog.Op, staged *stagedSet) error {
	if dir := parentDir(p); dir != "" {
		if err := n.root.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("write %s: %w", p, err)
		}
	}
	name, fetched := staged.temp[op.Hash]
	if !fetched {
		name = path.Join(parentDir(p), TempPrefix+"w-"+op.Hash.String()[:16])
		src, ok := staged.placed[op.Hash]
		switch {
		case ok:
			if err := copyInRoot(ctx, n.root, src, name, op.Hash); err != nil {
				n.root.Remove(name)
				return fmt.Errorf("write %s from %s: %w", p, src, err)
			}
		case op.Hash == content.EmptyHash:
			if err := n.root.WriteFile(name, nil, 0o600); err != nil {
				return fmt.Errorf("write %s: %w", p, err)
			}
		default:
			return fmt.Errorf("content %s of %s not available", op.Hash.Short(), p)
		}
	}
	mt := time.Unix(0, op.MTime)
	n.root.Chmod(name, fileMode(op.Mode))
	n.root.Chtimes(name, mt, mt)
	if st, err := n.root.Lstat(p); err == nil && st.IsDir() {
		if err := n.root.Remove(p); err != nil { // only an empty directory
			return fmt.Errorf("write %s: a directory is in the way: %w", p, err)
		}
	}
	if err := n.root.Rename(name, p); err != nil {
		n.root.Remove(name)
		return fmt.Errorf("write %s: %w", p, err)
	}
	delete(staged.temp, op.Hash)
	staged.placed[op.Hash] = p
	return syncDir(n.root, parentDir(p))
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
	st, err := n.root.Lstat(r.Path)
	if err != nil {
		return
	}
	r.MTime = st.ModTime().UnixNano()
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
