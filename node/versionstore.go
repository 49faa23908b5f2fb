package node

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"syscall"
	"time"

	"github.com/drive-node/drive-node/content"
	"github.com/drive-node/drive-node/internal/beneath"
	"github.com/drive-node/drive-node/node/internal/retention"
	"github.com/drive-node/drive-node/oplog"
	"github.com/drive-node/drive-node/state"
)

// The version store keeps what this device replaces or removes: a peer's
// edit, delete or rename over a file, and a restore. The previous content
// is moved or hard-linked into VersionsDirName, on the folder's own file
// system (never copied), under its content's name, so a content kept for
// several paths or times is held once. The database lists each version
// (path, content, size, mode, mtime, when, which op); the store is never
// synced and the watcher never looks into it.
//
// Crash safety: a content goes into the store before the effect that
// replaces it, and its version is recorded with the records of the batch
// that did so, in one transaction. A crash in between leaves a content in
// the store that no version names; the next start (checkVersionStore)
// adopts it as a version of the path whose record still names it when
// that path no longer holds it, and removes it otherwise. A version whose
// content is gone from the store is forgotten there too. Pruning forgets
// versions first and removes a content only once no version names it.

// VersionsDirName is the version store's directory in the folder root.
const VersionsDirName = ".drive-node-versions"

// versionPath is where the store keeps content h.
func versionPath(h content.Hash) string {
	s := h.String()
	return VersionsDirName + "/" + s[:2] + "/" + s
}

// versionsOn reports whether this device keeps versions.
func (n *Node) versionsOn() bool { return n.cfg.schedule != nil }

// keptFile is what keepBefore did, for the effect to undo if it fails.
type keptFile struct {
	// moved: the file left p for the store (the removal is done, or the
	// new content goes into an empty place).
	moved bool
	// linked is the store's new name of the file still at p.
	linked string
	// name is the content's name in the store; version its record.
	name    string
	version state.Version
}

// keepBefore puts the file at p into the version store before an effect
// replaces or removes it, and notes its version for the batch's records.
// With remove set the file is moved (the removal is then done); otherwise
// it is hard-linked, or moved where the file system has no hard links.
// The content is named by p's record, or hashed when the file no longer
// matches it. Nothing is kept for a path without a recorded file, with
// versions off, or when the store holds the content already (the version
// is still noted).
func (n *Node) keepBefore(ctx context.Context, p string, staged *stagedSet, remove bool) (keptFile, error) {
	if !n.versionsOn() {
		return keptFile{}, nil
	}
	st, err := n.folderRoot().Lstat(p)
	if err != nil {
		return keptFile{}, nil
	}
	return n.keepBeforeAt(ctx, p, st, staged, remove)
}

