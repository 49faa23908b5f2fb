package node

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/drive-node/drive-node/content"
	"github.com/drive-node/drive-node/internal/beneath"
	"github.com/drive-node/drive-node/internal/durable"
	"github.com/drive-node/drive-node/internal/safeopen"
	"github.com/drive-node/drive-node/node/internal/folder"
)

// Folder is the synced folder as the engine reads and writes it (see
// folder.Folder).
type Folder = folder.Folder

// File is an open file or directory of a Folder; *os.File is one.
type File = folder.File

// RootFolder is the Folder of the daemon: an os.Root, which refuses every
// path that would leave the folder (through "..", or a symlink). Where
// the kernel can, paths are opened, looked at and renamed with it
// resolving them beneath the folder, the same refusals at a fraction of
// the cost (see beneath).
type RootFolder struct {
	*os.Root
	beneath *beneath.Dir // nil: os.Root does it all
}

// OpenRootFolder opens the directory dir as a RootFolder.
func OpenRootFolder(dir string) (Folder, error) {
	r, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	b, err := beneath.Open(r)
	if err != nil {
		b = nil // os.Root does it all
	}
	return RootFolder{Root: r, beneath: b}, nil
}

// Close closes the folder.
func (r RootFolder) Close() error {
	return errors.Join(r.beneath.Close(), r.Root.Close())
}

// Lstat returns what name is, not following a symlink there.
func (r RootFolder) Lstat(name string) (fs.FileInfo, error) {
	if info, ok, err := r.beneath.Lstat(name); ok {
		return info, err
	}
	return r.Root.Lstat(name)
}

// Rename renames oldname to newname, replacing what newname names.
func (r RootFolder) Rename(oldname, newname string) error {
	if ok, err := r.beneath.Rename(oldname, newname); ok {
		return err
	}
	return r.Root.Rename(oldname, newname)
}

// NoSymlinkAbove reports whether the kernel found no symlink among the
// existing directories above name, in one call (see beneath); false
// when it did not tell.
func (r RootFolder) NoSymlinkAbove(name string) bool { return r.beneath.NoSymlinkAbove(name) }

// Link makes newname a hard link to oldname.
func (r RootFolder) Link(oldname, newname string) error {
	if ok, err := r.beneath.Link(oldname, newname); ok {
		return err
	}
	return r.Root.Link(oldname, newname)
}

// Open opens name for reading.
func (r RootFolder) Open(name string) (File, error) {
	return r.OpenFile(name, os.O_RDONLY, 0)
}

// OpenFile opens name as os.OpenFile does, except that a FIFO, device or
// socket found there is an error wrapping safeopen.ErrNotRegular, never a
// wait: anyone who can write in the folder can put one where a file was.
func (r RootFolder) OpenFile(name string, flag int, perm fs.FileMode) (File, error) {
	beneath := false
	f, info, err := safeopen.With(name, flag, func(flag int) (*os.File, error) {
		f, ok, err := r.beneath.OpenFile(name, flag, perm)
		if beneath = ok; ok {
			return f, err
		}
		return r.Root.OpenFile(name, flag, perm)
	})
	if err == nil && beneath && info.IsDir() {
		// A directory is listed through os.Root, whose entries are
		// looked at through it (see beneath.Dir.OpenFile).
		f.Close()
		f, err = safeopen.In(r.Root, name, flag, perm)
	}
	if err != nil {
		return nil, err // not a typed nil inside the interface
	}
	return f, nil
}

// SyncFS flushes the folder's whole file system where that can be done at
// once (see batchSync).
func (r RootFolder) SyncFS() error { return syncFS(r.Root) }

// SyncDir fsyncs the directory dir.
func (r RootFolder) SyncDir(dir string) error { return durable.SyncDirIn(r.Root, dir) }

// hashFile hashes f from its start: on every core for an *os.File, as one
// stream otherwise.
func hashFile(ctx context.Context, f File) (content.Hash, int64, error) {
	if osf, ok := f.(*os.File); ok {
		return content.Open(ctx, osf)
	}
	return content.Reader(ctx, f)
}

// fileMatches reports whether f, from its start, holds the content h of
// size bytes, under its name of either scheme (see content.Checker).
func fileMatches(ctx context.Context, f File, h content.Hash, size int64) bool {
	c := content.NewChecker(size)
	n, err := io.Copy(c, &ctxReader{ctx, f})
	return err == nil && n == size && c.Matches(h)
}

// ctxReader reads r until ctx ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
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

// RenameCase renames oldname to newname, two spellings of one name on a
// folder that does not tell them apart. os.Root's Rename refuses that for
// a directory: the target is found, and on exfat-fuse under another inode
// number. rename(2) itself takes it. The parents are the recorded
// directories the op's paths were checked against (no symlink among
// them).
func (r RootFolder) RenameCase(oldname, newname string) error {
	if err := r.Rename(oldname, newname); err == nil {
		return nil
	}
	dir := r.Root.Name()
	return os.NewSyscallError("rename", syscall.Rename(filepath.Join(dir, filepath.FromSlash(oldname)), filepath.Join(dir, filepath.FromSlash(newname))))
}
