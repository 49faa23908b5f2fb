package node

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/drive-node/drive-node/content"
	"github.com/drive-node/drive-node/node/internal/folder"
	"github.com/drive-node/drive-node/quicnet"
	"github.com/drive-node/drive-node/state"
)

// chunkPeer serves contents, their chunk lists and ranges of them from
// memory, counting the content bytes it sends; corrupt, when set, spoils
// the bytes of the ranges it is asked for while it returns true.
type chunkPeer struct {
	mu      sync.Mutex
	data    map[content.Hash][]byte
	lists   map[content.Hash][]byte
	sent    int64
	whole   int // whole-content fetches
	corrupt func(offset int64) bool
}

func newChunkPeer(t *testing.T, contents ...[]byte) *chunkPeer {
	p := &chunkPeer{data: map[content.Hash][]byte{}, lists: map[content.Hash][]byte{}}
	for _, b := range contents {
		var list bytes.Buffer
		h, _, err := content.ListReaderOf(context.Background(), bytes.NewReader(b), &list)
		if err != nil {
			t.Fatal(err)
		}
		p.data[h], p.lists[h] = b, list.Bytes()
	}
	return p
}

func (p *chunkPeer) Fetch(ctx context.Context, h content.Hash, offset int64, dst io.Writer) (int64, error) {
	p.mu.Lock()
	b, ok := p.data[h]
	p.whole++
	p.sent += int64(len(b)) - offset
	p.mu.Unlock()
	if !ok {
		return 0, quicnet.ErrNotFound
	}
	_, err := dst.Write(b[offset:])
	return int64(len(b)), err
}

func (p *chunkPeer) FetchChunkList(ctx context.Context, h content.Hash, limit int64, dst io.Writer) (int64, error) {
	p.mu.Lock()
	b, ok := p.data[h]
	list := p.lists[h]
	p.mu.Unlock()
	if !ok {
		return 0, quicnet.ErrNotFound
	}
	_ = b
	if int64(len(list)) > limit {
		return 0, fmt.Errorf("list of %d bytes over %d", len(list), limit)
	}
	_, err := dst.Write(list)
	return int64(len(list)), err
}

func (p *chunkPeer) FetchRange(ctx context.Context, h content.Hash, offset, length int64, dst io.Writer) (int64, error) {
	p.mu.Lock()
	b, ok := p.data[h]
	spoil := p.corrupt != nil && p.corrupt(offset)
	p.sent += length
	p.mu.Unlock()
	if !ok || offset+length > int64(len(b)) {
		return 0, quicnet.ErrNotFound
	}
	out := slices.Clone(b[offset : offset+length])
	if spoil {
		out[len(out)/2] ^= 0xff
	}
	for len(out) > 0 { // in pieces, as a stream delivers them
		k := min(len(out), 100_000)
		if _, err := dst.Write(out[:k]); err != nil {
			return int64(len(b)), err
		}
		out = out[k:]
	}
	return int64(len(b)), nil
}

// assembleNode is a node over an in-memory folder with a real state
// database and list store, enough to stage contents.
func assembleNode(t *testing.T) (*Node, *folder.Mem) {
	t.Helper()
	dir := t.TempDir()
	db, err := state.Open(context.Background(), filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	n := newNode(Config{Folder: "x", StateDir: dir, Logger: slog.New(slog.DiscardHandler)})
	n.db = db
	if n.lists, err = openListStore(filepath.Join(dir, listsDir)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.lists.close() })
	n.flushData = func(File) error { return nil }
	mem := folder.NewMem(time.Unix(0, 0))
	n.setFolder(mem)
	return n, mem
}

// hold writes b at p and records it, as the watcher and a commit would,
// keeping its chunk list.
func hold(t *testing.T, n *Node, mem *folder.Mem, p string, b []byte) content.Hash {
	t.Helper()
	ctx := context.Background()
	if err := mem.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := mem.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h, size, err := n.hashKeepingList(ctx, f)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := f.Stat()
	if err := n.db.Apply(ctx, state.Batch{Files: []state.File{{Path: p, Hash: h, Size: size, Mode: 0o644, MTime: st.ModTime().UnixNano()}}}); err != nil {
		t.Fatal(err)
	}
	return h
}