// keepBeforeAt is keepBefore with what is at p looked at already (st, nil
// for nothing).
func (n *Node) keepBeforeAt(ctx context.Context, p string, st fs.FileInfo, staged *stagedSet, remove bool) (keptFile, error) {
	if !n.versionsOn() || st == nil || !st.Mode().IsRegular() {
		return keptFile{}, nil // nothing there to keep (a new file's place)
	}
	root := n.folderRoot()
	rec := staged.recs.get(p)
	if rec == nil {
		f, ok, err := n.db.File(ctx, p)
		if err != nil {
			return keptFile{}, err
		}
		rec = &f
		if !ok || f.Deleted || f.Dir {
			// A file the records do not know (a restore replacing what a
			// user just made): named by what it holds.
			rec = &state.File{Mode: uint32(st.Mode().Perm())}
		}
	}
	h := rec.Hash
	if h.IsZero() || rec.Dir || rec.Deleted || st.Size() != rec.Size || st.ModTime().UnixNano() != rec.MTime {
		var err error
		if h, err = hashIn(ctx, root, p); err != nil {
			return keptFile{}, fmt.Errorf("keep %s in the version store: %w", p, err)
		}
	}
	v := state.Version{Path: p, Hash: h, Size: st.Size(), Mode: rec.Mode, MTime: st.ModTime().UnixNano(),
		Kept: n.clock.Now().UnixNano(), By: staged.by}
	name := versionPath(h)
	k := keptFile{name: name}
	if _, err := root.Lstat(name); err == nil {
		staged.kept = append(staged.kept, v)
		k.version = v
		return k, nil
	}
	dir := parentDir(name)
	if _, err := root.Lstat(dir); err != nil {
		if err := root.MkdirAll(dir, 0o700); err != nil {
			return keptFile{}, fmt.Errorf("keep %s: version store: %w", p, err)
		}
		staged.dirs[""], staged.dirs[VersionsDirName] = true, true
	}
	staged.dirs[dir] = true
	// A file with other names besides p is moved, not linked: the store's
	// copy would change with an edit made in place through another name.
	if !remove && linkCount(st) <= 1 {
		if err := root.Link(p, name); err == nil {
			k.linked = name
		}
	}
	if k.linked == "" {
		if err := root.Rename(p, name); err != nil {
			if errors.Is(err, syscall.EXDEV) {
				// p is on another file system mounted inside the folder:
				// the store cannot take it without a copy.
				n.log.Warn("a replaced file is on another disk than the version store: not kept", "path", p)
				return keptFile{}, nil
			}
			return keptFile{}, fmt.Errorf("keep %s in the version store: %w", p, err)
		}
		k.moved = true
		staged.touch(p)
	}
	staged.kept = append(staged.kept, v)
	k.version = v
	return k, nil
}

// removeKept removes the file at p, keeping it in the version store
// first (see keepBefore): the move into the store is the removal, or the
// file goes once the store holds its content.
func (n *Node) removeKept(ctx context.Context, p string, staged *stagedSet) error {
	k, err := n.keepBefore(ctx, p, staged, true)
	if err != nil || k.moved {
		return err
	}
	return n.folderRoot().Remove(p)
}

// undo takes back what keepBefore did when the effect that followed it
// failed: the file goes back to p, and its version is not recorded.
func (k keptFile) undo(n *Node, p string, staged *stagedSet) {
	switch {
	case k.linked != "":
		n.folderRoot().Remove(k.linked)
	case k.moved:
		if err := n.folderRoot().Rename(k.name, p); err != nil {
			// The content stays in the store; its version stays noted.
			n.log.Warn("a file kept for an effect that failed could not be put back", "path", p, "err", err)
			return
		}
	}
	if k.version.Path != "" {
		if i := slices.IndexFunc(staged.kept, func(v state.Version) bool { return v == k.version }); i >= 0 {
			staged.kept = slices.Delete(staged.kept, i, i+1)
		}
	}
}

// hashIn names the content of the file p in root.
func hashIn(ctx context.Context, root Folder, p string) (content.Hash, error) {
	f, err := root.Open(p)
	if err != nil {
		return content.Hash{}, err
	}
	defer f.Close()
	h, _, err := hashFile(ctx, f)
	return h, err
}

// openVersion opens the stored content h. A content in the store is
// served even before its version is recorded (the batch that kept it
// records it a moment later): whoever reads it checks it against h.
func (n *Node) openVersion(_ context.Context, h content.Hash) (File, int64, error) {
	f, err := n.folderRoot().Open(versionPath(h))
	if err != nil {
		return nil, 0, fmt.Errorf("content %s: %w", h.Short(), fs.ErrNotExist)
	}
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		f.Close()
		return nil, 0, fmt.Errorf("content %s: %w", h.Short(), fs.ErrNotExist)
	}
	return f, st.Size(), nil
}

