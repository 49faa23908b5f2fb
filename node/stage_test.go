package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/drive-node/drive-node/content"
	"github.com/drive-node/drive-node/oplog"
	"github.com/fsnotify/fsnotify"
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
	if err := os.MkdirAll(filepath.Dir(temp), 0o700); err != nil {
		t.Fatal(err)
	}
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

// TestStagingMakesNoEventInTheWatchedTree: content being received is
// written where the watcher does not look. In the folder root, each file
// staged made five or six events there, and a large sync overflowed the
// kernel's event queue. Only the staging directory's first creation may
// show in the root; the sentinel written after the staging must be the
// next event.
func TestStagingMakesNoEventInTheWatchedTree(t *testing.T) {
	n := startNode(t, t.TempDir(), freeUDPPort(t))
	ctx := context.Background()
	w, err := fsnotify.NewWatcher()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.Add(n.folder); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		data := []byte(fmt.Sprintf("received content %d", i))
		h := content.Sum(data)
		if _, err := n.stage(ctx, h, int64(len(data)), []contentFetcher{scriptedFetch{content: data}}); err != nil {
			t.Fatalf("stage content %d: %v", i, err)
		}
	}
	if !n.reserved(stagingDir) || !n.reserved(stagedName(content.EmptyHash)) {
		t.Fatalf("the node does not ignore its staging directory %s", stagingDir)
	}
	sentinel := filepath.Join(n.folder, "sentinel")
	if err := os.WriteFile(sentinel, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for {
		select {
		case e := <-w.Events:
			switch e.Name {
			case sentinel:
				return
			case filepath.Join(n.folder, stagingDir):
				continue
			}
			t.Fatalf("staging made an event in the folder root: %v", e)
		case err := <-w.Errors:
			t.Fatal(err)
		case <-time.After(time.Minute):
			t.Fatal("no event for the sentinel within a minute")
		}
	}
}

// metaCounter counts the Chmod and Chtimes calls made on the folder it
// wraps.
type metaCounter struct {
	Folder
	chmods, chtimes atomic.Int32
}

func (c *metaCounter) Chmod(name string, mode fs.FileMode) error {
	c.chmods.Add(1)
	return c.Folder.Chmod(name, mode)
}

func (c *metaCounter) Chtimes(name string, atime, mtime time.Time) error {
	c.chtimes.Add(1)
	return c.Folder.Chtimes(name, atime, mtime)
}

