package watcher

import (
	"io/fs"
	"syscall"
)

// File systems whose inodes carry a change time (ctime) of their own,
// stamped from the kernel's clock at every change to the inode and kept
// across a remount: a write, a truncate, a chmod or chown, a rename of the
// inode itself, and any entry made, removed or renamed in a directory
// (which is a change to the directory). Others are left out on purpose:
// FAT and exFAT keep no ctime (Linux shows one made up from the mtime,
// which a copy that keeps mtimes sets back), NFS, SMB and FUSE stamp
// ctime from another clock, and overlayfs reports inodes and devices
// that are not stable.
const (
	ext4Magic  = 0xEF53 // ext2, ext3 and ext4
	xfsMagic   = 0x58465342
	btrfsMagic = 0x9123683E
	tmpfsMagic = 0x01021994
	f2fsMagic  = 0xF2F52010
	zfsMagic   = 0x2FC12FC1
)

// keepsCTime reports whether the file system holding dir is one whose
// ctimes can be trusted to show every change (see lostScan).
func keepsCTime(dir string) bool {
	var s syscall.Statfs_t
	if err := syscall.Statfs(dir, &s); err != nil {
		return false
	}
	switch uint32(s.Type) {
	case ext4Magic, xfsMagic, btrfsMagic, tmpfsMagic, f2fsMagic, zfsMagic:
		return true
	}
	return false
}

// changeOf returns the change time (unix nanoseconds), the device and the
// inode number of what info describes; ok is false if they are not known.
func changeOf(info fs.FileInfo) (ctime int64, dev, ino uint64, ok bool) {
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, 0, false
	}
	return st.Ctim.Nano(), uint64(st.Dev), uint64(st.Ino), true
}
