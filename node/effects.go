package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path"
	"slices"
	"time"

	"github.com/drive-node/drive-node/content"
	"github.com/drive-node/drive-node/node/internal/core"
	"github.com/drive-node/drive-node/oplog"
	"github.com/drive-node/drive-node/state"
	"github.com/drive-node/drive-node/watcher"
)

// Carrying out a remote plan's effects on the folder, each checked
// against what the batch saw when it decided, and made durable before the
// batch is recorded.

// runEffect carries out one effect. stays reports a directory that an
// Rmdir could not remove because it is not empty.
func (n *Node) runEffect(ctx context.Context, e core.Effect, staged *stagedSet) (stays bool, err error) {
	switch e.Kind {
	case core.Place:
		return false, n.place(ctx, e.Path, e.Op, staged)
	case core.Chmod:
		if err := n.unchangedSince(staged, e.Path); err != nil {
			return false, err
		}
		defer staged.looked(n, e.Path)
		if err := n.folderRoot().Chmod(e.Path, fileMode(e.Op.Mode)); err != nil {
			return false, fmt.Errorf("chmod %s: %w", e.Path, err)
		}
		staged.touch(e.Path) // flushed with the chunk (see syncDirs)
		return false, nil
	case core.Move, core.MoveAside:
		if err := n.unchangedSince(staged, e.To); err != nil {
			return false, err
		}
		if st, err := n.folderRoot().Lstat(e.Path); err == nil && st.IsDir() {
			if e.Kind == core.MoveAside && n.residue.explains([]watcher.Observation{{Path: e.Path, Exists: true, Dir: true}}) {
				// A directory a pending op leaves is never recorded as a
				// local change, so waiting for it would wait for ever: the
				// file to move aside is gone, and the op makes the rest.
				return false, nil
			}
			// The plan moves a recorded file; a directory there now was
			// made since and not recorded yet.
			return false, fmt.Errorf("%s: %w", e.Path, errChangedMeanwhile)
		}
		if e.Kind == core.Move {
			if err := n.unchangedSince(staged, e.Path); err != nil {
				return false, err
			}
			if _, err := n.folderRoot().Lstat(e.Path); notThere(err) {
				return false, &sourceGoneError{e.Path}
			}
		}
		defer staged.looked(n, e.Path, e.To)
		if err := n.mkdirAll(staged, parentDir(e.To), 0o755); err != nil {
			return false, fmt.Errorf("move %s to %s: %w", e.Path, e.To, err)
		}
		if err := n.removeEmptyDir(e.To); err != nil {
			return false, fmt.Errorf("move %s to %s: %w", e.Path, e.To, err)
		}
		var k keptFile
		if e.Kind == core.Move {
			// A file the move replaces is kept (a conflict copy's name
			// is new, so MoveAside replaces nothing).
			if k, err = n.keepBefore(ctx, e.To, staged, true); err != nil {
				return false, err
			}
		}
		if err := n.folderRoot().Rename(e.Path, e.To); err != nil {
			k.undo(n, e.To, staged)
			if e.Kind == core.MoveAside && notThere(err) {
				return false, nil
			}
			return false, fmt.Errorf("move %s to %s: %w", e.Path, e.To, err)
		}
		staged.touch(e.To, e.Path)
		return false, nil
	case core.Remove:
		if n.volume().Folds() && !n.there(e.Path, staged.names) {
			// Nothing under this very name: what a look at it finds on a
			// case-insensitive folder is another name's file.
			return false, nil
		}
		if err := n.unchangedSince(staged, e.Path); err != nil {
			return false, err
		}
		defer staged.looked(n, e.Path)
		if err := n.removeKept(ctx, e.Path, staged); err != nil && !notThere(err) {
			if st, serr := n.folderRoot().Lstat(e.Path); serr == nil && st.IsDir() {
				return false, nil // a directory in the way is not this op's to remove
			}
			return false, fmt.Errorf("delete %s: %w", e.Path, err)
		}
		staged.touch(e.Path)
		return false, nil
	case core.Rmdir:
		defer staged.looked(n, e.Path)
		if n.volume().Folds() && !n.there(e.Path, staged.names) {
			return false, nil // another name's directory
		}
		n.folderRoot().Remove(e.Path) // fails on a non-empty directory, which stays
		st, err := n.lstat(e.Path, staged.names)
		return err == nil && st.IsDir(), nil
	case core.Mkdir:
		if err := n.unchangedSince(staged, e.Path); err != nil {
			return false, err
		}
		defer staged.looked(n, e.Path)
		if st, err := n.folderRoot().Lstat(e.Path); err == nil && !st.IsDir() {
			if err := n.removeKept(ctx, e.Path, staged); err != nil {
				return false, fmt.Errorf("replace %s with a directory: %w", e.Path, err)
			}
		}
		if err := n.mkdirAll(staged, e.Path, dirMode(e.Op.Mode)); err != nil {
			return false, fmt.Errorf("mkdir %s: %w", e.Path, err)
		}
		return false, nil
	}
	return false, fmt.Errorf("unknown effect %d", e.Kind)
}

