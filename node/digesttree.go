package node

import (
	"cmp"
	"context"
	"slices"
	"strings"

	"github.com/drive-node/drive-node/node/internal/digest"
	"github.com/drive-node/drive-node/state"
)

// The digest is summed from the tree the last computation saved
// (state.SaveDigestTree): only the directories whose records changed
// since (state.DirtyDirs) and those above them are summed again, each
// from its records and its subdirectories' saved hashes. One file edited
// in a folder of a million costs a few directories' records, not a
// million. The first computation, or one after a database that kept no
// tree, sums every directory and saves them all.

// treeSaveEvery is how many directories a summing holds before it saves
// them: a folder of many directories is summed in bounded memory.
const treeSaveEvery = 4096

// treeSum is one computation of the digest's tree.
type treeSum struct {
	n    *Node
	set  []state.DigestDir
	drop []string
}

// computeDigest sums the live records. The applied vector is read before
// the records: a digest is then never credited with ops its records do
// not reflect (the loop drops one whose records changed meanwhile).
func (n *Node) computeDigest(ctx context.Context) (*ownDigest, error) {
	n.digests.summing.Lock()
	defer n.digests.summing.Unlock()
	stats, err := n.db.Stats(ctx)
	if err != nil {
		return nil, err
	}
	applied, err := n.db.Applied(ctx)
	if err != nil {
		return nil, err
	}
	dirty, err := n.db.DirtyDirs(ctx, "")
	if err != nil {
		return nil, err
	}
	savedRoot, saved, err := n.db.DigestDirOf(ctx, "")
	if err != nil {
		return nil, err
	}
	s := &treeSum{n: n}
	root := digest.Hash(savedRoot)
	switch {
	case saved && len(dirty) == 0:
		// Nothing changed since the tree was saved.
	case saved:
		root, err = s.changed(ctx, dirty)
	default:
		// A tree partly saved by a computation that stopped is not
		// trusted: it is dropped before any row of the new one is saved.
		if err = n.db.SaveDigestTree(ctx, state.DigestTreeUpdate{Reset: true}); err == nil {
			root, err = s.dir(ctx, "")
		}
	}
	if err != nil {
		return nil, err
	}
	s.set = append(s.set, state.DigestDir{Path: "", Hash: root})
	err = n.db.SaveDigestTree(ctx, state.DigestTreeUpdate{Set: s.set, Drop: s.drop, Done: dirty})
	if err != nil {
		return nil, err
	}
	return &ownDigest{Root: root, Files: uint64(stats.Files + stats.Dirs), Applied: applied, At: n.clock.Now(), Changes: stats.Changes}, nil
}

// stale returns the directories whose saved hash may be wrong: those
// marked and every directory above them.
func stale(dirty []state.DirtyDir) map[string]bool {
	out := make(map[string]bool, len(dirty))
	for _, d := range dirty {
		for p := d.Path; !out[p]; p = parentDir(p) {
			out[p] = true
			if p == "" {
				break
			}
		}
	}
	return out
}

// changed sums the stale directories again, deepest first, and returns
// the folder's hash.
func (s *treeSum) changed(ctx context.Context, dirty []state.DirtyDir) (digest.Hash, error) {
	tree := savedTree{n: s.n, stale: stale(dirty)}
	order := make([]string, 0, len(tree.stale))
	for p := range tree.stale {
		order = append(order, p)
	}
	depth := func(p string) int {
		if p == "" {
			return -1
		}
		return strings.Count(p, "/")
	}
	slices.SortFunc(order, func(a, b string) int { return cmp.Or(cmp.Compare(depth(b), depth(a)), strings.Compare(a, b)) })
	summed := make(map[string]digest.Hash, len(order))
	resum := func(p string) (digest.Hash, error) {
		if h, ok := summed[p]; ok {
			return h, nil
		}
		// Stale with nothing under it marked (never, as marks go), or
		// not saved (an empty directory has no row): summed whole.
		return s.dir(ctx, p)
	}
	for _, d := range order {
		h, kids, err := s.n.treeChildren(ctx, d, tree.subdirsOf(ctx, d, resum))
		if err != nil {
			return digest.Hash{}, err
		}
		summed[d] = h
		if d == "" {
			continue
		}
		if err := s.keep(ctx, d, h, kids); err != nil {
			return digest.Hash{}, err
		}
	}
	return summed[""], nil
}

// savedTree is the digest's tree as saved, with the directories whose
// saved hash may be wrong (see stale).
type savedTree struct {
	n     *Node
	stale map[string]bool
}

// subdirsOf returns a sub for dirChildren of the directory d that takes a
// subdirectory's saved hash unless it is stale, and otherwise the hash
// other gives. The saved hashes in d are read once, at the first
// subdirectory that is not stale.
func (t savedTree) subdirsOf(ctx context.Context, d string, other func(p string) (digest.Hash, error)) func(p, name string) (digest.Hash, error) {
	var saved map[string][32]byte
	return func(p, name string) (digest.Hash, error) {
		if t.stale[p] {
			return other(p)
		}
		if saved == nil {
			var err error
			if saved, err = t.n.db.DigestSubdirs(ctx, d); err != nil {
				return digest.Hash{}, err
			}
		}
		if h, ok := saved[name]; ok {
			return digest.Hash(h), nil
		}
		return other(p)
	}
}

