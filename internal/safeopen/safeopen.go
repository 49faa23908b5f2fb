// Package safeopen opens the files of a directory that other programs and
// users write, so that whatever they put there cannot block the daemon: a
// FIFO's open waits for a writer, and a read of it or of a device may never
// end, with no way to cancel either.
package safeopen

import (
	"errors"
	"io/fs"
	"os"
)

// ErrNotRegular is wrapped by In's error for a FIFO, device or socket.
var ErrNotRegular = errors.New("is not a regular file or a directory")

// In opens name in root as root.OpenFile does, but without waiting for the
// other end of a FIFO (O_NONBLOCK where the system has it; it changes
// nothing for a regular file), and refuses, with an error wrapping
// ErrNotRegular, anything it opened that is neither a regular file nor a
// directory. Checking what was opened, not what a stat before saw, leaves
// no window for a swap.
func In(root *os.Root, name string, flag int, perm fs.FileMode) (*os.File, error) {
	f, _, err := With(name, flag, func(flag int) (*os.File, error) { return root.OpenFile(name, flag, perm) })
	return f, err
}

// With is In with open doing the open, given flag with O_NONBLOCK added;
// it also returns what the check found the file to be.
func With(name string, flag int, open func(flag int) (*os.File, error)) (*os.File, fs.FileInfo, error) {
	f, err := open(flag | nonblock)
	if err != nil {
		return nil, nil, err
	}
	st, err := f.Stat()
	if err == nil && !st.Mode().IsRegular() && !st.IsDir() {
		err = &fs.PathError{Op: "open", Path: name, Err: ErrNotRegular}
	}
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, st, nil
}
