//go:build windows

package lockfile

import (
	"errors"
	"os"

	"golang.org/x/sys/windows"
)

var errWouldBlock = windows.ERROR_LOCK_VIOLATION

// lockOffset is the byte that is locked: far past the pid written at the
// file's start, which other processes read while the lock is held
// (Windows refuses reads of a locked range, even to the same file's other
// handles).
const lockOffset = 1 << 30

// lock takes f's lock exclusively, or fails with errWouldBlock.
func lock(f *os.File) error { return lockRange(f, windows.LOCKFILE_EXCLUSIVE_LOCK) }

// lockShared takes f's lock shared: probes hold it side by side, and it
// fails with errWouldBlock while a process holds the lock exclusively.
func lockShared(f *os.File) error { return lockRange(f, 0) }

func lockRange(f *os.File, flags uint32) error {
	ol := &windows.Overlapped{Offset: lockOffset}
	err := windows.LockFileEx(windows.Handle(f.Fd()), flags|windows.LOCKFILE_FAIL_IMMEDIATELY, 0, 1, 0, ol)
	if errors.Is(err, windows.ERROR_IO_PENDING) {
		return errWouldBlock
	}
	return err
}

func unlock(f *os.File) {
	windows.UnlockFileEx(windows.Handle(f.Fd()), 0, 1, 0, &windows.Overlapped{Offset: lockOffset})
}
