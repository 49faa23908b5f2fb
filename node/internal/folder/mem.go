package folder

import (
	"errors"
	"fmt"
	"hash"
	"hash/fnv"
	"io/fs"
	"os"
	"path"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ErrCrashed is what every operation on a Mem returns between CrashAt
// taking effect and Restart.
var ErrCrashed = errors.New("folder: crashed")

// Mem is an in-memory Folder. It keeps POSIX durability: a file's data
// and metadata survive a crash only once the file is synced (File.Sync,
// or SyncFS), and a directory's entries (creates, renames, removals in
// it) only once the directory is synced (SyncDir, or SyncFS). Crash and
// Restart drop whatever was not.
//
// It fails on demand: FailAt makes one later change fail, CrashAt makes a
// later change the last one before a crash. Changes are counted in the
// order they are made (creating, writing, renaming, removing, making a
// directory, changing mode or times, syncing). Each change advances its
// clock by a millisecond, so two writes never share an mtime.
//
// It is safe for concurrent use.
type Mem struct {
	mu   sync.Mutex
	root *inode
	next uint64 // last inode number given
	now  time.Time

	changes int   // changes made so far
	failAt  int   // the change that fails, 0 for none
	failErr error // what it fails with
	crashAt int   // the change from which everything fails, 0 for none
	// refuse, when set, says why a new name cannot be made (see
	// RefuseNames).
	refuse func(base string) error
	// fs is the file system the folder behaves as (see BehaveAs).
	fs Behaviour
	// journal digests every change made, in order (see Journal).
	journal hash.Hash64
}

// inode is a file or directory; live is what is seen now, synced what a
// crash leaves.
type inode struct {
	ino          uint64
	dir          bool
	live, synced inodeState
}

type inodeState struct {
	data    []byte
	mode    fs.FileMode
	mtime   time.Time
	entries map[string]*inode // a directory's
}

func (s inodeState) clone() inodeState {
	c := s
	c.data = append([]byte(nil), s.data...)
	if s.entries != nil {
		c.entries = make(map[string]*inode, len(s.entries))
		for k, v := range s.entries {
			c.entries[k] = v
		}
	}
	return c
}

// NewMem returns an empty, synced folder whose clock starts at start.
func NewMem(start time.Time) *Mem {
	m := &Mem{now: start, journal: fnv.New64a()}
	m.root = m.newInode(true, 0o755)
	return m
}

func (m *Mem) newInode(dir bool, mode fs.FileMode) *inode {
	m.next++
	n := &inode{ino: m.next, dir: dir}
	if m.fs.NoModes {
		mode = 0o777
	}
	n.live = inodeState{mode: mode.Perm(), mtime: m.stamp()}
	if dir {
		n.live.entries = map[string]*inode{}
	}
	// Metadata is written with the inode: a crash that keeps its name
	// keeps an empty file or directory of this mode.
	n.synced = n.live.clone()
	return n
}

// FailAt makes the n-th change from now (1 is the next) fail with err,
// once.
func (m *Mem) FailAt(n int, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.failAt, m.failErr = m.changes+n, err
}

// CrashAt makes the n-th change from now (1 is the next) and everything
// after it fail with ErrCrashed, as if the machine stopped before it:
// until Restart.
func (m *Mem) CrashAt(n int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.crashAt = m.changes + n
}

// ClearFaults cancels what FailAt and CrashAt set and has not happened.
func (m *Mem) ClearFaults() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.crashed() {
		m.failAt, m.crashAt = 0, 0
	}
}

// Crashed reports whether a crash set by CrashAt has happened.
func (m *Mem) Crashed() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.crashed()
}

func (m *Mem) crashed() bool { return m.crashAt > 0 && m.changes >= m.crashAt }

// Restart drops everything that was not durable, as a crash does, and
// makes the folder usable again. It may be called with no crash set: the
// machine then stops now.
func (m *Mem) Restart() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.crashAt, m.failAt = 0, 0
	m.eachInode(func(n *inode) { n.live = n.synced.clone() })
}

// eachInode calls f once on every inode reachable from the root, each
// before the entries it then holds are visited (f may replace them).
func (m *Mem) eachInode(f func(n *inode)) {
	seen := map[*inode]bool{}
	var visit func(n *inode)
	visit = func(n *inode) {
		if seen[n] {
			return
		}
		seen[n] = true
		f(n)
		for _, c := range n.live.entries {
			visit(c)
		}
	}
	visit(m.root)
}