// pruneVersions lets go of the versions the schedule and the size cap no
// longer keep (see retention.Drop), and of the contents no version names
// any more. It holds the commit lock, so a restore never reads a content
// while it goes.
func (n *Node) pruneVersions(ctx context.Context) error {
	schedule := n.cfg.schedule
	if schedule == nil {
		schedule = retention.Default() // versions kept before they were turned off still age out
	}
	vs, err := n.db.AllVersions(ctx)
	if err != nil || len(vs) == 0 {
		return err
	}
	items := make([]retention.Item, len(vs))
	for i, v := range vs {
		items[i] = retention.Item{ID: v.ID, Path: v.Path, Kept: time.Unix(0, v.Kept), Content: v.Hash.String(), Size: v.Size}
	}
	var maxBytes int64
	if size, err := diskSize(n.cfg.Folder); err == nil && size > 0 {
		maxBytes = int64(float64(size) * n.cfg.VersionsMaxShare)
	}
	drop := retention.Drop(schedule, n.clock.Now(), items, maxBytes)
	if len(drop) == 0 {
		return nil
	}
	// Only the changes hold the commit lock, so a restore never reads a
	// content while it goes. A content leaves the store first, then its
	// versions: a crash in between leaves versions without a content,
	// which the next start forgets, never a pruned content that comes
	// back as a version.
	n.commitMu.Lock()
	defer n.commitMu.Unlock()
	dropped := map[int64]bool{}
	for _, id := range drop {
		dropped[id] = true
	}
	var freed []content.Hash
	seen := map[content.Hash]bool{}
	for _, v := range vs {
		if !dropped[v.ID] || seen[v.Hash] {
			continue
		}
		seen[v.Hash] = true
		// Versions kept since the list was read name contents too.
		all, err := n.db.VersionsByHash(ctx, v.Hash)
		if err != nil {
			return err
		}
		if !slices.ContainsFunc(all, func(w state.Version) bool { return !dropped[w.ID] }) {
			freed = append(freed, v.Hash)
		}
	}
	dirs := map[string]bool{}
	for _, h := range freed {
		if err := n.folderRoot().Remove(versionPath(h)); err != nil && !notThere(err) {
			return fmt.Errorf("version store: remove %s: %w", h.Short(), err)
		}
		dirs[parentDir(versionPath(h))] = true
	}
	for d := range dirs {
		n.folderRoot().SyncDir(d)
	}
	if _, err := n.db.DropVersions(ctx, drop); err != nil {
		return err
	}
	n.log.Info("version store pruned", "versions", len(drop), "contents", len(freed))
	return nil
}

// checkVersionStore makes the store and its records agree after a crash
// (see the top of this file): a content no version names is adopted or
// removed, and a version whose content is gone is forgotten.
func (n *Node) checkVersionStore(ctx context.Context) error {
	if n.paused.Load() {
		return nil // the folder is not there to look at: the next start checks
	}
	root := n.folderRoot()
	held := map[content.Hash]bool{}
	top, err := root.Open(VersionsDirName)
	if notThere(err) {
		return n.forgetMissingVersions(ctx, held)
	}
	if err != nil {
		return fmt.Errorf("version store: %w", err)
	}
	subs, err := top.Readdirnames(-1)
	top.Close()
	if err != nil {
		return fmt.Errorf("version store: %w", err)
	}
	orphans := map[content.Hash]string{}
	for _, sub := range subs {
		d, err := root.Open(path.Join(VersionsDirName, sub))
		if err != nil {
			return fmt.Errorf("version store: %w", err)
		}
		names, err := d.Readdirnames(-1)
		d.Close()
		if err != nil {
			return fmt.Errorf("version store: %s: %w", sub, err)
		}
		for _, name := range names {
			p := path.Join(VersionsDirName, sub, name)
			h, err := content.ParseHash(name)
			if err != nil || versionPath(h) != p {
				continue // not the store's
			}
			known, err := n.db.HasVersionContent(ctx, h)
			if err != nil {
				return err
			}
			held[h] = true
			if !known {
				orphans[h] = p
			}
		}
	}
	if len(orphans) > 0 {
		if err := n.adoptOrphans(ctx, orphans); err != nil {
			return err
		}
	}
	return n.forgetMissingVersions(ctx, held)
}

