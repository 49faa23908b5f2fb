package node

import (
	"context"
	"errors"
	"io/fs"
	"strings"
	"time"

	"github.com/drive-node/drive-node/watcher"
)

// observe reports what is at p now, as the watcher would: a missing path
// also reports every recorded path under it as missing.
func (n *Node) observe(ctx context.Context, p string) ([]watcher.Observation, error) {
	st, err := n.folderRoot().Lstat(p)
	if errors.Is(err, fs.ErrNotExist) {
		out := []watcher.Observation{{Path: p}}
		for _, child := range (dbIndex{n.db}).Under(p) {
			out = append(out, watcher.Observation{Path: child})
		}
		return out, nil
	}
	if err != nil {
		return nil, err
	}
	o := watcher.Observation{Path: p, Exists: true, Dir: st.IsDir(), Mode: uint32(st.Mode().Perm()), MTime: st.ModTime().UnixNano(), Inode: watcher.InodeOf(st)}
	if st.Mode().IsRegular() {
		f, err := n.folderRoot().Open(p)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		h, size, err := hashOpen(ctx, f)
		if err != nil {
			return nil, err
		}
		o.Hash, o.Size = h, size
	} else if !st.IsDir() {
		return nil, nil // symlinks and devices are not synced
	}
	return []watcher.Observation{o}, nil
}

// removeStaleTemps deletes staged downloads in the folder root that are a
// day old: younger ones are kept so an interrupted transfer resumes.
func (n *Node) removeStaleTemps() {
	d, err := n.folderRoot().Open(".")
	if err != nil {
		return
	}
	defer d.Close()
	entries, err := d.ReadDir(-1)
	if err != nil {
		return
	}
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), TempPrefix) {
			continue
		}
		if info, err := e.Info(); err == nil && time.Since(info.ModTime()) > 24*time.Hour {
			n.folderRoot().Remove(e.Name())
		}
	}
}
