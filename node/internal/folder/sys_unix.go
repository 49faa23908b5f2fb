//go:build unix

package folder

import "syscall"

// sysOf is what a Mem's FileInfo.Sys returns: the inode number where the
// engine reads one (watcher.InodeOf).
func sysOf(ino uint64) any { return &syscall.Stat_t{Ino: ino} }