// adoptOrphans records the contents the store holds without a version (a
// crash came between keeping them and recording the batch that replaced
// them, or a restore stopped there) as versions of the paths they were
// kept for: a path whose record still names the content, or else the
// last path the op log wrote it to. Only a link to a file still in place
// (the change that was to replace it never ran) is removed; a content no
// path can be found for stays in the store, unrecorded.
func (n *Node) adoptOrphans(ctx context.Context, orphans map[content.Hash]string) error {
	var adopt []state.Version
	unplaced := map[content.Hash]bool{}
	now := n.clock.Now().UnixNano()
	for h, stored := range orphans {
		sst, err := n.folderRoot().Lstat(stored)
		if err != nil {
			continue
		}
		files, err := n.db.FilesByHash(ctx, h)
		if err != nil {
			return err
		}
		inPlace := false
		for _, f := range files {
			if st, err := n.folderRoot().Lstat(f.Path); err == nil && beneath.SameFile(st, sst) {
				inPlace = true
			}
		}
		switch {
		case inPlace:
			n.folderRoot().Remove(stored)
		case len(files) > 0:
			f := files[0]
			adopt = append(adopt, state.Version{Path: f.Path, Hash: h, Size: sst.Size(), Mode: f.Mode, MTime: f.MTime, Kept: now,
				By: state.OpID{Origin: n.id.ID}})
		default:
			unplaced[h] = true
		}
	}
	if len(unplaced) > 0 {
		// The op log names where each content was written.
		err := eachLogged(ctx, n.ops, func(op oplog.Op) {
			if unplaced[op.Hash] && (op.Kind == oplog.KindWrite || op.Kind == oplog.KindRename) {
				p := op.Path
				if op.Kind == oplog.KindRename {
					p = op.NewPath
				}
				if st, err := n.folderRoot().Lstat(orphans[op.Hash]); err == nil {
					adopt = slices.DeleteFunc(adopt, func(v state.Version) bool { return v.Hash == op.Hash })
					adopt = append(adopt, state.Version{Path: p, Hash: op.Hash, Size: st.Size(), Mode: op.Mode, MTime: op.MTime, Kept: now,
						By: state.OpID{Origin: n.id.ID}})
				}
			}
		})
		if err != nil {
			return err
		}
	}
	if len(adopt) > 0 {
		if err := n.db.AddVersions(ctx, adopt); err != nil {
			return err
		}
		n.log.Info("version store: kept contents that a crash left unrecorded", "versions", len(adopt))
	}
	return nil
}

// eachLogged calls fn for every op of the log.
func eachLogged(ctx context.Context, l opLog, fn func(oplog.Op)) error {
	for origin := range l.Vector() {
		if err := l.Iterate(ctx, origin, 1, func(op oplog.Op) error { fn(op); return nil }); err != nil {
			return fmt.Errorf("read the op log: %w", err)
		}
	}
	return nil
}

// forgetMissingVersions drops the versions whose content the store does
// not hold (held lists what it does).
func (n *Node) forgetMissingVersions(ctx context.Context, held map[content.Hash]bool) error {
	vs, err := n.db.AllVersions(ctx)
	if err != nil {
		return err
	}
	var gone []int64
	for _, v := range vs {
		if !held[v.Hash] {
			gone = append(gone, v.ID)
		}
	}
	if len(gone) == 0 {
		return nil
	}
	n.log.Warn("version store: contents missing from the store are forgotten", "versions", len(gone))
	_, err = n.db.DropVersions(ctx, gone)
	return err
}

// versionsLoop prunes the version store at start and hourly.
func (n *Node) versionsLoop(ctx context.Context) {
	t := n.clock.NewTicker(time.Hour)
	defer t.Stop()
	for {
		if err := n.pruneVersions(ctx); err != nil && ctx.Err() == nil {
			n.log.Warn("pruning the version store failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C():
		}
	}
}
