package node

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/drive-node/drive-node/content"
	"github.com/drive-node/drive-node/node/internal/folder"
	"github.com/drive-node/drive-node/oplog"
	"github.com/drive-node/drive-node/quicnet"
)

// endlessFetch is a peer that says its content is huge and sends zeros
// until it is stopped: what it says of the size must not fill the disk.
type endlessFetch struct{ sent *int64 }

func (e endlessFetch) Fetch(_ context.Context, _ content.Hash, _ int64, dst io.Writer) (int64, error) {
	chunk := make([]byte, 64<<10)
	for *e.sent < 1<<30 {
		n, err := dst.Write(chunk)
		*e.sent += int64(n)
		if err != nil {
			return 1 << 62, err
		}
	}
	return 1 << 62, nil
}

func TestAFetchTakesNoMoreThanTheOpSays(t *testing.T) {
	data := []byte("the real content, 29 bytes...")
	h := content.Sum(data)
	mem := folder.NewMem(time.Unix(0, 0))
	n := &Node{log: slog.New(slog.DiscardHandler), flushData: func(File) error { return nil }}
	n.setFolder(mem)
	var sent int64
	name := stagedName(h)
	err := n.fetchInto(context.Background(), name, h, int64(len(data)), endlessFetch{&sent})
	if !errors.Is(err, ErrSizeMismatch) {
		t.Fatalf("fetch from a peer sending without end: %v, want ErrSizeMismatch", err)
	}
	if sent > int64(len(data)) {
		t.Errorf("%d bytes taken from the peer for a %d-byte content", sent, len(data))
	}
	if _, err := mem.Stat(name); err == nil {
		t.Error("the oversized transfer's temp file was kept")
	}
	// A peer that says another size than the op, even with the right
	// bytes, is not taken either.
	err = n.fetchInto(context.Background(), name, h, int64(len(data))+1, scriptedFetch{content: data})
	if !errors.Is(err, ErrSizeMismatch) {
		t.Fatalf("content one byte short of its op: %v, want ErrSizeMismatch", err)
	}
	// The honest peer's content is taken.
	if err := n.fetchInto(context.Background(), name, h, int64(len(data)), scriptedFetch{content: data}); err != nil {
		t.Fatalf("the right content: %v", err)
	}
}

// countingFetch counts the fetches asked of it and serves data.
type countingFetch struct {
	calls *int
	data  []byte
}

func (c countingFetch) Fetch(ctx context.Context, h content.Hash, offset int64, dst io.Writer) (int64, error) {
	*c.calls++
	return scriptedFetch{content: c.data}.Fetch(ctx, h, offset, dst)
}

// Content an apply needs and did not stage is never fetched under the
// commit lock: the op waits, and the next pass stages it first.
func TestNoFetchUnderTheCommitLock(t *testing.T) {
	sc, _, b := newScenario(t)
	data := []byte("a losing version")
	calls := 0
	b.node.contentFrom = func([]*quicnet.Peer) []contentFetcher { return []contentFetcher{countingFetch{&calls, data}} }
	op := oplog.Op{Kind: oplog.KindWrite, Path: "x.txt", Hash: content.Sum(data), Size: int64(len(data))}
	err := b.node.contentFromElsewhere(sc.ctx, op, TempPrefix+"copy", &stagedSet{})
	if !errors.Is(err, ErrContentUnavailable) || calls != 0 {
		t.Fatalf("content not here: err %v after %d fetches; want ErrContentUnavailable and none", err, calls)
	}
	next := b.node.unstaged.take()
	if len(next) != 1 || next[0].h != op.Hash || next[0].size != op.Size {
		t.Fatalf("the next pass is not told to stage the content: %+v", next)
	}
	// Recorded content is copied, not fetched, and not noted.
	sc.put(b, "have.txt", string(data))
	if err := b.node.contentFromElsewhere(sc.ctx, op, TempPrefix+"copy", &stagedSet{}); err != nil || calls != 0 {
		t.Fatalf("recorded content: err %v after %d fetches", err, calls)
	}
	if left := b.node.unstaged.take(); len(left) != 0 {
		t.Fatalf("noted content that is here: %+v", left)
	}
}