// CatchUp moves the folder's clock, which stamps changes, on to t if it
// is behind: each change otherwise moves it on by a millisecond only.
func (m *Mem) CatchUp(t time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if t.After(m.now) {
		m.now = t
	}
}

// change counts one change and says whether it may be made.
func (m *Mem) change(op, name string) error {
	if m.crashed() {
		return &fs.PathError{Op: op, Path: name, Err: ErrCrashed}
	}
	m.changes++
	m.now = m.now.Add(time.Millisecond)
	fmt.Fprintf(m.journal, "%s %q\n", op, name)
	if m.crashed() {
		return &fs.PathError{Op: op, Path: name, Err: ErrCrashed}
	}
	if m.changes == m.failAt {
		return &fs.PathError{Op: op, Path: name, Err: m.failErr}
	}
	return nil
}

// Journal returns how many changes were made and a digest of them (each
// one's kind and path, in order): two runs of a deterministic program
// over the folder give the same pair.
func (m *Mem) Journal() (changes int, digest uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.changes, m.journal.Sum64()
}

// RefuseNames makes every later attempt to create a name (a file, a
// directory, a rename's target) fail with what refuse returns for the
// name's last element, when it is not nil: a file system that cannot hold
// some names.
func (m *Mem) RefuseNames(refuse func(base string) error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.refuse = refuse
}

func (m *Mem) refused(op, name, base string) error {
	if m.refuse == nil {
		return nil
	}
	if err := m.refuse(base); err != nil {
		return &fs.PathError{Op: op, Path: name, Err: err}
	}
	return nil
}

// look is called for reads: they fail only after a crash.
func (m *Mem) look(op, name string) error {
	if m.crashed() {
		return &fs.PathError{Op: op, Path: name, Err: ErrCrashed}
	}
	return nil
}

func clean(name string) string {
	name = path.Clean("/" + name)
	return strings.TrimPrefix(name, "/")
}

// Behaviour is how a Mem's names and metadata behave, after a real file
// system's: the zero value is a POSIX one (ext4).
type Behaviour struct {
	// Key, when set, is the form in which names are compared: names with
	// one Key are one name, held under the name it was created with
	// (exFAT, NTFS and APFS compare without case, APFS without Unicode
	// form).
	Key func(name string) string
	// Store, when set, is the form in which a new name is kept and
	// listed (HFS+ keeps names decomposed, NFD).
	Store func(name string) string
	// NoModes: every file and directory shows mode 0777, whatever is set
	// (exFAT, FAT).
	NoModes bool
	// MTimeStep is the step modification times are kept in (exfat-fuse
	// 1 s, FAT 2 s); 0 keeps them exact.
	MTimeStep time.Duration
	// NoLinks: hard links are refused with EPERM (exFAT, FAT).
	NoLinks bool
}

// stamp is the modification time a change made now leaves.
func (m *Mem) stamp() time.Time {
	if m.fs.MTimeStep > 0 {
		return m.now.Truncate(m.fs.MTimeStep)
	}
	return m.now
}

// BehaveAs makes the folder behave as b says from now on. It is meant
// for an empty folder: names made before keep the form they had.
func (m *Mem) BehaveAs(b Behaviour) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.fs = b
}

// entry finds the entry of dir that name names, and the name it is held
// under.
func (m *Mem) entry(dir *inode, name string) (string, *inode) {
	if c, ok := dir.live.entries[name]; ok || m.fs.Key == nil {
		return name, c
	}
	k := m.fs.Key(name)
	for held, c := range dir.live.entries {
		if m.fs.Key(held) == k {
			return held, c
		}
	}
	return name, nil
}

// stored is the name a new entry called name is kept under.
func (m *Mem) stored(name string) string {
	if m.fs.Store != nil {
		return m.fs.Store(name)
	}
	return name
}

// resolve finds name's parent directory and name's inode (nil if none).
// base is the name the entry is held under when there is one.
func (m *Mem) resolve(op, name string) (parent *inode, base string, n *inode, err error) {
	name = clean(name)
	if name == "" {
		return nil, "", m.root, nil
	}
	parts := strings.Split(name, "/")
	dir := m.root
	for _, p := range parts[:len(parts)-1] {
		_, c := m.entry(dir, p)
		ok := c != nil
		if !ok {
			return nil, "", nil, &fs.PathError{Op: op, Path: name, Err: syscall.ENOENT}
		}
		if !c.dir {
			return nil, "", nil, &fs.PathError{Op: op, Path: name, Err: syscall.ENOTDIR}
		}
		dir = c
	}
	base, n = m.entry(dir, parts[len(parts)-1])
	return dir, base, n, nil
}

