//go:build linux

package beneath

import (
	"errors"
	"io/fs"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// supported is true: Linux 5.6 and later have openat2.
const supported = true

// how opens a directory only to name things in it (O_PATH), resolving
// the path beneath the directory it starts from, through no "magic" link
// (/proc/self/fd/N).
var how = unix.OpenHow{
	Flags:   unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC,
	Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS,
}

// retries bounds openat2's tries of a resolution that met a signal or a
// concurrent rename; os.Root then takes over.
const retries = 4

// parent returns a descriptor of the directory dir names beneath root
// ("" is root itself, which needs no closing: closeFD says whether to
// close it). ok is false when the kernel cannot resolve it.
func (d *Dir) parent(root int, dir string) (fd int, closeFD, ok bool, err error) {
	if dir == "" {
		return root, false, true, nil
	}
	fd, err = openat2(root, dir, &how)
	switch {
	case err == nil:
		return fd, true, true, nil
	case errors.Is(err, unix.EXDEV):
		return -1, false, true, ErrEscapes
	case errors.Is(err, unix.ENOSYS), errors.Is(err, unix.EPERM), errors.Is(err, unix.EINVAL):
		// No openat2 here, or a sandbox that refuses it.
		d.off.Store(true)
		return -1, false, false, nil
	case gaveUp(err):
		return -1, false, false, nil
	default:
		return -1, false, true, err
	}
}

// openat2 is unix.Openat2, tried again while a signal interrupts it or a
// concurrent rename makes the kernel refuse to vouch for the resolution
// (EAGAIN), up to retries times: then it returns that error (see gaveUp).
func openat2(root int, name string, how *unix.OpenHow) (int, error) {
	fd, err := -1, error(nil)
	for range retries {
		if fd, err = unix.Openat2(root, name, how); !gaveUp(err) {
			break
		}
	}
	return fd, err
}

// gaveUp reports whether err is one openat2 tries again after, and
// returns once its tries are spent: the caller leaves the path to
// os.Root.
func gaveUp(err error) bool { return errors.Is(err, unix.EINTR) || errors.Is(err, unix.EAGAIN) }

// noSymlinks resolves a directory as how does, and through no symlink
// at all.
var noSymlinks = unix.OpenHow{
	Flags:   how.Flags,
	Resolve: how.Resolve | unix.RESOLVE_NO_SYMLINKS,
}

func (d *Dir) noSymlinkAbove(root int, dir string) bool {
	fd, err := openat2(root, dir, &noSymlinks)
	switch {
	case err == nil:
		unix.Close(fd)
		return true
	case errors.Is(err, unix.ENOENT), errors.Is(err, unix.ENOTDIR):
		// The resolution stopped at a name missing, or at a file,
		// every directory before it not a symlink.
		return true
	case errors.Is(err, unix.ENOSYS):
		d.off.Store(true)
		return false
	default: // ELOOP: a symlink on the way; or the kernel cannot say
		return false
	}
}

func (d *Dir) lstat(root int, name string) (fs.FileInfo, bool, error) {
	dir, base := split(name)
	fd, closeFD, ok, err := d.parent(root, dir)
	if !ok {
		return nil, false, nil
	}
	if err != nil {
		return nil, true, &fs.PathError{Op: "lstat", Path: name, Err: err}
	}
	if closeFD {
		defer unix.Close(fd)
	}
	var st syscall.Stat_t
	if err := fstatat(fd, base, &st); err != nil {
		return nil, true, &fs.PathError{Op: "lstat", Path: name, Err: err}
	}
	return &fileInfo{name: base, st: st}, true, nil
}

func (d *Dir) openFile(root int, name string, flag int, perm fs.FileMode) (*os.File, bool, error) {
	// O_LARGEFILE as os.OpenFile adds it: openat2 adds it only where
	// it is the default (64-bit systems), and a file over 2 GiB opened
	// without it on a 32-bit ARM board is EOVERFLOW.
	open := unix.OpenHow{
		Flags:   uint64(flag) | unix.O_CLOEXEC | unix.O_LARGEFILE,
		Mode:    uint64(perm),
		Resolve: how.Resolve,
	}
	if flag&(os.O_CREATE|unix.O_TMPFILE) == 0 {
		open.Mode = 0 // openat2 refuses a mode it would not use
	}
	fd, err := openat2(root, name, &open)
	switch {
	case err == nil:
		return os.NewFile(uintptr(fd), joinPath(d.name, name)), true, nil
	case errors.Is(err, unix.EXDEV):
		return nil, true, &fs.PathError{Op: "openat", Path: name, Err: ErrEscapes}
	case errors.Is(err, unix.ENOSYS):
		d.off.Store(true)
		return nil, false, nil
	case errors.Is(err, unix.EPERM), errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENAMETOOLONG), gaveUp(err):
		// A sandbox refusing openat2, or a refusal os.Root's openat
		// would meet too: it tells which. A path of PATH_MAX bytes is
		// too long for one call, not for os.Root's walk.
		return nil, false, nil
	default:
		return nil, true, &fs.PathError{Op: "openat", Path: name, Err: err}
	}
}

