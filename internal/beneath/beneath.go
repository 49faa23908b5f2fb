// Package beneath opens, looks at, renames and links paths inside a
// directory with the kernel resolving each path in one call, never
// outside the directory (openat2 with RESOLVE_BENEATH, Linux 5.6 and
// later). It does what os.Root's OpenFile, Lstat, Rename and Link do,
// symlinks inside the directory followed and those leading out of it
// refused, at about half the cost: os.Root opens and closes each
// directory on the way, one system call or two each.
//
// Where the kernel cannot (another system, an older kernel, a sandbox
// that refuses the call), every method says so, and the caller uses
// os.Root.
package beneath

import (
	"errors"
	"io/fs"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
)

// Dir is a directory whose paths are resolved beneath it. A nil *Dir
// resolves nothing.
type Dir struct {
	f *os.File
	// raw lends f's descriptor for the length of one call, and not once
	// f is closed: a closed Dir leaves every path to os.Root, which says
	// it is closed, and never uses a number the kernel may have given to
	// another file since.
	raw    syscall.RawConn
	name   string // the os.Root's, which names the files opened in it
	closed atomic.Bool
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
	raw, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	return &Dir{f: f, raw: raw, name: root.Name()}, nil
}

// Close closes the directory; closing it again, or a nil Dir, does
// nothing.
func (d *Dir) Close() error {
	if d == nil || d.closed.Swap(true) {
		return nil
	}
	return d.f.Close()
}

// usable reports whether d resolves paths.
func (d *Dir) usable() bool { return d != nil && supported && !d.off.Load() && !d.closed.Load() }

// with runs fn with d's descriptor, held open meanwhile; false if d is
// closed.
func (d *Dir) with(fn func(root int)) bool {
	return d.raw.Control(func(fd uintptr) { fn(int(fd)) }) == nil
}

// resolvable reports whether d resolves name as os.Root would: a
// relative name, with no slash at its end, whose last component is a
// name, neither "." nor "..": fstatat and renameat take the last
// component as it is, and ".." there would be the folder's parent.
// Every other name is left to os.Root, which refuses it or cleans it.
func resolvable(name string) bool {
	if name == "" || name[0] == '/' || name[len(name)-1] == '/' {
		return false
	}
	_, base := split(name)
	return base != "." && base != ".."
}

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
	if !d.usable() || !resolvable(name) {
		return nil, false, nil
	}
	if !d.with(func(root int) { info, ok, err = d.lstat(root, name) }) {
		return nil, false, nil
	}
	return info, ok, err
}

// Rename renames oldname to newname, as rename(2) does. ok is false when
// d cannot resolve them: then the caller asks os.Root.
func (d *Dir) Rename(oldname, newname string) (ok bool, err error) {
	if !d.usable() || !resolvable(oldname) || !resolvable(newname) {
		return false, nil
	}
	if !d.with(func(root int) { ok, err = d.rename(root, oldname, newname) }) {
		return false, nil
	}
	return ok, err
}

// Link makes newname a hard link to oldname, as os.Root's Link does (a
// symlink is linked, not followed). ok is false when d cannot resolve
// them: then the caller asks os.Root.
func (d *Dir) Link(oldname, newname string) (ok bool, err error) {
	if !d.usable() || !resolvable(oldname) || !resolvable(newname) {
		return false, nil
	}
	if !d.with(func(root int) { ok, err = d.link(root, oldname, newname) }) {
		return false, nil
	}
	return ok, err
}

// OpenFile opens name as os.Root's OpenFile does, flag and perm as
// os.OpenFile takes them: a symlink inside the directory is followed, one
// leading out of it refused. ok is false when d cannot resolve it, or
// the kernel refused in a way os.Root may not (a permission, a flag), or
// perm holds more than permission bits (which os.Root refuses): then the
// caller asks os.Root, which also gives the error to report.
//
// A directory opened so is not os.Root's: the Info of the entries its
// ReadDir lists looks at them by path, through whatever is there by
// then. A caller that lists a directory opens it through os.Root.
func (d *Dir) OpenFile(name string, flag int, perm fs.FileMode) (f *os.File, ok bool, err error) {
	if !d.usable() || !resolvable(name) || perm&^fs.ModePerm != 0 {
		return nil, false, nil
	}
	if !d.with(func(root int) { f, ok, err = d.openFile(root, name, flag, perm) }) {
		return nil, false, nil
	}
	return f, ok, err
}

// NoSymlinkAbove reports whether the kernel found no symlink among the
// directories above name that exist, with one resolution. false says
// only that it did not: one of them is a symlink, d cannot tell, or the
// resolution failed otherwise; the caller then looks at each.
func (d *Dir) NoSymlinkAbove(name string) bool {
	if !d.usable() || !resolvable(name) {
		return false
	}
	dir, _ := split(name)
	if dir == "" {
		return true
	}
	var none bool
	if !d.with(func(root int) { none = d.noSymlinkAbove(root, dir) }) {
		return false
	}
	return none
}

// ErrEscapes is the error of a path that leads out of the directory (by
// a symlink): not EXDEV, which the kernel says for it, as that also
// means a rename between two file systems.
var ErrEscapes = errors.New("path escapes from the folder")

// SameFile reports whether a and b describe one file, as os.SameFile does,
// also when either came from a Dir's Lstat (os.SameFile tells only its
// own package's).
func SameFile(a, b fs.FileInfo) bool {
	if same, ok := sameInode(a, b); ok {
		return same
	}
	return os.SameFile(a, b)
}
