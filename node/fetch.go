package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"syscall"

	"github.com/drive-node/drive-node/content"
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

// stagedName is where content with hash h is assembled: in the folder root,
// so the final rename stays on one file system, under a name the watcher
// ignores and a restart can resume.
func stagedName(h content.Hash) string { return TempPrefix + h.String()[:32] }

// stage makes the content h (of the given size) available as a complete,
// fsynced, verified temp file in the folder root and returns its name. A
// partial file left by an earlier attempt is resumed from where it ends.
func (n *Node) stage(ctx context.Context, h content.Hash, size int64, peers []contentFetcher) (string, error) {
	name := stagedName(h)
	if st, err := n.folderRoot().Stat(name); err == nil && st.Size() == size {
		if got, _, err := hashRootFile(ctx, n.folderRoot(), name); err == nil && got == h {
			return name, nil
		}
		n.folderRoot().Remove(name)
	}
	if size == 0 && h == content.EmptyHash {
		if err := n.folderRoot().WriteFile(name, nil, 0o600); err != nil {
			return "", fmt.Errorf("stage empty file: %w", err)
		}
		return name, nil
	}
	if len(peers) == 0 {
		return "", fmt.Errorf("content %s: no connected peer to fetch it from", h.Short())
	}
	var errs []error
	for attempt := 0; attempt < 2; attempt++ { // a bad copy is fetched once more
		for _, p := range peers {
			err := n.fetchInto(ctx, name, h, p)
			if err == nil {
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
	return "", fmt.Errorf("content %s: %w", h.Short(), errors.Join(errs...))
}

// fetchInto appends to the temp file what it lacks of h, then verifies the
// whole file against h. On a mismatch the file is removed.
func (n *Node) fetchInto(ctx context.Context, name string, h content.Hash, p contentFetcher) error {
	f, err := n.folderRoot().OpenFile(name, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("open %s: %w", name, err)
	}
	defer f.Close()
	hasher := content.NewHasher()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("stat %s: %w", name, err)
	}
	var offset int64
	if st.Size() > 0 {
		// What an earlier attempt left is kept and hashed, not fetched again.
		if offset, err = io.Copy(hasher, f); err != nil {
			return fmt.Errorf("read %s: %w", name, err)
		}
		n.log.Info("resuming a transfer", "hash", h.Short(), "offset", offset)
	}
	size, err := p.Fetch(ctx, h, offset, io.MultiWriter(f, hasher))
	if err != nil {
		if offset > 0 && size > 0 && offset > size {
			n.folderRoot().Remove(name)
		}
		return err
	}
	if hasher.Sum() != h {
		f.Close()
		n.folderRoot().Remove(name)
		return fmt.Errorf("%s: %w", h.Short(), ErrHashMismatch)
	}
	if !batchSync {
		if err := f.Sync(); err != nil {
			return fmt.Errorf("sync %s: %w", name, err)
		}
	}
	return nil
}

func hashRootFile(ctx context.Context, root *os.Root, name string) (content.Hash, int64, error) {
	f, err := root.Open(name)
	if err != nil {
		return content.Hash{}, 0, err
	}
	defer f.Close()
	return content.Reader(ctx, f)
}

// syncDir makes a rename or removal inside dir durable.
func syncDir(root *os.Root, dir string) error {
	if dir == "" {
		dir = "."
	}
	d, err := root.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, fs.ErrInvalid) {
		return err
	}
	return nil
}

func parentDir(p string) string {
	d := path.Dir(p)
	if d == "." {
		return ""
	}
	return d
}

func hashOpen(ctx context.Context, f io.Reader) (content.Hash, int64, error) {
	return content.Reader(ctx, f)
}
