//go:build !linux

package watcher

import "io/fs"

// keepsCTime reports false: only on Linux are the file systems whose
// ctimes show every change told apart (see ctime_linux.go), so a rescan
// for lost events compares the whole folder with the Index.
func keepsCTime(string) bool { return false }

// changeOf reports nothing known (see keepsCTime).
func changeOf(fs.FileInfo) (ctime int64, dev, ino uint64, ok bool) { return 0, 0, 0, false }
