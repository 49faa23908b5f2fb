//go:build unix

package node

import (
	"io/fs"
	"syscall"
)

// linkCount is how many names the file has (1 where it cannot be told).
func linkCount(st fs.FileInfo) uint64 {
	if s, ok := st.Sys().(*syscall.Stat_t); ok && s.Nlink > 0 {
		return uint64(s.Nlink)
	}
	return 1
}
