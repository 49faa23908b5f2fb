package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sync"
	"syscall"
	"time"

	"github.com/drive-node/drive-node/content"
	"github.com/drive-node/drive-node/quicnet"
)

// contentFetcher is a peer that can send content by hash (a
// *quicnet.Peer); the engine takes it as an interface so the simulation
// and unit tests can supply content without a network.
type contentFetcher interface {
	Fetch(ctx context.Context, h content.Hash, offset int64, dst io.Writer) (int64, error)
}

// ErrDiskFull is wrapped by errors caused by the folder's disk being full.
var ErrDiskFull = errors.New("disk full")

// ErrHashMismatch is returned when fetched bytes do not hash to what was
// asked for.
var ErrHashMismatch = errors.New("content does not match its hash")

// stagingDir is the directory, in the folder root, where received content
// is assembled: inside the folder, so the final rename stays on one file
// system, and apart from the synced files, under a name the watcher
// ignores. It neither lists nor watches an ignored directory, so writing a
// received file there makes no event: in the folder root each one made
// five or six, enough to overflow the kernel's event queue in a large
// sync and set off rescans for the events it lost.
const stagingDir = TempPrefix + "staged"

// stagedName is where content with hash h is assembled, under a name a
// restart can resume. It starts with TempPrefix too, so every path in the
// staging directory is ignored.
func stagedName(h content.Hash) string { return stagingDir + "/" + TempPrefix + h.String()[:32] }

// createStaged opens the staged file name with flag (which includes
// os.O_CREATE), creating it with perm, and makes the staging directory
// when it is missing: it is made on first use, not at start-up, so a
// folder nobody syncs into is left as it is. The directory is 0700: what
// is staged in it is nobody else's to read, whatever its own mode.
// Anything else under the directory's name (a file, a symlink) is
// removed first: the name is reserved, never synced, and a symlink would
// send what is staged elsewhere, or nowhere.
func (n *Node) createStaged(name string, flag int, perm fs.FileMode) (File, error) {
	f, err := n.folderRoot().OpenFile(name, flag, perm)
	if err == nil {
		return f, nil
	}
	if st, lerr := n.folderRoot().Lstat(stagingDir); lerr == nil && !st.IsDir() {
		if rerr := n.folderRoot().Remove(stagingDir); rerr != nil {
			return nil, fmt.Errorf("%w; %s is no directory and cannot be removed: %w", err, stagingDir, rerr)
		}
	} else if lerr == nil || !errors.Is(lerr, fs.ErrNotExist) {
		return nil, err
	}
	if err := n.folderRoot().MkdirAll(stagingDir, 0o700); err != nil {
		return nil, err
	}
	return n.folderRoot().OpenFile(name, flag, perm)
}

