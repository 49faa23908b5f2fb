//go:build linux

package node

import (
	"io/fs"
	"os"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// batchSync is true where the whole file system can be flushed at once:
// received files are then written without a per-file fsync and flushed
// together by syncFS before any of them is renamed into place.
const batchSync = true

// syncFS flushes every file written in the folder's file system.
func syncFS(root *os.Root) error {
	d, err := root.Open(".")
	if err != nil {
		return err
	}
	defer d.Close()
	return unix.Syncfs(int(d.Fd()))
}

// startWriteback starts the kernel's writeback of n bytes of f from off,
// without waiting for it. It is advisory: a failure is found by the
// flush that follows.
func startWriteback(f File, off, n int64) {
	if osf, ok := f.(*os.File); ok {
		unix.SyncFileRange(int(osf.Fd()), off, n, unix.SYNC_FILE_RANGE_WRITE)
	}
}

// dataSync flushes f's data and the metadata needed to read it back.
// A File that is no *os.File is synced whole.
func dataSync(f File) error {
	if osf, ok := f.(*os.File); ok {
		return unix.Fdatasync(int(osf.Fd()))
	}
	return f.Sync()
}

// sameDevice reports whether a and b, two Lstats, are on one file system.
// A FileInfo that says nothing of its device is taken to be on the
// folder's; an in-memory folder's all say device 0.
func sameDevice(a, b fs.FileInfo) bool {
	sa, ok := a.Sys().(*syscall.Stat_t)
	sb, okb := b.Sys().(*syscall.Stat_t)
	return !ok || !okb || sa.Dev == sb.Dev
}

// setMTime sets the access and modification times of f, open as name in
// folder, to mt: through its descriptor (utimensat with no path), which
// resolves no path again. A File that is no *os.File is set by name.
func setMTime(folder Folder, f File, name string, mt time.Time) error {
	osf, ok := f.(*os.File)
	if !ok {
		return folder.Chtimes(name, mt, mt)
	}
	raw, err := osf.SyscallConn()
	if err != nil {
		return err
	}
	ts := [2]unix.Timespec{unix.NsecToTimespec(mt.UnixNano()), unix.NsecToTimespec(mt.UnixNano())}
	var errno syscall.Errno
	if err := raw.Control(func(fd uintptr) {
		_, _, errno = unix.Syscall6(unix.SYS_UTIMENSAT, fd, 0, uintptr(unsafe.Pointer(&ts)), 0, 0, 0)
	}); err != nil {
		return err
	}
	if errno != 0 {
		return &fs.PathError{Op: "utimensat", Path: name, Err: errno}
	}
	return nil
}
