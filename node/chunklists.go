package node

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"github.com/drive-node/drive-node/content"
)

// listsDir is where the chunk lists of the contents this device holds are
// kept, inside the state directory.
const listsDir = "lists"

// listStore keeps chunk lists, one file per content, named by the
// content's name in hex. A list reaches its name only whole (written
// to a temp file, then renamed), and whoever reads one checks it against
// that name, so a list file is never trusted on its own: a torn or
// damaged one is refused and fetched or made again. Lists are a cache of
// what the contents say, so they are not synced to disk one by one.
//
// The store works in its directory as it was opened: if another
// directory is put where the state directory was (a disk mounted over
// it), nothing is written into that one.
type listStore struct {
	dir  string // for messages
	root *os.Root
}

// openListStore opens (making it if need be) the list store at dir.
func openListStore(dir string) (*listStore, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("chunk lists: %w", err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("chunk lists: %w", err)
	}
	return &listStore{dir: dir, root: root}, nil
}

func (s *listStore) close() error { return s.root.Close() }

// open opens the list of h and returns its length.
func (s *listStore) open(h content.Hash) (*os.File, int64, error) {
	f, err := s.root.Open(h.String())
	if err != nil {
		return nil, 0, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, st.Size(), nil
}

// create returns a new temp file for a list, and its name in the store.
func (s *listStore) create() (*os.File, string, error) {
	var r [8]byte
	rand.Read(r[:])
	name := "tmp-" + hex.EncodeToString(r[:])
	f, err := s.root.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	return f, name, err
}

// keep names the temp list tmp (closed) as the list of h, or drops it if
// h has one already.
func (s *listStore) keep(tmp string, h content.Hash) error {
	if _, err := s.root.Stat(h.String()); err == nil {
		return s.root.Remove(tmp)
	}
	return s.root.Rename(tmp, h.String())
}

// remove drops the list (or temp file) name.
func (s *listStore) remove(name string) { s.root.Remove(name) }

// hashKeepingList names the content of f as content.Open does and keeps
// its chunk list (a content of one chunk has none) in the list store, and
// its chunks in the chunk index: the watcher's and observe's hashing, so
// a peer can fetch the list of every content this device announces, and
// this device can find the chunks of what it holds.
func (n *Node) hashKeepingList(ctx context.Context, f File) (content.Hash, int64, error) {
	st, err := f.Stat()
	if err != nil {
		return content.Hash{}, 0, err
	}
	if !st.Mode().IsRegular() || st.Size() <= content.MinChunk || n.lists == nil {
		return hashFile(ctx, f)
	}
	tmp, tmpName, err := n.lists.create()
	if err != nil {
		return content.Hash{}, 0, fmt.Errorf("chunk list: %w", err)
	}
	defer n.lists.remove(tmpName) // once kept, it has another name
	bw := bufio.NewWriterSize(tmp, 64<<10)
	var h content.Hash
	var size int64
	if osf, ok := f.(*os.File); ok {
		h, size, err = content.OpenList(ctx, osf, bw) // on every core
	} else {
		h, size, err = content.ListReaderOf(ctx, f, bw)
	}
	if err == nil {
		err = bw.Flush()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return content.Hash{}, size, err
	}
	if st, err := n.lists.root.Stat(tmpName); err != nil || st.Size() == 0 {
		return h, size, nil // one chunk after all: the file shrank meanwhile
	}
	if err := n.lists.keep(tmpName, h); err != nil {
		return content.Hash{}, size, fmt.Errorf("chunk list of %s: %w", h.Short(), err)
	}
	n.indexSoon(ctx, h)
	return h, size, nil
}

// indexSoon has the chunks of h's list recorded in the chunk index by the
// running node's indexer, off the path of the change that named h (a
// 256 MiB file has some 1,800 chunks); when no indexer runs, or it is
// behind, they are recorded now. A list left unindexed by a stop is
// indexed at the next start (see sweepLists).
func (n *Node) indexSoon(ctx context.Context, h content.Hash) {
	if q := n.indexQueue.Load(); q != nil {
		select {
		case *q <- h:
			return
		default:
		}
	}
	n.indexList(ctx, h)
}

// indexLoop records queued lists in the chunk index until ctx ends.
func (n *Node) indexLoop(ctx context.Context) {
	q := make(chan content.Hash, 64)
	n.indexQueue.Store(&q)
	defer n.indexQueue.Store(nil)
	for {
		select {
		case h := <-q:
			n.indexList(ctx, h)
		case <-ctx.Done():
			return
		}
	}
}

// indexList records the chunks of h's list in the chunk index. A list
// that does not name h is removed. Failures are logged: the index only
// spares fetches.
func (n *Node) indexList(ctx context.Context, h content.Hash) {
	if n.lists == nil {
		return
	}
	f, _, err := n.lists.open(h)
	if err != nil {
		return
	}
	defer f.Close()
	lr := content.NewListReader(f)
	err = n.db.IndexChunks(ctx, h, lr.Next)
	if err == nil && lr.Size() > 0 && lr.Name() != h {
		err = fmt.Errorf("%w: it names %s", content.ErrBadList, lr.Name().Short())
		n.db.DropChunks(ctx, []content.Hash{h})
		n.lists.remove(h.String())
	}
	if err != nil && ctx.Err() == nil {
		n.log.Warn("indexing a chunk list failed", "hash", h.Short(), "err", err)
	}
}

// OpenChunkList serves chunk lists to peers: the list of a content this
// device holds, or (nil, 0, nil) when it holds the content but keeps no
// list for it (one chunk, or a content named before chunking), or an
// error wrapping fs.ErrNotExist when it does not hold the content.
func (n *Node) OpenChunkList(ctx context.Context, h content.Hash) (io.ReadCloser, int64, error) {
	r, _, err := n.openContent(ctx, h)
	if err != nil {
		return nil, 0, err
	}
	r.Close()
	if n.lists == nil {
		return nil, 0, nil
	}
	f, size, err := n.lists.open(h)
	if err != nil {
		return nil, 0, nil
	}
	return f, size, nil
}

// sweepLists removes the lists, and forgets the chunk index, of contents
// this device no longer holds: not in a recorded file, not in the version
// store, not in a transfer's temp file that a restart resumes; it indexes
// the lists kept that are not indexed yet. It runs at start, before
// anything is fetched.
func (n *Node) sweepLists(ctx context.Context) error {
	if n.lists == nil {
		return nil
	}
	held := func(h content.Hash) bool {
		if fs, err := n.db.ContentFiles(ctx, h); err != nil || len(fs) > 0 {
			return true // on an error, keep
		}
		if ok, err := n.db.HasVersionContent(ctx, h); err != nil || ok {
			return true
		}
		_, err := n.folderRoot().Stat(stagedName(h))
		return err == nil
	}
	entries, err := fs.ReadDir(n.lists.root.FS(), ".")
	if err != nil {
		return fmt.Errorf("chunk lists %s: %w", n.lists.dir, err)
	}
	var gone []content.Hash
	var kept []content.Hash
	for _, e := range entries {
		h, perr := content.ParseHash(e.Name())
		if strings.HasPrefix(e.Name(), "tmp-") || (perr == nil && !held(h)) || perr != nil {
			n.lists.remove(e.Name())
			if perr == nil {
				gone = append(gone, h)
			}
			continue
		}
		kept = append(kept, h)
	}
	for _, h := range kept {
		n.indexList(ctx, h) // a list the last run had no time to index
	}
	var indexed []content.Hash
	if err := n.db.IndexedContents(ctx, func(h content.Hash) error {
		indexed = append(indexed, h)
		return nil
	}); err != nil {
		return err
	}
	for _, h := range indexed {
		if _, err := n.lists.root.Stat(h.String()); err != nil {
			gone = append(gone, h)
		}
	}
	return n.db.DropChunks(ctx, gone)
}
