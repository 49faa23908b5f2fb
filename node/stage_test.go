package node

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/drive-node/drive-node/content"
)

// countingFetcher has no content; it counts the fetches asked of it.
type countingFetcher struct{ fetches int }

func (c *countingFetcher) Fetch(context.Context, content.Hash, int64, io.Writer) (int64, error) {
	c.fetches++
	return 0, errors.New("no content here")
}

// TestStageReusesACompleteTempFile: a temp file an earlier attempt
// completed is used as it is (and flushed), not fetched again; one whose
// bytes do not match its name is removed and fetched.
func TestStageReusesACompleteTempFile(t *testing.T) {
	n := startNode(t, t.TempDir(), freeUDPPort(t))
	ctx := context.Background()
	data := make([]byte, 3*smallContent)
	for i := range data {
		data[i] = byte(i)
	}
	h := content.Sum(data)
	temp := filepath.Join(n.folder, stagedName(h))

	if err := os.WriteFile(temp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	peer := &countingFetcher{}
	name, err := n.stage(ctx, h, int64(len(data)), []contentFetcher{peer})
	if err != nil || name != stagedName(h) || peer.fetches != 0 {
		t.Fatalf("complete temp file: stage = %q, %v after %d fetches; want it used as it is", name, err, peer.fetches)
	}

	bad := append([]byte{}, data...)
	bad[0] ^= 1
	if err := os.WriteFile(temp, bad, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := n.stage(ctx, h, int64(len(data)), []contentFetcher{peer}); err == nil || peer.fetches == 0 {
		t.Fatalf("temp file with other bytes: stage = %v after %d fetches; want a fetch (which fails here)", err, peer.fetches)
	}
}

// TestMkdirAllNotesNewDirectories: the directories a received file needs
// are flushed in their parents like the file itself (syncDirs), so a crash
// after the database recorded the file cannot lose the directory above it;
// directories that were there already are not noted again.
func TestMkdirAllNotesNewDirectories(t *testing.T) {
	n := startNode(t, t.TempDir(), freeUDPPort(t))
	if err := os.Mkdir(filepath.Join(n.folder, "a"), 0o755); err != nil {
		t.Fatal(err)
	}
	staged := &stagedSet{dirs: map[string]bool{}}
	if err := n.mkdirAll(staged, "a/b/c", 0o755); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(filepath.Join(n.folder, "a/b/c")); err != nil || !st.IsDir() {
		t.Fatalf("a/b/c not made: %v", err)
	}
	if !staged.dirs["a"] || !staged.dirs["a/b"] || len(staged.dirs) != 2 {
		t.Fatalf("directories to flush %v, want a (for b) and a/b (for c)", staged.dirs)
	}
	again := &stagedSet{dirs: map[string]bool{}}
	if err := n.mkdirAll(again, "a/b/c", 0o755); err != nil || len(again.dirs) != 0 {
		t.Fatalf("existing directories noted again: %v (%v)", again.dirs, err)
	}
}