// stage makes the content h (of the given size) available as a complete,
// fsynced, verified temp file in the staging directory and returns its
// name. A
// content of more than one chunk is assembled from its chunks, those
// found on this device copied, only the others fetched (see assemble);
// other contents are fetched whole. A partial file left by an earlier
// attempt is resumed.
func (n *Node) stage(ctx context.Context, h content.Hash, size int64, peers []contentFetcher) (string, error) {
	peers = n.relays.order(h, peers) // a peer waiting here for h lacks it
	if size > content.MinChunk {
		name, err := n.assemble(ctx, h, size, peers)
		if !errors.Is(err, errNoList) {
			return name, err
		}
	}
	name := stagedName(h)
	if st, err := n.folderRoot().Stat(name); err == nil && st.Size() == size {
		done := n.busyWith()
		complete, err := n.stagedComplete(ctx, name, h, size)
		done()
		if err != nil {
			return "", err
		}
		if complete {
			return name, nil
		}
		n.folderRoot().Remove(name)
	}
	if size == 0 && h == content.EmptyHash {
		f, err := n.createStaged(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
		if err == nil {
			err = f.Close()
		}
		if err != nil {
			return "", fmt.Errorf("stage empty file: %w", err)
		}
		return name, nil
	}
	if len(peers) == 0 {
		return "", fmt.Errorf("content %s: %w: no connected peer to fetch it from", h.Short(), ErrContentUnavailable)
	}
	var errs []error
	for attempt := 0; attempt < 2; attempt++ { // a bad copy is fetched once more
		for _, p := range peers {
			start := time.Now()
			finished := n.transfer(p, h, size)
			err := n.fetchInto(ctx, name, h, size, p)
			finished(err)
			if err == nil {
				n.log.Debug("content fetched", "hash", h.Short(), "size", size, "took", time.Since(start))
				return name, nil
			}
			if ctx.Err() != nil {
				return "", ctx.Err()
			}
			if errors.Is(err, syscall.ENOSPC) {
				// Give the space back; the op stays pending and is
				// retried, from scratch, once there is room.
				n.folderRoot().Remove(name)
				return "", fmt.Errorf("content %s: %w: %w", h.Short(), ErrDiskFull, err)
			}
			errs = append(errs, err)
			n.log.Warn("fetching content failed", "hash", h.Short(), "err", err)
		}
	}
	why := ErrContentUnavailable
	if allNotFound(errs) {
		why = ErrContentNowhere
	}
	return "", fmt.Errorf("content %s: %w: %w", h.Short(), why, errors.Join(errs...))
}

// allNotFound reports whether every error in errs is a peer's answer that
// it does not have the content.
func allNotFound(errs []error) bool {
	for _, err := range errs {
		if !errors.Is(err, quicnet.ErrNotFound) {
			return false
		}
	}
	return len(errs) > 0
}

// ErrSizeMismatch is returned when a peer sends content of another size
// than the op that names it says.
var ErrSizeMismatch = errors.New("content is not the size its op says")

// fetchInto appends to the temp file what it lacks of h, whose op says it
// is size bytes, then verifies the whole file against h. On a mismatch the
// file is removed. A peer that sends more than size bytes is cut off at
// the first byte over: what it says of the size is never trusted.
func (n *Node) fetchInto(ctx context.Context, name string, h content.Hash, size int64, p contentFetcher) error {
	f, err := n.createStaged(name, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("open %s: %w", name, err)
	}
	defer f.Close()
	hasher := content.NewChecker(size)
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("stat %s: %w", name, err)
	}
	var offset int64
	if st.Size() > 0 {
		// What an earlier attempt left is kept and hashed, not fetched again.
		done := n.busyWith()
		offset, err = io.Copy(hasher, f)
		done()
		if err != nil {
			return fmt.Errorf("read %s: %w", name, err)
		}
		n.log.Info("resuming a transfer", "hash", h.Short(), "offset", offset)
	}
	wb := newWriteBehind(f, offset)
	wb.flush = func() error { return n.flushData(f) }
	defer wb.stop() // before f.Close: no flush may run on a closed file
	// discard gives the temp file up: its content is wrong, or not known
	// to be on disk.
	discard := func() {
		wb.stop()
		f.Close()
		n.folderRoot().Remove(name)
	}
	// A flush that failed is reported once per open file, and a later
	// attempt would hash what is in memory and flush a new descriptor
	// without error: a file that met one is never kept for resuming.
	flushFailed := func(err error) error {
		if ferr := wb.stop(); ferr != nil {
			discard()
			return errors.Join(err, fmt.Errorf("flush %s: %w", name, ferr))
		}
		return err
	}
	if offset > size {
		discard() // not a prefix of this content
		return fmt.Errorf("%s: %d bytes left by an earlier attempt: %w", h.Short(), offset, ErrSizeMismatch)
	}
	dst := &sizeBound{w: io.MultiWriter(wb, hasher, receivedFrom{n, p}), left: size - offset}
	announced, err := p.Fetch(ctx, h, offset, dst)
	if err == nil && announced != size {
		err = fmt.Errorf("%s: the peer has %d bytes, the op says %d: %w", h.Short(), announced, size, ErrSizeMismatch)
	}
	if err != nil {
		if errors.Is(err, ErrSizeMismatch) {
			discard()
			return err
		}
		return flushFailed(err)
	}
	if !hasher.Matches(h) {
		discard()
		return fmt.Errorf("%s: %w", h.Short(), ErrHashMismatch)
	}
	if syncedAlone(size) {
		// A large file is flushed on its own (its writeback is mostly done
		// by now); flushing the whole file system for it would also write
		// out whatever else is pending there.
		if err := n.syncReceived(wb, name, h, size); err != nil {
			discard()
			return err
		}
	}
	return flushFailed(nil)
}

// sizeBound passes at most left bytes on to w and fails the write that
// would pass more.
type sizeBound struct {
	w    io.Writer
	left int64
}

func (b *sizeBound) Write(p []byte) (int, error) {
	if int64(len(p)) > b.left {
		return 0, fmt.Errorf("the peer sent more: %w", ErrSizeMismatch)
	}
	n, err := b.w.Write(p)
	b.left -= int64(n)
	return n, err
}

