//go:build !unix

package watcher

import "io/fs"

// InodeOf returns 0: this platform's FileInfo carries no inode number.
func InodeOf(info fs.FileInfo) uint64 { return 0 }
