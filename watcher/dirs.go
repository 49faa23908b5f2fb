package watcher

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/drive-node/drive-node/content"
	"github.com/drive-node/drive-node/internal/safeopen"
)

// errReplaced means that what was opened at a path is not what a look at
// the path had found just before: it was replaced in between.
var errReplaced = errors.New("replaced while being opened")

// openRoot opens the folder, failing as checkRoot does if it is gone or is
// no longer the directory New found. Every look inside the folder goes
// through the returned Root, one directory at a time (see openDir), so
// that a path whose parent has become a symlink can never lead out of the
// folder: os.Root refuses to leave it, and openDir refuses symlinks
// altogether.
func (w *Watcher) openRoot() (*os.Root, error) {
	root, err := os.OpenRoot(w.root)
	if err != nil {
		return nil, w.isRoot(nil, err)
	}
	if err := w.isRoot(root.Stat(".")); err != nil {
		root.Close()
		return nil, err
	}
	return root, nil
}

// openDir opens the directory name in parent; rel is its path, for
// errors. Anything but a real directory fails with ENOTDIR (so that it
// counts as gone): a symlink there, even one leading back into the folder,
// is not a directory of the folder. The Lstat before opening and the
// comparison after make sure that the directory opened is the one that was
// there, not one reached through a symlink swapped in meanwhile. It returns
// the Lstat too.
func openDir(parent *os.Root, name, rel string) (*os.Root, fs.FileInfo, error) {
	st, err := parent.Lstat(name)
	if err != nil {
		return nil, nil, fmt.Errorf("watcher: look at %s: %w", rel, err)
	}
	if !st.IsDir() {
		return nil, nil, fmt.Errorf("watcher: open %s: %w", rel, syscall.ENOTDIR)
	}
	dir, err := parent.OpenRoot(name)
	if err != nil {
		return nil, nil, fmt.Errorf("watcher: open %s: %w", rel, err)
	}
	now, err := dir.Stat(".")
	if err == nil && !os.SameFile(st, now) {
		err = errReplaced
	}
	if err != nil {
		dir.Close()
		return nil, nil, fmt.Errorf("watcher: open %s: %w", rel, err)
	}
	return dir, st, nil
}

// listDir lists the directory dir is open on, sorted by name.
func listDir(dir *os.Root) ([]fs.DirEntry, error) {
	return fs.ReadDir(dir.FS(), ".")
}

// hashIn hashes the regular file rel, which st describes, opened as name
// in its directory dir so that nothing outside the folder is read. It
// fails with errReplaced if the file opened is not the one st describes (a
// symlink, which Open would follow, or another file put there meanwhile),
// so that the hash is never that of another file. A FIFO or device put there
// meanwhile is found without waiting on it (see safeopen), and is
// errReplaced too.
func hashIn(ctx context.Context, hash func(context.Context, *os.File) (content.Hash, int64, error), dir *os.Root, rel, name string, st fs.FileInfo) (content.Hash, int64, error) {
	f, err := safeopen.In(dir, name, os.O_RDONLY, 0)
	if errors.Is(err, safeopen.ErrNotRegular) {
		err = errReplaced
	}
	if err != nil {
		return content.Hash{}, 0, fmt.Errorf("watcher: hash %s: %w", rel, err)
	}
	defer f.Close()
	now, err := f.Stat()
	if err == nil && !os.SameFile(st, now) {
		err = errReplaced
	}
	if err != nil {
		return content.Hash{}, 0, fmt.Errorf("watcher: hash %s: %w", rel, err)
	}
	h, n, err := hash(ctx, f)
	if err != nil {
		return content.Hash{}, n, fmt.Errorf("watcher: hash %s: %w", rel, err)
	}
	return h, n, nil
}

// dirChain opens directories of the folder with openDir, from the folder
// down, and keeps open the chain last opened: lookPaths goes through
// sorted paths, so that siblings and cousins share their ancestors'
// handles instead of opening them again.
type dirChain struct {
	rels []string   // rels[i+1] is a child of rels[i]; rels[0] is "", the folder
	dirs []*os.Root // open on rels; dirs[0] belongs to the caller
	// lists holds, with Options.ExactNames (nil without), the listing of
	// each directory a name was checked in (see exact), read at its first
	// check and kept for the chain's life: one look.
	lists   map[string]*listing
	readDir func(dir *os.Root) ([]fs.DirEntry, error)
}

