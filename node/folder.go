package node

import (
	"context"
	"io"
	"io/fs"
	"os"
	"time"

	"github.com/drive-node/drive-node/content"
)

// Folder is the synced folder as the engine reads and writes it: every
// path is relative to the folder and nothing outside it can be reached.
// These are exactly the operations the engine needs, so that the daemon
// runs over an os.Root (RootFolder) and the simulation over an in-memory
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
	Remove(name string) error
	MkdirAll(name string, perm fs.FileMode) error
	WriteFile(name string, data []byte, perm fs.FileMode) error
	Chmod(name string, mode fs.FileMode) error
	Chtimes(name string, atime, mtime time.Time) error
	// SyncFS flushes the data of every file written in the folder (a
	// no-op where batchSync is false: each file is then synced alone).
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
	io.Seeker
	io.Closer
	Stat() (fs.FileInfo, error)
	Sync() error
	ReadDir(n int) ([]fs.DirEntry, error)
	Readdirnames(n int) ([]string, error)
}

// RootFolder is the Folder of the daemon: an os.Root, which refuses every
// path that would leave the folder (through "..", or a symlink).
type RootFolder struct{ *os.Root }

// OpenRootFolder opens the directory dir as a RootFolder.
func OpenRootFolder(dir string) (Folder, error) {
	r, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	return RootFolder{r}, nil
}

// Open opens name for reading.
func (r RootFolder) Open(name string) (File, error) {
	f, err := r.Root.Open(name)
	if err != nil {
		return nil, err // not a typed nil inside the interface
	}
	return f, nil
}

// OpenFile opens name as os.OpenFile does.
func (r RootFolder) OpenFile(name string, flag int, perm fs.FileMode) (File, error) {
	f, err := r.Root.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return f, nil
}

// SyncFS flushes the folder's whole file system where that can be done at
// once (see batchSync).
func (r RootFolder) SyncFS() error { return syncFS(r.Root) }

// SyncDir fsyncs the directory dir.
func (r RootFolder) SyncDir(dir string) error { return syncDir(r.Root, dir) }

// hashFile hashes f from its start: on every core for an *os.File, as one
// stream otherwise.
func hashFile(ctx context.Context, f File) (content.Hash, int64, error) {
	if osf, ok := f.(*os.File); ok {
		return content.Open(ctx, osf)
	}
	return content.Reader(ctx, f)
}

// setFolder makes f the folder the node works in and returns the one it
// replaces (nil if none).
func (n *Node) setFolder(f Folder) Folder {
	if old := n.root.Swap(&f); old != nil {
		return *old
	}
	return nil
}

// folderRoot is the folder as it is open now.
func (n *Node) folderRoot() Folder {
	if p := n.root.Load(); p != nil {
		return *p
	}
	return nil
}