// syncReceived fsyncs the received file f (staged as name), logging how
// long the flush took.
func (n *Node) syncReceived(f interface{ Sync() error }, name string, h content.Hash, size int64) error {
	start := time.Now()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", name, err)
	}
	n.log.Debug("received file flushed", "hash", h.Short(), "size", size, "took", time.Since(start))
	return nil
}

// stagedComplete reports whether the temp file name, left by an earlier
// attempt, holds the content h. A large one is then fsynced, as a fetch
// of it would have been (the attempt may have stopped before its flush);
// small ones wait for syncFS. The file is opened for writing because
// Windows flushes only a handle that may write.
func (n *Node) stagedComplete(ctx context.Context, name string, h content.Hash, size int64) (bool, error) {
	f, err := n.folderRoot().OpenFile(name, os.O_RDWR, 0)
	if err != nil {
		return false, nil
	}
	defer f.Close()
	if !fileMatches(ctx, f, h, size) {
		return false, nil
	}
	if syncedAlone(size) {
		if err := f.Sync(); err != nil {
			return false, fmt.Errorf("sync %s: %w", name, err)
		}
	}
	return true, nil
}

func parentDir(p string) string {
	d := path.Dir(p)
	if d == "." {
		return ""
	}
	return d
}

// batchFetcher is a peer that can send many contents on one stream (a
// *quicnet.Peer).
type batchFetcher interface {
	FetchBatch(ctx context.Context, hs []content.Hash, each func(i int, size int64, r io.Reader) error) error
}

// want is a content a batch needs. mode, when not 0, is the mode of the
// first op that places it: a small content is staged with it, so that
// placing it needs no chmod (see place).
type want struct {
	h    content.Hash
	size int64
	mode uint32
	// mtime, if not 0, is what the temp file's mtime is set to once
	// written: the op that wants it puts it in place with that mtime.
	mtime int64
}

// wantSet holds contents a pass found it needed and had not staged, for
// the next pass to stage (see contentFromElsewhere).
type wantSet struct {
	mu    sync.Mutex
	wants []want
}

func (s *wantSet) add(w want) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.wants = append(s.wants, w)
}

// take returns what was added and empties the set.
func (s *wantSet) take() []want {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.wants
	s.wants = nil
	return out
}

// Contents up to smallContent bytes are fetched in groups of up to
// batchFiles (and batchBytes) per stream: for small files one stream and
// one temp-file round per file was the cost, not the bytes.
const (
	smallContent = 64 << 10
	batchFiles   = 64
	batchBytes   = 1 << 20
	// fetchWorkers bounds the fetches in flight (the transport bounds the
	// streams per peer as well).
	fetchWorkers = 32
)

// syncedAlone reports whether received content of size bytes is fsynced
// on its own. Smaller contents, where the file system can be flushed at
// once, wait for one syncFS before any is renamed into place.
func syncedAlone(size int64) bool { return !batchSync || size > smallContent }

// fetchAll stages every wanted content: small ones in batches, spread
// over the connected peers, the rest (and whatever a batch did not
// deliver) one by one from any peer. Staged names go into staged.temp,
// failures into staged.errs. staged.flush tells that some wait for syncFS
// (see syncedAlone).
func (n *Node) fetchAll(ctx context.Context, wants []want, staged *stagedSet) {
	if len(wants) == 0 {
		return
	}
	hs := make([]content.Hash, len(wants))
	for i, w := range wants {
		hs[i] = w.h
	}
	defer n.wantContents(hs)() // a peer asking for one of them waits for it
	defer n.relays.fetched(hs)
	peers := n.fetchers()
	var mu sync.Mutex
	got := func(w want, name string, info fs.FileInfo, err error) {
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			staged.errs = append(staged.errs, err)
			if staged.failed == nil {
				staged.failed = map[content.Hash]error{}
			}
			staged.failed[w.h] = err
			return
		}
		staged.temp[w.h] = name
		if info != nil {
			if staged.tempInfo == nil {
				staged.tempInfo = map[content.Hash]fs.FileInfo{}
			}
			staged.tempInfo[w.h] = info
		}
		if !syncedAlone(w.size) {
			staged.flush = true // see applyOps
		}
	}
	one := func(w want) {
		name, err := n.stage(ctx, w.h, w.size, peers)
		got(w, name, nil, err)
	}
	var batches [][]want
	var single []want
	for _, w := range wants {
		if w.size == 0 || w.size > smallContent || len(peers) == 0 {
			single = append(single, w)
			continue
		}
		if k := len(batches) - 1; k >= 0 && len(batches[k]) < batchFiles && batchSize(batches[k])+w.size <= batchBytes {
			batches[k] = append(batches[k], w)
		} else {
			batches = append(batches, []want{w})
		}
	}
	// Tasks start in the order they are listed, a worker taking the next
	// when it is free: with one worker the order is fixed.
	var tasks []func()
	for k, group := range batches {
		tasks = append(tasks, func() {
			for _, w := range n.fetchBatch(ctx, group, peers[k%len(peers)], got) {
				one(w)
			}
		})
	}
	for _, w := range single {
		tasks = append(tasks, func() { one(w) })
	}
	queue := make(chan func())
	var wg sync.WaitGroup
	for range min(n.fetchWorkers, len(tasks)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for task := range queue {
				task()
			}
		}()
	}
	for _, task := range tasks {
		queue <- task
	}
	close(queue)
	wg.Wait()
}