// stagedFor stages data as the fetcher does for an op of mode and mtime,
// and returns a chunk's staged set holding it, with its look.
func stagedFor(t *testing.T, n *runningNode, data []byte, mode uint32, mtime time.Time) *stagedSet {
	t.Helper()
	h := content.Sum(data)
	info, err := n.writeStaged(stagedName(h), h, int64(len(data)), mode, mtime.UnixNano(), bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	set := newStagedSet()
	set.temp[h], set.tempInfo = stagedName(h), map[content.Hash]fs.FileInfo{h: info}
	return set
}

// TestSmallContentStagedWithItsModeAndMTime: a small content is staged
// with the mode and mtime of the op that wants it, so placing it needs
// neither a chmod nor a chtimes; an op that wants another mode or mtime
// gets it set when placed. The file ends with the op's mode and mtime
// either way.
func TestSmallContentStagedWithItsModeAndMTime(t *testing.T) {
	n := startNode(t, t.TempDir(), freeUDPPort(t))
	ctx := context.Background()
	data := []byte("#!/bin/sh\necho staged\n")
	h := content.Sum(data)
	name := stagedName(h)
	staged := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	counting := &metaCounter{Folder: n.folderRoot()}
	n.setFolder(counting)
	defer n.setFolder(counting.Folder)
	for i, c := range []struct {
		mode            uint32
		mtime           time.Time
		chmods, chtimes int32 // what placing it costs
	}{
		{0o750, staged, 0, 0},
		{0o604, staged, 1, 0},
		{0o750, staged.Add(time.Hour), 0, 1},
	} {
		set := stagedFor(t, n, data, 0o750, staged)
		if st, err := os.Lstat(filepath.Join(n.folder, name)); err != nil || st.Mode().Perm() != 0o750 || !st.ModTime().Equal(staged) {
			t.Fatalf("staged file: %v, %v, %v; want mode 0750 and mtime %v", st.Mode(), st.ModTime(), err, staged)
		}
		counting.chmods.Store(0)
		counting.chtimes.Store(0)
		p := fmt.Sprintf("bin/run%d", i)
		op := oplog.Op{Kind: oplog.KindWrite, Path: p, Hash: h, Size: int64(len(data)), Mode: c.mode, MTime: c.mtime.UnixNano()}
		if err := n.place(ctx, p, op, set); err != nil {
			t.Fatal(err)
		}
		st, err := os.Lstat(filepath.Join(n.folder, p))
		if err != nil || st.Mode().Perm() != fs.FileMode(c.mode) || !st.ModTime().Equal(c.mtime) {
			t.Fatalf("%s placed: %v, %v, %v; want mode %o and mtime %v", p, st.Mode(), st.ModTime(), err, c.mode, c.mtime)
		}
		if got := [2]int32{counting.chmods.Load(), counting.chtimes.Load()}; got != [2]int32{c.chmods, c.chtimes} {
			t.Fatalf("placing %s took %d chmods and %d chtimes, want %d and %d", p, got[0], got[1], c.chmods, c.chtimes)
		}
	}
}

// A staged file's look serves one try at placing it: a try that set its
// mtime and then failed (the path changed meanwhile) leaves the next op
// that places it to set its own mtime, not to trust the look taken when
// the file was written.
func TestFailedPlaceLeavesNoStaleLook(t *testing.T) {
	n := startNode(t, t.TempDir(), freeUDPPort(t))
	ctx := context.Background()
	data := []byte("placed by the second op\n")
	h := content.Sum(data)
	staged := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	set := stagedFor(t, n, data, 0o644, staged)
	// The first op wants another mtime, and finds its path not as the
	// decision saw it.
	set.looks["first"] = look{exists: true, size: 99}
	first := oplog.Op{Kind: oplog.KindWrite, Path: "first", Hash: h, Size: int64(len(data)), Mode: 0o644, MTime: staged.Add(time.Hour).UnixNano()}
	if err := n.place(ctx, "first", first, set); !errors.Is(err, errChangedMeanwhile) {
		t.Fatalf("placing over a changed path: %v, want errChangedMeanwhile", err)
	}
	second := oplog.Op{Kind: oplog.KindWrite, Path: "second", Hash: h, Size: int64(len(data)), Mode: 0o644, MTime: staged.UnixNano()}
	if err := n.place(ctx, "second", second, set); err != nil {
		t.Fatal(err)
	}
	st, err := os.Lstat(filepath.Join(n.folder, "second"))
	if err != nil || !st.ModTime().Equal(staged) {
		t.Fatalf("second placed with mtime %v (%v), want %v", st.ModTime(), err, staged)
	}
	if as := set.placedAs["second"]; as == nil || !as.ModTime().Equal(st.ModTime()) {
		t.Fatalf("the record would take %v, the file has %v", as, st.ModTime())
	}
}

// TestStagingDirectoryReplacedIsMadeAgain: a file or a symlink where the
// staging directory goes is removed, and the directory made, instead of
// every fetch failing for good.
func TestStagingDirectoryReplacedIsMadeAgain(t *testing.T) {
	n := startNode(t, t.TempDir(), freeUDPPort(t))
	elsewhere := t.TempDir()
	for what, mk := range map[string]func(p string) error{
		"a file":    func(p string) error { return os.WriteFile(p, []byte("not a directory"), 0o644) },
		"a symlink": func(p string) error { return os.Symlink(elsewhere, p) },
	} {
		dir := filepath.Join(n.folder, stagingDir)
		if err := os.RemoveAll(dir); err != nil {
			t.Fatal(err)
		}
		if err := mk(dir); err != nil {
			t.Fatal(err)
		}
		data := []byte("staged after " + what)
		h := content.Sum(data)
		if _, err := n.writeStaged(stagedName(h), h, int64(len(data)), 0, 0, bytes.NewReader(data)); err != nil {
			t.Fatalf("%s in the staging directory's place: %v", what, err)
		}
		if st, err := os.Lstat(dir); err != nil || !st.IsDir() {
			t.Fatalf("%s in the staging directory's place: it is now %v, %v", what, st.Mode(), err)
		}
		if got, err := os.ReadFile(filepath.Join(n.folder, stagedName(h))); err != nil || string(got) != string(data) {
			t.Fatalf("%s: staged %q, %v", what, got, err)
		}
	}
	if entries, _ := os.ReadDir(elsewhere); len(entries) != 0 {
		t.Fatalf("content was staged through the symlink: %v", entries)
	}
}
