package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"testing"

	"github.com/drive-node/drive-node/content"
	"github.com/drive-node/drive-node/quicnet"
)

// TestBatchServedAsOneByOne serves a peer's batch through the source the
// transport is given, found with one look-up, and compares every answer
// with OpenContent's: contents held by one file and by two, one whose
// file changed since it was recorded (served by neither), one nobody
// has.
func TestBatchServedAsOneByOne(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{"a.txt": "alpha", "b.txt": "beta", "sub/b-again.txt": "beta", "c.txt": "gamma"}
	for name, body := range files {
		write(t, filepath.Join(dir, name), body)
	}
	r := startNode(t, dir, freeUDPPort(t))
	ctx := context.Background()
	hs := []content.Hash{content.Sum([]byte("alpha")), content.Sum([]byte("beta")), content.Sum([]byte("gamma")), content.Sum([]byte("nobody's"))}
	waitFor(t, "every file recorded", func() string {
		for _, h := range hs[:3] {
			if fs, err := r.db.ContentFiles(ctx, h); err != nil || len(fs) == 0 {
				return fmt.Sprintf("%s: %d files, %v", h.Short(), len(fs), err)
			}
		}
		return ""
	})
	// c.txt changes under its record, keeping its size: neither way
	// serves what it holds now as "gamma", recorded yet or not.
	write(t, filepath.Join(dir, "c.txt"), "GAMMA")

	var src quicnet.ContentSource = relaySource{r.Node}
	batch := src.(quicnet.BatchSource).Batch(ctx, hs)
	if _, ok := batch.(batchSource); !ok {
		t.Fatalf("the batch is served by %T, not from one look-up", batch)
	}
	// A content recorded after the batch's look-up, while it is served,
	// is served too, as it would be alone.
	late := content.Sum([]byte("delta"))
	lateBatch := src.(quicnet.BatchSource).Batch(ctx, []content.Hash{late})
	write(t, filepath.Join(dir, "d.txt"), "delta")
	waitFor(t, "d.txt recorded", func() string {
		if fs, err := r.db.ContentFiles(ctx, late); err != nil || len(fs) == 0 {
			return fmt.Sprintf("%d files, %v", len(fs), err)
		}
		return ""
	})
	if got, err := read(lateBatch.OpenContent(ctx, late)); got != "delta" {
		t.Errorf("a content recorded after the batch's look-up: %q, %v", got, err)
	}

	for _, h := range hs {
		one, oneErr := read(r.OpenContent(ctx, h))
		got, gotErr := read(batch.OpenContent(ctx, h))
		if one != got || errors.Is(oneErr, fs.ErrNotExist) != errors.Is(gotErr, fs.ErrNotExist) {
			t.Errorf("%s: the batch serves %q (%v), OpenContent %q (%v)", h.Short(), got, gotErr, one, oneErr)
		}
		if want := map[content.Hash]string{hs[0]: "alpha", hs[1]: "beta"}[h]; got != want {
			t.Errorf("%s: the batch serves %q, want %q", h.Short(), got, want)
		}
	}
}

// read returns what an opened content holds.
func read(r io.ReadSeekCloser, _ int64, err error) (string, error) {
	if err != nil {
		return "", err
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	return string(b), err
}