// opID names op as the database does.
func opID(op oplog.Op) state.OpID { return state.OpID{Origin: op.Origin, Seq: op.Seq} }

// sourceGoneError is a move whose source is missing on disk although its
// record holds a file there: a crash took it before the watcher could
// record that, and what a pending op leaves there (nothing, for a rename)
// kept the start-up scan from recording it.
type sourceGoneError struct{ path string }

func (e *sourceGoneError) Error() string {
	return e.path + ": the file to move is gone; that is recorded and the change decided again"
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
	// names is what the batch's looks at the folder found (see
	// Node.lstat), forgotten where the batch itself changed the folder.
	names *lookups
	// placedAs holds, for the op being carried out, what place put at a
	// path: the temp file's look, taken when it was written (tempInfo)
	// or just before the rename, which the rename keeps (see
	// fillFromDisk). Anything else done at the path forgets it.
	placedAs map[string]fs.FileInfo
	// tempInfo holds what a temp file of temp looked like once written,
	// its mtime set to the wanting op's (see writeStaged).
	tempInfo map[content.Hash]fs.FileInfo
	errs     []error // why contents could not be had
	// failed holds, per content this pass tried and failed to stage, why.
	failed map[content.Hash]error
	flush  bool // small files among temp wait for syncFS
	// recs are the rows the batch decided and has not recorded yet;
	// kept, the versions its effects put into the version store, which
	// are recorded with them.
	recs *batchRecords
	kept []state.Version
	// by is the op whose effects run now: what they replace was
	// replaced by it.
	by state.OpID
	// undone are paths whose local change (on a receive-only device) a
	// peer's op replaced.
	undone []string
	// resume says the ops are set-aside ones carried out now: each one
	// handled is set aside no more.
	resume bool
}

// resumed notes in b that op, handled, is set aside no more, if the
// batch resumes set-aside ops.
func (s *stagedSet) resumed(b *state.Batch, op oplog.Op) {
	if s.resume {
		b.Resumed = append(b.Resumed, opID(op))
	}
}

// looked notes what is at paths now, after the batch changed them.
func (s *stagedSet) looked(n *Node, paths ...string) {
	for _, p := range paths {
		s.left(p, n.lookAt(p))
	}
}

// left notes lk as what the batch left at p.
func (s *stagedSet) left(p string, lk look) {
	if s.looks == nil {
		s.looks = map[string]look{}
	}
	s.looks[p] = lk
	s.names.forget(p)
	delete(s.placedAs, p)
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
	return lookOf(st)
}

// lookOfStat is lookOf, and the look of nothing for a nil st.
func lookOfStat(st fs.FileInfo) look {
	if st == nil {
		return look{}
	}
	return lookOf(st)
}

// lookOf is the look of what Lstat found.
func lookOf(st fs.FileInfo) look {
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
	if _, ok := s.looks[p]; !ok {
		return nil
	}
	return unchangedAs(s, p, n.lookAt(p))
}

