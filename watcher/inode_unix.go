//go:build unix

package watcher

import (
	"io/fs"
	"syscall"
)

// InodeOf returns the inode number of the file described by info, or 0
// where the platform has none.
func InodeOf(info fs.FileInfo) uint64 {
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Ino)
	}
	return 0
}