func random(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// staged reads the staged content h and checks it is want.
func checkStaged(t *testing.T, mem *folder.Mem, name string, want []byte) {
	t.Helper()
	f, err := mem.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, _ := io.ReadAll(f)
	if !bytes.Equal(got, want) {
		t.Fatalf("staged %d bytes, not the content's %d", len(got), len(want))
	}
}

// A change to a big file fetches the list and the chunks the change
// touched; a copy of a content held here fetches nothing; a content
// named before chunking (no list anywhere) is fetched whole.
func TestAssembleFetchesOnlyWhatIsMissing(t *testing.T) {
	ctx := context.Background()
	old := random(8 << 20)
	edits := map[string]func([]byte) []byte{
		"overwrite 4 KiB": func(b []byte) []byte {
			b = slices.Clone(b)
			copy(b[3<<20:], random(4096))
			return b
		},
		"insert 1 byte": func(b []byte) []byte { return slices.Insert(slices.Clone(b), 3<<20, 7) },
		"append 1 MiB":  func(b []byte) []byte { return append(slices.Clone(b), random(1<<20)...) },
		"copy":          func(b []byte) []byte { return b },
	}
	for name, edit := range edits {
		t.Run(name, func(t *testing.T) {
			n, mem := assembleNode(t)
			hold(t, n, mem, "f", old)
			next := edit(old)
			peer := newChunkPeer(t, next)
			h := content.Sum(next)
			staged, err := n.stage(ctx, h, int64(len(next)), []contentFetcher{peer})
			if err != nil {
				t.Fatal(err)
			}
			checkStaged(t, mem, staged, next)
			added := int64(len(next) - len(old))
			if name == "copy" {
				if peer.sent != 0 || peer.whole != 0 {
					t.Fatalf("a copy of held content fetched %d bytes", peer.sent)
				}
				return
			}
			if limit := added + 2*content.MaxChunk; peer.sent > limit || peer.whole != 0 {
				t.Fatalf("%d bytes fetched (%d whole fetches), want at most %d", peer.sent, peer.whole, limit)
			}
		})
	}
	t.Run("named before chunking", func(t *testing.T) {
		n, mem := assembleNode(t)
		data := random(3 << 20)
		legacy := content.NewLegacyHasher()
		legacy.Write(data)
		h := legacy.Sum()
		peer := &chunkPeer{data: map[content.Hash][]byte{h: data}, lists: map[content.Hash][]byte{}}
		staged, err := n.stage(ctx, h, int64(len(data)), []contentFetcher{peer})
		if err != nil {
			t.Fatal(err)
		}
		checkStaged(t, mem, staged, data)
		if peer.whole != 1 {
			t.Fatalf("%d whole fetches, want 1", peer.whole)
		}
	})
}

// A chunk a peer spoils is refused; the run is fetched again (from the
// next peer, or the same one once more) and the content is staged right.
// A peer that only ever sends spoiled chunks stages nothing.
func TestAssembleRefusesASpoiledChunk(t *testing.T) {
	ctx := context.Background()
	data := random(6 << 20)
	h := content.Sum(data)
	n, mem := assembleNode(t)
	bad := newChunkPeer(t, data)
	bad.corrupt = func(int64) bool { return true }
	good := newChunkPeer(t, data)
	staged, err := n.stage(ctx, h, int64(len(data)), []contentFetcher{bad, good})
	if err != nil {
		t.Fatal(err)
	}
	checkStaged(t, mem, staged, data)

	n2, _ := assembleNode(t)
	_, err = n2.stage(ctx, h, int64(len(data)), []contentFetcher{bad})
	if !errors.Is(err, ErrHashMismatch) {
		t.Fatalf("only spoiled chunks: %v, want ErrHashMismatch", err)
	}
}

// An assembly cut short resumes: the chunks already in the temp file are
// checked and kept, only the rest is fetched.
func TestAssembleResumes(t *testing.T) {
	ctx := context.Background()
	data := random(2*runBytes + 5<<20)
	h := content.Sum(data)
	n, mem := assembleNode(t)
	half := newChunkPeer(t, data)
	half.corrupt = func(off int64) bool { return off >= runBytes }
	if _, err := n.stage(ctx, h, int64(len(data)), []contentFetcher{half}); err == nil {
		t.Fatal("a peer spoiling the second half staged the content")
	}
	good := newChunkPeer(t, data)
	staged, err := n.stage(ctx, h, int64(len(data)), []contentFetcher{good})
	if err != nil {
		t.Fatal(err)
	}
	checkStaged(t, mem, staged, data)
	if good.sent > int64(len(data))-runBytes+content.MaxChunk {
		t.Fatalf("the resume fetched %d of %d bytes", good.sent, len(data))
	}
	if good.sent == 0 {
		t.Fatal("the resume fetched nothing, yet half the chunks were spoiled")
	}
}
