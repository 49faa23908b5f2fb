// Package folder defines the synced folder as the engine sees it, and an
// in-memory one (Mem) that fails and crashes on demand, so the engine can
// be run and tested without a disk while keeping POSIX durability rules.
package folder

import (
	"io"
	"io/fs"
	"time"
)

// Folder is the synced folder as the engine reads and writes it: every
// path is relative to the folder and nothing outside it can be reached.
// These are exactly the operations the engine needs, so that the daemon
// runs over an os.Root (node.RootFolder) and the simulation over an in-memory
// folder that fails and crashes on demand, with the same engine code.
//
// Durability follows POSIX: written data survives a crash only once its
// file is synced (File.Sync, or SyncFS for every file), and a create,
// rename or removal only once its parent directory is synced (SyncDir).
type Folder interface {
	Open(name string) (File, error)
	OpenFile(name string, flag int, perm fs.FileMode) (File, error)
	Stat(name string) (fs.FileInfo, error)
	Lstat(name string) (fs.FileInfo, error)
	Rename(oldname, newname string) error
	// Link gives the file oldname a second name, newname, on the same
	// file system (link(2)); it fails where the file system has no hard
	// links (exFAT, FAT).
	Link(oldname, newname string) error
	Remove(name string) error
	MkdirAll(name string, perm fs.FileMode) error
	WriteFile(name string, data []byte, perm fs.FileMode) error
	Chmod(name string, mode fs.FileMode) error
	Chtimes(name string, atime, mtime time.Time) error
	// SyncFS flushes the data of every file written in the folder (a
	// no-op where a file system cannot be flushed at once: each file is then synced alone).
	SyncFS() error
	// SyncDir makes the creates, renames and removals inside dir ("" is
	// the folder itself) durable.
	SyncDir(dir string) error
	Close() error
}

// File is an open file or directory of a Folder; *os.File is one.
type File interface {
	io.Reader
	io.ReaderAt
	io.Writer
	io.WriterAt
	io.Seeker
	io.Closer
	Stat() (fs.FileInfo, error)
	Sync() error
	Truncate(size int64) error
	ReadDir(n int) ([]fs.DirEntry, error)
	Readdirnames(n int) ([]string, error)
}