// unchangedAs is unchangedSince with what is at p now looked at already.
func unchangedAs(s *stagedSet, p string, now look) error {
	if want, ok := s.looks[p]; ok && now != want {
		return fmt.Errorf("%s: %w", p, errChangedMeanwhile)
	}
	return nil
}

// touch notes the directories of paths whose entries (or, for a chmod,
// whose files) changed; they are made durable before what the batch did
// so far is recorded (see syncDirs).
func (s *stagedSet) touch(paths ...string) {
	for _, p := range paths {
		s.dirs[parentDir(p)] = true
		s.names.forget(p)
		delete(s.placedAs, p)
	}
}

// syncDirs makes the batch's renames, removals and chmods durable: after
// it a crash cannot undo on disk what the database is about to record.
// Where the file system can be flushed at once (Linux), one flush does
// it for the folder's own file system, and also keeps the mode and mtime
// place gave each file after its data was flushed: a directory's fsync
// covers the directory's entries, not the files they name, and a crash
// could otherwise leave a recorded file with its temp file's mode, which
// the next scan would take for a user's chmod. A directory of another
// file system mounted inside the folder is still fsynced on its own.
// Elsewhere each directory is fsynced, and a mode or mtime set after a
// file's data was flushed is as durable as that platform makes it.
func (n *Node) syncDirs(s *stagedSet) error {
	if len(s.dirs) == 0 {
		return nil
	}
	var root fs.FileInfo
	if batchSync {
		if err := n.folderRoot().SyncFS(); err != nil {
			return fmt.Errorf("flush the folder's file system: %w", err)
		}
		if root, _ = n.folderRoot().Lstat("."); root == nil {
			clear(s.dirs)
			return nil // gone; the next scan finds what is there
		}
	}
	// In name order: a failure then hits the same directory on every run
	// of a simulated schedule.
	for _, dir := range slices.Sorted(maps.Keys(s.dirs)) {
		if root != nil {
			if st, err := n.folderRoot().Lstat(cmpDir(dir)); err != nil || sameDevice(st, root) {
				continue // flushed with the folder's file system, or gone
			}
		}
		if err := n.folderRoot().SyncDir(dir); err != nil && !notThere(err) {
			return err // it names the directory
		}
	}
	clear(s.dirs)
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
		// A later use copies from where the batch placed the content,
		// unless an op of the batch moved or replaced that file since.
		copied := false
		if src, ok := staged.placed[op.Hash]; ok {
			if copied = copyInRoot(ctx, n.folderRoot(), src, name, op.Hash) == nil; !copied {
				n.folderRoot().Remove(name)
			}
		}
		switch {
		case copied:
		case op.Hash == content.EmptyHash:
			if err := n.folderRoot().WriteFile(name, nil, 0o600); err != nil {
				return fmt.Errorf("write %s: %w", p, err)
			}
		default:
			// Content this batch did not fetch (an older version that is
			// the winner again), or no longer where it placed it: copy it
			// from a file here that has it, or fetch it now.
			if err := n.contentFromElsewhere(ctx, op, name, staged); err != nil {
				return fmt.Errorf("content %s of %s: %w", op.Hash.Short(), p, err)
			}
		}
	}
	// What the rename puts at p, taken from the temp file: a look at p
	// after the rename could already see a user's edit, which would then
	// pass for the op's content. A fetched file was looked at once
	// written, its mtime set to this op's if it wanted it.
	// The look serves one try: one that fails may have changed the file.
	temp, terr := staged.tempInfo[op.Hash], error(nil)
	delete(staged.tempInfo, op.Hash)
	if !fetched || temp == nil || !n.sameMTime(temp.ModTime().UnixNano(), op.MTime) {
		mt := time.Unix(0, op.MTime)
		n.folderRoot().Chtimes(name, mt, mt)
		if temp, terr = n.folderRoot().Lstat(name); terr != nil {
			temp = nil
		}
	}
	// A file placed without its mode would be recorded with the temp
	// file's (0600) and never corrected: the devices would differ for
	// good. A small fetched content was staged with its mode already. A
	// folder that keeps no modes may refuse the change. The mode is not
	// part of the look, so the look stands.
	chmodded := terr != nil || temp.Mode().Perm() != fileMode(op.Mode)
	if chmodded {
		if err := n.folderRoot().Chmod(name, fileMode(op.Mode)); err != nil && !n.volume().NoModes {
			if !fetched {
				n.folderRoot().Remove(name)
			}
			return fmt.Errorf("write %s: set its mode: %w", p, err)
		}
	}
	placed := lookOfStat(temp)
	// One look at p serves the three checks before the rename: each
	// looked on its own, at a walk of p's directories each, and a user's
	// change between them is no more caught than one just after.
	there, err := n.folderRoot().Lstat(p)
	if err != nil {
		there = nil
	}
	if err := unchangedAs(staged, p, lookOfStat(there)); err != nil {
		if !fetched {
			n.folderRoot().Remove(name) // fetched content is removed with the batch's unused temps
		}
		return err
	}
	if err := n.removeEmptyDirAt(p, there); err != nil {
		staged.looked(n, p)
		return fmt.Errorf("write %s: %w", p, err)
	}
	if there != nil && there.IsDir() {
		// Removed: look again, as a file made there since must be kept.
		if there, err = n.folderRoot().Lstat(p); err != nil {
			there = nil
		}
	}
	k, err := n.keepBeforeAt(ctx, p, there, staged, false)
	if err != nil {
		staged.looked(n, p)
		return err
	}
	if err := n.folderRoot().Rename(name, p); err != nil {
		k.undo(n, p, staged)
		n.folderRoot().Remove(name)
		staged.looked(n, p)
		return fmt.Errorf("write %s: %w", p, err)
	}
	delete(staged.temp, op.Hash)
	staged.placed[op.Hash] = p
	staged.touch(p)
	staged.left(p, placed)
	if terr == nil && !chmodded { // temp's mode is the old one otherwise
		if staged.placedAs == nil {
			staged.placedAs = map[string]fs.FileInfo{}
		}
		staged.placedAs[p] = temp
	}
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
		if staged.names.isDir(d) {
			break // a look of this batch found it a directory
		}
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
	if err != nil {
		return nil
	}
	return n.removeEmptyDirAt(p, st)
}

