// Package beneath looks at and renames paths inside a directory with the
// kernel resolving each path in one call, never outside the directory
// (openat2 with RESOLVE_BENEATH, Linux 5.6 and later). It does what
// os.Root's Lstat and Rename do, symlinks inside the directory followed
// and those leading out of it refused, at about half the cost: os.Root
// opens and closes each directory on the way, one system call or two
// each.
//
// Where the kernel cannot (another system, an older kernel, a sandbox
// that refuses the call), every method says so, and the caller uses
// os.Root.
package beneath

import (
	"io/fs"
	"os"
	"strings"
	"sync/atomic"
)

// Dir is a directory whose paths are resolved beneath it. A nil *Dir
// resolves nothing.
type Dir struct {
	f  *os.File
	fd int // f's, taken once: Fd may be called on it no more after
	// off is set once the kernel refused the call: it is not tried again.
	off atomic.Bool
}

// Open opens the directory root is open on, through root, so that both
// are one directory.
func Open(root *os.Root) (*Dir, error) {
	f, err := root.Open(".")
	if err != nil {
		return nil, err
	}
	return &Dir{f: f, fd: int(f.Fd())}, nil
}

// Close closes the directory; a nil Dir has nothing to close.
func (d *Dir) Close() error {
	if d == nil {
		return nil
	}
	return d.f.Close()
}

// usable reports whether d resolves paths.
func (d *Dir) usable() bool { return d != nil && supported && !d.off.Load() }

// split returns the directory part of a slash-separated name ("" for a
// name of one component) and its last component.
func split(name string) (dir, base string) {
	i := strings.LastIndexByte(name, '/')
	if i < 0 {
		return "", name
	}
	return name[:i], name[i+1:]
}

// Lstat returns what name is, not following it if it is a symlink. ok is
// false when d cannot resolve it: then the caller asks os.Root.
func (d *Dir) Lstat(name string) (info fs.FileInfo, ok bool, err error) {
	if !d.usable() {
		return nil, false, nil
	}
	return d.lstat(name)
}

// Rename renames oldname to newname, as rename(2) does. ok is false when
// d cannot resolve them: then the caller asks os.Root.
func (d *Dir) Rename(oldname, newname string) (ok bool, err error) {
	if !d.usable() {
		return false, nil
	}
	return d.rename(oldname, newname)
}

// SameFile reports whether a and b describe one file, as os.SameFile does,
// also when either came from a Dir's Lstat (os.SameFile tells only its
// own package's).
func SameFile(a, b fs.FileInfo) bool {
	if same, ok := sameInode(a, b); ok {
		return same
	}
	return os.SameFile(a, b)
}
