//go:build unix

package lockfile

import (
	"errors"
	"os"
	"syscall"
)

var errWouldBlock = syscall.EWOULDBLOCK

// lock takes f's lock exclusively, or fails with errWouldBlock.
func lock(f *os.File) error { return flock(f, syscall.LOCK_EX) }

// lockShared takes f's lock shared: probes hold it side by side, and it
// fails with errWouldBlock while a process holds the lock exclusively.
func lockShared(f *os.File) error { return flock(f, syscall.LOCK_SH) }

func flock(f *os.File, how int) error {
	err := syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB)
	if errors.Is(err, syscall.EAGAIN) {
		return errWouldBlock
	}
	return err
}

func unlock(f *os.File) { syscall.Flock(int(f.Fd()), syscall.LOCK_UN) }
