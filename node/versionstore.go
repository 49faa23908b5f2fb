package node

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path"
	"slices"
	"time"

	"github.com/drive-node/drive-node/content"
	"github.com/drive-node/drive-node/node/internal/retention"
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
	root := n.folderRoot()
	st, err := root.Lstat(p)
	if err != nil || !st.Mode().IsRegular() {
		return keptFile{}, nil // nothing there to keep (a new file's place)
	}
	rec := staged.recs.get(p)
	if rec == nil {
		f, ok, err := n.db.File(ctx, p)
		if err != nil {
			return keptFile{}, err
		}
		if !ok {
			return keptFile{}, nil
		}
		rec = &f
	}
	if rec.Dir || rec.Deleted || rec.Hash.IsZero() {
		return keptFile{}, nil
	}
	h := rec.Hash
	if st.Size() != rec.Size || st.ModTime().UnixNano() != rec.MTime {
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
	if !remove {
		if err := root.Link(p, name); err == nil {
			k.linked = name
		}
	}
	if k.linked == "" {
		if err := root.Rename(p, name); err != nil {
			return keptFile{}, fmt.Errorf("keep %s in the version store: %w", p, err)
		}
		k.moved = true
		staged.touch(p)
	}
	staged.kept = append(staged.kept, v)
	k.version = v
	return k, nil
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

// openVersion opens the stored content h, checking its size against its
// versions' records.
func (n *Node) openVersion(ctx context.Context, h content.Hash) (File, int64, error) {
	vs, err := n.db.VersionsByHash(ctx, h)
	if err != nil {
		return nil, 0, err
	}
	if len(vs) == 0 {
		return nil, 0, fmt.Errorf("content %s: %w", h.Short(), fs.ErrNotExist)
	}
	f, err := n.folderRoot().Open(versionPath(h))
	if err != nil {
		return nil, 0, err
	}
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() || st.Size() != vs[0].Size {
		f.Close()
		return nil, 0, fmt.Errorf("content %s in the version store: %w", h.Short(), ErrHashMismatch)
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
	n.commitMu.Lock()
	defer n.commitMu.Unlock()
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
	freed, err := n.db.DropVersions(ctx, drop)
	if err != nil {
		return err
	}
	dirs := map[string]bool{}
	for _, h := range freed {
		if err := n.folderRoot().Remove(versionPath(h)); err != nil && !notThere(err) {
			n.log.Warn("removing a content from the version store failed", "content", h.Short(), "err", err)
		}
		dirs[parentDir(versionPath(h))] = true
	}
	for d := range dirs {
		n.folderRoot().SyncDir(d)
	}
	n.log.Info("version store pruned", "versions", len(drop), "contents", len(freed))
	return nil
}

// checkVersionStore makes the store and its records agree after a crash
// (see the top of this file): a content no version names is adopted or
// removed, and a version whose content is gone is forgotten.
func (n *Node) checkVersionStore(ctx context.Context) error {
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
	var adopt []state.Version
	for _, sub := range subs {
		d, err := root.Open(path.Join(VersionsDirName, sub))
		if err != nil {
			continue
		}
		names, _ := d.Readdirnames(-1)
		d.Close()
		for _, name := range names {
			p := path.Join(VersionsDirName, sub, name)
			h, err := content.ParseHash(name)
			if err != nil {
				root.Remove(p) // not the store's: a temp of a crashed copy
				continue
			}
			known, err := n.db.HasVersionContent(ctx, h)
			if err != nil {
				return err
			}
			if known {
				held[h] = true
				continue
			}
			v, ok := n.orphanOwner(ctx, h, p)
			if !ok {
				root.Remove(p)
				continue
			}
			held[h] = true
			adopt = append(adopt, v)
		}
	}
	if len(adopt) > 0 {
		if err := n.db.AddVersions(ctx, adopt); err != nil {
			return err
		}
		n.log.Info("version store: kept contents that a crash left unrecorded", "versions", len(adopt))
	}
	return n.forgetMissingVersions(ctx, held)
}

// orphanOwner finds the path a content the store holds without a version
// was kept for: one whose record still names the content while the file
// there is no longer it (the batch that replaced it never got recorded).
func (n *Node) orphanOwner(ctx context.Context, h content.Hash, stored string) (state.Version, bool) {
	sst, err := n.folderRoot().Lstat(stored)
	if err != nil {
		return state.Version{}, false
	}
	files, err := n.db.FilesByHash(ctx, h)
	if err != nil {
		return state.Version{}, false
	}
	for _, f := range files {
		st, err := n.folderRoot().Lstat(f.Path)
		if err == nil && (os.SameFile(st, sst) || st.Size() == f.Size && st.ModTime().UnixNano() == f.MTime) {
			return state.Version{}, false // still there: nothing was replaced
		}
	}
	if len(files) == 0 {
		return state.Version{}, false
	}
	f := files[0]
	return state.Version{Path: f.Path, Hash: h, Size: sst.Size(), Mode: f.Mode, MTime: f.MTime,
		Kept: n.clock.Now().UnixNano(), By: state.OpID{Origin: f.Origin}}, true
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

// copyVersion writes the stored content h to the temp file name, checking
// its hash, and fsyncs it.
func (n *Node) copyVersion(ctx context.Context, h content.Hash, name string) error {
	f, _, err := n.openVersion(ctx, h)
	if err != nil {
		return err
	}
	f.Close()
	return copyInRoot(ctx, n.folderRoot(), versionPath(h), name, h)
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
