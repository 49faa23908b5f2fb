package folder

import (
	"io"
	"io/fs"
	"path"
	"sort"
	"syscall"
	"time"
)

// Open files and file information of a Mem.

func (n *inode) info(name string) fs.FileInfo {
	mode := n.live.mode
	if n.dir {
		mode |= fs.ModeDir
	}
	return memInfo{name: name, size: int64(len(n.live.data)), mode: mode, mtime: n.live.mtime, ino: n.ino}
}

type memInfo struct {
	name  string
	size  int64
	mode  fs.FileMode
	mtime time.Time
	ino   uint64
}

func (i memInfo) Name() string       { return i.name }
func (i memInfo) Size() int64        { return i.size }
func (i memInfo) Mode() fs.FileMode  { return i.mode }
func (i memInfo) ModTime() time.Time { return i.mtime }
func (i memInfo) IsDir() bool        { return i.mode.IsDir() }
func (i memInfo) Sys() any           { return sysOf(i.ino) }

// memFile is an open file or directory of a Mem.
type memFile struct {
	m        *Mem
	n        *inode
	name     string
	writable bool
	pos      int64
	dirPos   int
}

func (f *memFile) Read(p []byte) (int, error) {
	k, err := f.ReadAt(p, f.pos)
	f.pos += int64(k)
	return k, err
}

func (f *memFile) ReadAt(p []byte, off int64) (int, error) {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	if err := f.m.look("read", f.name); err != nil {
		return 0, err
	}
	if f.n.dir {
		return 0, &fs.PathError{Op: "read", Path: f.name, Err: syscall.EISDIR}
	}
	if off >= int64(len(f.n.live.data)) {
		return 0, io.EOF
	}
	k := copy(p, f.n.live.data[off:])
	if k < len(p) {
		return k, io.EOF
	}
	return k, nil
}

func (f *memFile) Write(p []byte) (int, error) {
	k, err := f.WriteAt(p, f.pos)
	f.pos += int64(k)
	return k, err
}

func (f *memFile) WriteAt(p []byte, off int64) (int, error) {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	if !f.writable {
		return 0, &fs.PathError{Op: "write", Path: f.name, Err: syscall.EBADF}
	}
	if err := f.m.change("write", f.name); err != nil {
		return 0, err
	}
	d := f.n.live.data
	if end := off + int64(len(p)); end > int64(len(d)) {
		d = append(d, make([]byte, end-int64(len(d)))...)
	}
	copy(d[off:], p)
	f.n.live.data, f.n.live.mtime = d, f.m.stamp()
	return len(p), nil
}

// Truncate sets the file's size, cutting it or extending it with zeros.
func (f *memFile) Truncate(size int64) error {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	if !f.writable {
		return &fs.PathError{Op: "truncate", Path: f.name, Err: syscall.EBADF}
	}
	if err := f.m.change("truncate", f.name); err != nil {
		return err
	}
	d := f.n.live.data
	if size > int64(len(d)) {
		d = append(d, make([]byte, size-int64(len(d)))...)
	}
	f.n.live.data, f.n.live.mtime = d[:size], f.m.stamp()
	return nil
}

func (f *memFile) Seek(offset int64, whence int) (int64, error) {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	switch whence {
	case io.SeekCurrent:
		offset += f.pos
	case io.SeekEnd:
		offset += int64(len(f.n.live.data))
	}
	if offset < 0 {
		return 0, &fs.PathError{Op: "seek", Path: f.name, Err: syscall.EINVAL}
	}
	f.pos = offset
	return offset, nil
}

func (f *memFile) Close() error { return nil }

func (f *memFile) Stat() (fs.FileInfo, error) {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	if err := f.m.look("stat", f.name); err != nil {
		return nil, err
	}
	return f.n.info(path.Base("/" + f.name)), nil
}

// Sync makes the file's data and metadata durable (not its name: that is
// its directory's); on a directory it makes its entries durable, as
// fsync(2) does.
func (f *memFile) Sync() error {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	if err := f.m.change("sync", f.name); err != nil {
		return err
	}
	f.n.synced = f.n.live.clone()
	return nil
}

func (f *memFile) ReadDir(count int) ([]fs.DirEntry, error) {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	if err := f.m.look("readdir", f.name); err != nil {
		return nil, err
	}
	if !f.n.dir {
		return nil, &fs.PathError{Op: "readdir", Path: f.name, Err: syscall.ENOTDIR}
	}
	names := make([]string, 0, len(f.n.live.entries))
	for name := range f.n.live.entries {
		names = append(names, name)
	}
	sort.Strings(names)
	rest := names[min(f.dirPos, len(names)):]
	if count > 0 && len(rest) > count {
		rest = rest[:count]
	}
	f.dirPos += len(rest)
	out := make([]fs.DirEntry, len(rest))
	for i, name := range rest {
		out[i] = fs.FileInfoToDirEntry(f.n.live.entries[name].info(name))
	}
	if count > 0 && len(out) == 0 {
		return nil, io.EOF
	}
	return out, nil
}

func (f *memFile) Readdirnames(count int) ([]string, error) {
	entries, err := f.ReadDir(count)
	names := make([]string, len(entries))
	for i, e := range entries {
		names[i] = e.Name()
	}
	return names, err
}
