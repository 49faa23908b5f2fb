//go:build linux || darwin || freebsd

package node

import "golang.org/x/sys/unix"

// diskFree returns the bytes an unprivileged writer may still use on the
// file system holding path.
func diskFree(path string) (uint64, error) {
	var s unix.Statfs_t
	if err := unix.Statfs(path, &s); err != nil {
		return 0, err
	}
	return uint64(s.Bavail) * uint64(s.Bsize), nil
}

// diskSize returns the size of the file system holding path.
func diskSize(path string) (uint64, error) {
	var s unix.Statfs_t
	if err := unix.Statfs(path, &s); err != nil {
		return 0, err
	}
	return uint64(s.Blocks) * uint64(s.Bsize), nil
}