func batchSize(ws []want) (total int64) {
	for _, w := range ws {
		total += w.size
	}
	return total
}

// fetchBatch stages the contents of group from p on one stream, reporting
// each staged one to got, and returns those it did not stage: p lacks
// them, a copy was bad, or the batch ended early. They are then fetched
// one by one, which retries, tries every peer and reports a full disk.
func (n *Node) fetchBatch(ctx context.Context, group []want, p contentFetcher, got func(want, string, fs.FileInfo, error)) (rest []want) {
	bf, ok := p.(batchFetcher)
	if !ok {
		return group
	}
	hs := make([]content.Hash, len(group))
	for i, w := range group {
		hs[i] = w.h
	}
	staged := make([]bool, len(group))
	err := bf.FetchBatch(ctx, hs, func(i int, size int64, r io.Reader) error {
		if size < 0 || size != group[i].size {
			return nil
		}
		name := stagedName(hs[i])
		finished := n.transfer(p, hs[i], size)
		info, err := n.writeStaged(name, hs[i], size, group[i].mode, group[i].mtime, r)
		finished(err)
		if err != nil {
			if errors.Is(err, ErrHashMismatch) {
				n.log.Warn("fetching content failed", "hash", hs[i].Short(), "err", fmt.Errorf("%s: %w", hs[i].Short(), err))
				return nil
			}
			return err
		}
		staged[i] = true
		n.received(p, size)
		got(group[i], name, info, nil)
		return nil
	})
	if err != nil && ctx.Err() == nil {
		n.log.Debug("a content batch ended early; the rest is fetched one by one", "files", len(group), "err", err)
	}
	for i, w := range group {
		if !staged[i] {
			rest = append(rest, w)
		}
	}
	return rest
}

// writeStaged writes the size bytes r holds to the temp file name,
// created with mode (0600 for 0) and given mtime (unless 0), and checks
// them against h; a bad or failed copy leaves no file. It returns what
// the file looks like once written (nil if that could not be had): place
// then neither sets the mtime nor looks at the file again, on the
// apply's one thread.
func (n *Node) writeStaged(name string, h content.Hash, size int64, mode uint32, mtime int64, r io.Reader) (info fs.FileInfo, err error) {
	b := make([]byte, size)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, err
	}
	if content.Sum(b) != h {
		return nil, ErrHashMismatch
	}
	perm := fs.FileMode(0o600)
	if mode != 0 {
		perm = fileMode(mode)
	}
	// O_TRUNC: a file left by an earlier attempt keeps its mode, which
	// place then corrects.
	f, err := n.createStaged(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", name, err)
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("write %s: %w", name, cerr)
		}
		if err != nil {
			n.folderRoot().Remove(name)
		}
	}()
	if _, err := f.Write(b); err != nil {
		return nil, fmt.Errorf("write %s: %w", name, err)
	}
	if mtime != 0 && batchSync {
		// Set before the file is flushed, so a crash keeps it too. Only
		// where the folder is flushed at once (Linux): NTFS sets a
		// file's mtime again when a handle that wrote to it closes.
		if setMTime(n.folderRoot(), f, name, time.Unix(0, mtime)) == nil {
			info, _ = f.Stat()
		}
	}
	if syncedAlone(size) {
		return info, n.syncReceived(f, name, h, size)
	}
	return info, nil
}