// removeEmptyDirAt is removeEmptyDir with what is at p looked at already
// (st, nil for nothing).
func (n *Node) removeEmptyDirAt(p string, st fs.FileInfo) error {
	if st == nil || !st.IsDir() {
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

// contentFromElsewhere writes op's content to the temp file name, copied
// from a recorded file with that hash. It never fetches: it runs under
// the commit lock, which a fetch from a slow or silent peer would hold
// while local changes wait to be recorded. A content not here is noted
// for the next pass, which stages it before taking the lock; the op
// waits until then.
func (n *Node) contentFromElsewhere(ctx context.Context, op oplog.Op, name string, staged *stagedSet) error {
	if n.copyFromRecorded(ctx, op.Hash, name) {
		return nil
	}
	n.folderRoot().Remove(name)
	if err := staged.failed[op.Hash]; err != nil {
		return err // this pass tried already: its reason stands
	}
	n.unstaged.add(want{h: op.Hash, size: op.Size, mode: op.Mode, mtime: op.MTime})
	n.applyKick.Kick()
	return fmt.Errorf("content %s: %w: it is fetched before the next pass", op.Hash.Short(), ErrContentUnavailable)
}

// copyFromRecorded copies the content h to the temp file name from a
// recorded file that has it, and reports whether one did.
func (n *Node) copyFromRecorded(ctx context.Context, h content.Hash, name string) bool {
	defer n.busyWith()()
	files, err := n.db.ContentFiles(ctx, h)
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
func copyInRoot(ctx context.Context, root Folder, src, dst string, want content.Hash) error {
	in, err := root.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := root.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	st, err := in.Stat()
	if err != nil {
		out.Close()
		return err
	}
	h := content.NewChecker(st.Size())
	if _, err := io.Copy(io.MultiWriter(out, h), in); err != nil {
		out.Close()
		return err
	}
	if !h.Matches(want) {
		out.Close()
		return ErrHashMismatch
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