func (m *Mem) find(op, name string) (*inode, error) {
	if err := m.look(op, name); err != nil {
		return nil, err
	}
	_, _, n, err := m.resolve(op, name)
	if err == nil && n == nil {
		err = &fs.PathError{Op: op, Path: name, Err: syscall.ENOENT}
	}
	return n, err
}

// Open opens name for reading.
func (m *Mem) Open(name string) (File, error) { return m.OpenFile(name, os.O_RDONLY, 0) }

// OpenFile opens name as os.OpenFile does (O_CREATE, O_EXCL, O_TRUNC and
// the access modes are honoured).
func (m *Mem) OpenFile(name string, flag int, perm fs.FileMode) (File, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.look("open", name); err != nil {
		return nil, err
	}
	parent, base, n, err := m.resolve("open", name)
	if err != nil {
		return nil, err
	}
	writable := flag&(os.O_WRONLY|os.O_RDWR) != 0
	switch {
	case n == nil && flag&os.O_CREATE == 0:
		return nil, &fs.PathError{Op: "open", Path: name, Err: syscall.ENOENT}
	case n != nil && flag&os.O_CREATE != 0 && flag&os.O_EXCL != 0:
		return nil, &fs.PathError{Op: "open", Path: name, Err: syscall.EEXIST}
	case n != nil && n.dir && writable:
		return nil, &fs.PathError{Op: "open", Path: name, Err: syscall.EISDIR}
	case n == nil:
		if err := m.refused("open", name, base); err != nil {
			return nil, err
		}
		if err := m.change("open", name); err != nil {
			return nil, err
		}
		n = m.newInode(false, perm)
		parent.live.entries[m.stored(base)] = n
		parent.live.mtime = m.stamp()
	case flag&os.O_TRUNC != 0 && writable:
		if err := m.change("truncate", name); err != nil {
			return nil, err
		}
		n.live.data, n.live.mtime = nil, m.stamp()
	}
	return &memFile{m: m, n: n, name: clean(name), writable: writable}, nil
}

// Stat describes name.
func (m *Mem) Stat(name string) (fs.FileInfo, error) { return m.Lstat(name) }

// Lstat describes name; a Mem holds no symlinks.
func (m *Mem) Lstat(name string) (fs.FileInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, err := m.find("lstat", name)
	if err != nil {
		return nil, err
	}
	return n.info(path.Base("/" + clean(name))), nil
}

// Rename moves oldname to newname, replacing a file or an empty directory
// there as rename(2) does.
func (m *Mem) Rename(oldname, newname string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.look("rename", oldname); err != nil {
		return err
	}
	op, opath, n, err := m.resolve("rename", oldname)
	if err == nil && n == nil {
		err = &fs.PathError{Op: "rename", Path: oldname, Err: syscall.ENOENT}
	}
	if err != nil {
		return err
	}
	np, npath, target, err := m.resolve("rename", newname)
	if err != nil {
		return err
	}
	if clean(newname) == clean(oldname) || target == n && path.Base("/"+clean(newname)) == opath {
		return nil
	}
	if target == n {
		// A new case or form of the same name: the entry is renamed.
		target, npath = nil, path.Base("/"+clean(newname))
	} else if target == nil {
		npath = m.stored(npath)
	}
	if n.dir && strings.HasPrefix(clean(newname)+"/", clean(oldname)+"/") {
		return &fs.PathError{Op: "rename", Path: newname, Err: syscall.EINVAL}
	}
	if target != nil {
		switch {
		case target.dir && !n.dir:
			return &fs.PathError{Op: "rename", Path: newname, Err: syscall.EISDIR}
		case !target.dir && n.dir:
			return &fs.PathError{Op: "rename", Path: newname, Err: syscall.ENOTDIR}
		case target.dir && len(target.live.entries) > 0:
			return &fs.PathError{Op: "rename", Path: newname, Err: syscall.ENOTEMPTY}
		}
	}
	if err := m.refused("rename", newname, npath); err != nil {
		return err
	}
	if err := m.change("rename", oldname); err != nil {
		return err
	}
	delete(op.live.entries, opath)
	np.live.entries[npath] = n
	op.live.mtime, np.live.mtime = m.stamp(), m.stamp()
	return nil
}