// dir sums the directory d and everything under it from its records,
// saving each directory's hash, and returns d's.
func (s *treeSum) dir(ctx context.Context, d string) (digest.Hash, error) {
	h, kids, err := s.n.treeChildren(ctx, d, func(sub, _ string) (digest.Hash, error) { return s.dir(ctx, sub) })
	if err != nil || d == "" {
		return h, err
	}
	return h, s.keep(ctx, d, h, kids)
}

// keep notes d's hash for the save, or drops its row when it holds
// nothing (gone, or an empty directory, whose hash is known without one),
// saving what it holds once there is treeSaveEvery.
func (s *treeSum) keep(ctx context.Context, d string, h digest.Hash, kids int) error {
	if kids == 0 {
		s.drop = append(s.drop, d)
	} else {
		s.set = append(s.set, state.DigestDir{Path: d, Hash: h})
	}
	if len(s.set)+len(s.drop) < treeSaveEvery {
		return nil
	}
	// Saved without the marks: those are removed with the folder's hash.
	err := s.n.db.SaveDigestTree(ctx, state.DigestTreeUpdate{Set: s.set, Drop: s.drop})
	s.set, s.drop = s.set[:0], s.drop[:0]
	return err
}

// treeChildren reads the directory dir's live records ("" for the folder)
// and returns its hash and how many children it has; sub gives the hash
// of a subdirectory (its path and name).
func (n *Node) treeChildren(ctx context.Context, dir string, sub func(p, name string) (digest.Hash, error)) (digest.Hash, int, error) {
	children, err := n.dirChildren(ctx, dir, sub)
	if err != nil {
		return digest.Hash{}, 0, err
	}
	return digest.DirHash(children), len(children), nil
}

// dirChildren returns the children of the directory dir ("" for the
// folder), each with its hash (a subdirectory's from sub), in the order
// the directory's hash takes them. It reads one directory's records at a
// time, so that a walk holds the directories on one path, not the
// folder: the tree is the one digest.Root sums from every entry.
func (n *Node) dirChildren(ctx context.Context, dir string, sub func(p, name string) (digest.Hash, error)) ([]digest.Child, error) {
	var kids []state.Child
	if err := n.db.Children(ctx, dir, func(c state.Child) error {
		kids = append(kids, c)
		return nil
	}); err != nil {
		return nil, err
	}
	// A directory known only from what it holds comes where its first
	// record sorts ("a" after "a.txt"); a directory's hash takes its
	// children in byte order of name.
	slices.SortFunc(kids, func(a, b state.Child) int { return strings.Compare(a.Name, b.Name) })
	children := make([]digest.Child, 0, len(kids))
	for _, c := range kids {
		if !c.Dir {
			children = append(children, digest.Child{Name: c.Name, Kind: digest.File, Hash: digest.FileHash(c.Hash, c.Mode)})
			continue
		}
		p := c.Name
		if dir != "" {
			p = dir + "/" + c.Name
		}
		h, err := sub(p, c.Name)
		if err != nil {
			return nil, err
		}
		children = append(children, digest.Child{Name: c.Name, Kind: digest.Dir, Hash: h})
	}
	return children, nil
}

// treeDir returns the children of the directory dir of this device's
// tree, as a walk shows them (see dirChildren).
func (n *Node) treeDir(ctx context.Context, dir string) ([]digest.Child, error) {
	sub, err := n.savedSubdirs(ctx, dir)
	if err != nil {
		return nil, err
	}
	return n.dirChildren(ctx, dir, sub)
}

// savedSubdirs returns a sub for dirChildren of dir that takes a
// subdirectory's saved hash when it is not stale, and sums it otherwise,
// from its records and the saved hashes below it that are not stale
// either (without saving: a walk's answer does not write).
func (n *Node) savedSubdirs(ctx context.Context, dir string) (func(p, name string) (digest.Hash, error), error) {
	var whole func(p, name string) (digest.Hash, error)
	whole = func(p, _ string) (digest.Hash, error) {
		children, err := n.dirChildren(ctx, p, whole)
		return digest.DirHash(children), err
	}
	if _, ok, err := n.db.DigestDirOf(ctx, ""); err != nil || !ok {
		return whole, err
	}
	dirty, err := n.db.DirtyDirs(ctx, dir)
	if err != nil {
		return nil, err
	}
	tree := savedTree{n: n, stale: stale(dirty)}
	var sum func(p string) (digest.Hash, error)
	sum = func(p string) (digest.Hash, error) {
		children, err := n.dirChildren(ctx, p, tree.subdirsOf(ctx, p, sum))
		return digest.DirHash(children), err
	}
	return tree.subdirsOf(ctx, dir, sum), nil
}