// newDirChain returns a chain from the folder, open as root, that checks
// names against listings if Options.ExactNames is set.
func (w *Watcher) newDirChain(root *os.Root) *dirChain {
	c := &dirChain{rels: []string{""}, dirs: []*os.Root{root}}
	if w.o.ExactNames {
		c.lists, c.readDir = map[string]*listing{}, w.readDir
	}
	return c
}

// exact fails, with an error wrapping errNotListed, unless the directory
// rel, open as dir, lists name under exactly that name; and with the
// listing's error if it cannot be listed. It does nothing unless the
// chain checks names.
func (c *dirChain) exact(dir *os.Root, rel, name string) error {
	if c.lists == nil {
		return nil
	}
	l := c.lists[rel]
	if l == nil {
		l = newListing(c.readDir(dir))
		c.lists[rel] = l
	}
	p := join(rel, name)
	if l.err != nil {
		return fmt.Errorf("watcher: look at %s: %w", p, l.err)
	}
	if !l.has(name) {
		return fmt.Errorf("watcher: look at %s: %w", p, errNotListed)
	}
	return nil
}

// aliases returns the paths, listed in p's directory, that the file system
// may take p for (see listing.aliases), if that directory was listed
// by exact and does not list p.
func (c *dirChain) aliases(p string) []string {
	dir := parentOf(p)
	l := c.lists[dir]
	name := path.Base(p)
	if l == nil || l.err != nil || l.has(name) {
		return nil
	}
	var out []string
	for _, a := range l.aliases(name) {
		out = append(out, join(dir, a))
	}
	return out
}

// open returns the directory rel, valid until the next open or close. It
// fails as openDir does at the first component that is not a directory.
func (c *dirChain) open(rel string) (*os.Root, error) {
	for n := len(c.rels) - 1; n > 0 && !within(rel, c.rels[n]); n-- {
		c.pop()
	}
	have := c.rels[len(c.rels)-1]
	if rel == have {
		return c.dirs[len(c.dirs)-1], nil
	}
	rest := rel
	if have != "" {
		rest = rel[len(have)+1:]
	}
	for name := range strings.SplitSeq(rest, "/") {
		sub := join(have, name)
		parent := c.dirs[len(c.dirs)-1]
		if err := c.exact(parent, have, name); err != nil {
			return nil, err
		}
		dir, _, err := openDir(parent, name, sub)
		if err != nil {
			return nil, err
		}
		c.rels, c.dirs = append(c.rels, sub), append(c.dirs, dir)
		have = sub
	}
	return c.dirs[len(c.dirs)-1], nil
}

func (c *dirChain) pop() {
	n := len(c.dirs) - 1
	c.dirs[n].Close()
	c.rels, c.dirs = c.rels[:n], c.dirs[:n]
}

// close closes the directories the chain opened.
func (c *dirChain) close() {
	for len(c.dirs) > 1 {
		c.pop()
	}
}

// join returns the path of name in the directory dir ("" for the folder).
func join(dir, name string) string {
	if dir == "" {
		return name
	}
	return dir + "/" + name
}

// within reports whether rel is dir or lies under it.
func within(rel, dir string) bool {
	return dir == "" || rel == dir || strings.HasPrefix(rel, dir+"/")
}

// leadsTo reports whether the OS path of rel leads, through directories
// only (no symlink in any component), to the directory dir is open on.
// fsnotify watches a path, not an open directory, and resolves every
// symlink in it: this is checked after a watch is added, so that a watch
// is not left outside the folder when a parent was swapped for a symlink
// while it was added.
func (w *Watcher) leadsTo(rel string, dir *os.Root) bool {
	var st fs.FileInfo
	p := w.root
	for name := range strings.SplitSeq(rel, "/") {
		p = filepath.Join(p, name)
		var err error
		if st, err = os.Lstat(p); err != nil || !st.IsDir() {
			return false
		}
	}
	now, err := dir.Stat(".")
	return err == nil && os.SameFile(st, now)
}