// Link makes newname a second name of the file oldname, as link(2) does:
// the two share content and metadata until one is replaced.
func (m *Mem) Link(oldname, newname string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, err := m.find("link", oldname)
	if err != nil {
		return err
	}
	if n.dir {
		return &fs.PathError{Op: "link", Path: oldname, Err: syscall.EPERM}
	}
	if m.fs.NoLinks {
		return &fs.PathError{Op: "link", Path: newname, Err: syscall.EPERM}
	}
	np, npath, target, err := m.resolve("link", newname)
	if err != nil {
		return err
	}
	if target != nil {
		return &fs.PathError{Op: "link", Path: newname, Err: syscall.EEXIST}
	}
	npath = m.stored(npath)
	if err := m.refused("link", newname, npath); err != nil {
		return err
	}
	if err := m.change("link", newname); err != nil {
		return err
	}
	np.live.entries[npath] = n
	np.live.mtime = m.stamp()
	return nil
}

// Remove removes a file or an empty directory.
func (m *Mem) Remove(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.look("remove", name); err != nil {
		return err
	}
	parent, base, n, err := m.resolve("remove", name)
	if err == nil && (n == nil || parent == nil) {
		err = &fs.PathError{Op: "remove", Path: name, Err: syscall.ENOENT}
	}
	if err != nil {
		return err
	}
	if n.dir && len(n.live.entries) > 0 {
		return &fs.PathError{Op: "remove", Path: name, Err: syscall.ENOTEMPTY}
	}
	if err := m.change("remove", name); err != nil {
		return err
	}
	delete(parent.live.entries, base)
	parent.live.mtime = m.stamp()
	return nil
}

// MkdirAll makes name and the directories above it that are missing.
func (m *Mem) MkdirAll(name string, perm fs.FileMode) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.look("mkdir", name); err != nil {
		return err
	}
	dir := m.root
	for _, p := range strings.Split(clean(name), "/") {
		if p == "" {
			continue
		}
		_, c := m.entry(dir, p)
		if c == nil {
			if err := m.refused("mkdir", name, p); err != nil {
				return err
			}
			if err := m.change("mkdir", name); err != nil {
				return err
			}
			c = m.newInode(true, perm)
			dir.live.entries[m.stored(p)] = c
			dir.live.mtime = m.stamp()
		} else if !c.dir {
			return &fs.PathError{Op: "mkdir", Path: name, Err: syscall.ENOTDIR}
		}
		dir = c
	}
	return nil
}

// WriteFile writes data to name, creating or truncating it.
func (m *Mem) WriteFile(name string, data []byte, perm fs.FileMode) error {
	f, err := m.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Chmod sets name's permission bits.
func (m *Mem) Chmod(name string, mode fs.FileMode) error {
	return m.setMeta("chmod", name, func(n *inode) {
		if !m.fs.NoModes {
			n.live.mode = mode.Perm()
		}
	})
}

// Chtimes sets name's modification time.
func (m *Mem) Chtimes(name string, _, mtime time.Time) error {
	return m.setMeta("chtimes", name, func(n *inode) {
		if m.fs.MTimeStep > 0 {
			mtime = mtime.Truncate(m.fs.MTimeStep)
		}
		n.live.mtime = mtime
	})
}

func (m *Mem) setMeta(op, name string, set func(*inode)) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, err := m.find(op, name)
	if err != nil {
		return err
	}
	if err := m.change(op, name); err != nil {
		return err
	}
	set(n)
	return nil
}

// SyncFS makes everything durable, as syncfs(2) does.
func (m *Mem) SyncFS() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.change("syncfs", "."); err != nil {
		return err
	}
	m.eachInode(func(n *inode) { n.synced = n.live.clone() })
	return nil
}

// SyncDir makes the entries of dir durable.
func (m *Mem) SyncDir(dir string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, err := m.find("sync", dir)
	if err != nil {
		return err
	}
	if err := m.change("sync", dir); err != nil {
		return err
	}
	n.synced = n.live.clone()
	return nil
}

// Close does nothing: a Mem stays usable, so a node can be opened over it
// again.
func (m *Mem) Close() error { return nil }