// joinPath names a file opened in the directory dir as os.Root names it.
func joinPath(dir, name string) string {
	if dir != "" && dir[len(dir)-1] == '/' {
		return dir + name
	}
	return dir + "/" + name
}

// fstatat is fstatat(2) of name in the directory fd, not following a
// symlink.
func fstatat(fd int, name string, st *syscall.Stat_t) error {
	var ust unix.Stat_t
	if err := ignoringEINTR(func() error { return unix.Fstatat(fd, name, &ust, unix.AT_SYMLINK_NOFOLLOW) }); err != nil {
		return err
	}
	*st = statOf(&ust)
	return nil
}

// ignoringEINTR calls fn until it is not interrupted by a signal.
func ignoringEINTR(fn func() error) error {
	for {
		if err := fn(); !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

func (d *Dir) rename(root int, oldname, newname string) (bool, error) {
	return d.twoNames(root, "rename", oldname, newname, func(fd0 int, base0 string, fd1 int, base1 string) error {
		return unix.Renameat(fd0, base0, fd1, base1)
	})
}

func (d *Dir) link(root int, oldname, newname string) (bool, error) {
	return d.twoNames(root, "link", oldname, newname, func(fd0 int, base0 string, fd1 int, base1 string) error {
		return unix.Linkat(fd0, base0, fd1, base1, 0) // a symlink is linked, not followed
	})
}

// twoNames resolves the directories of oldname and newname beneath root
// and calls call with each directory and last component; ok is false
// when the kernel cannot resolve them. op names the call in an error.
func (d *Dir) twoNames(root int, op, oldname, newname string, call func(fd0 int, base0 string, fd1 int, base1 string) error) (bool, error) {
	var fds [2]int
	var bases [2]string
	for i, name := range [2]string{oldname, newname} {
		var dir string
		dir, bases[i] = split(name)
		fd, closeFD, ok, err := d.parent(root, dir)
		if !ok {
			return false, nil
		}
		if err != nil {
			return true, &os.LinkError{Op: op, Old: oldname, New: newname, Err: err}
		}
		if closeFD {
			defer unix.Close(fd)
		}
		fds[i] = fd
	}
	if err := ignoringEINTR(func() error { return call(fds[0], bases[0], fds[1], bases[1]) }); err != nil {
		return true, &os.LinkError{Op: op, Old: oldname, New: newname, Err: err}
	}
	return true, nil
}

// fileInfo is what Lstat found, as os.Lstat reports it: Sys is the
// *syscall.Stat_t.
type fileInfo struct {
	name string
	st   syscall.Stat_t
}

func (i *fileInfo) Name() string       { return i.name }
func (i *fileInfo) Size() int64        { return i.st.Size }
func (i *fileInfo) Mode() fs.FileMode  { return modeOf(i.st.Mode) }
func (i *fileInfo) ModTime() time.Time { return time.Unix(i.st.Mtim.Unix()) }
func (i *fileInfo) IsDir() bool        { return i.Mode().IsDir() }
func (i *fileInfo) Sys() any           { return &i.st }

// modeOf turns a stat mode into an fs.FileMode as the os package does.
func modeOf(m uint32) fs.FileMode {
	mode := fs.FileMode(m & 0o777)
	switch m & syscall.S_IFMT {
	case syscall.S_IFBLK:
		mode |= fs.ModeDevice
	case syscall.S_IFCHR:
		mode |= fs.ModeDevice | fs.ModeCharDevice
	case syscall.S_IFDIR:
		mode |= fs.ModeDir
	case syscall.S_IFIFO:
		mode |= fs.ModeNamedPipe
	case syscall.S_IFLNK:
		mode |= fs.ModeSymlink
	case syscall.S_IFSOCK:
		mode |= fs.ModeSocket
	}
	if m&syscall.S_ISGID != 0 {
		mode |= fs.ModeSetgid
	}
	if m&syscall.S_ISUID != 0 {
		mode |= fs.ModeSetuid
	}
	if m&syscall.S_ISVTX != 0 {
		mode |= fs.ModeSticky
	}
	return mode
}

// sameInode compares the device and inode numbers of a and b, ok if
// both have them.
func sameInode(a, b fs.FileInfo) (same, ok bool) {
	if a == nil || b == nil {
		return false, false
	}
	sa, oka := a.Sys().(*syscall.Stat_t)
	sb, okb := b.Sys().(*syscall.Stat_t)
	if !oka || !okb {
		return false, false
	}
	return sa.Dev == sb.Dev && sa.Ino == sb.Ino, true
}
