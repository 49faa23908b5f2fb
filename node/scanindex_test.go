package node

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/drive-node/drive-node/certs"
	"github.com/drive-node/drive-node/content"
	"github.com/drive-node/drive-node/state"
	"github.com/drive-node/drive-node/watcher"
)

// A full scan compares each directory's listing with what dbIndex lists
// in it. These tests scan a folder against records made up in a real
// database, as the daemon's watcher would after a restart.

// scanAgainst returns, by path, what one full scan of folder reports
// against x.
func scanAgainst(t *testing.T, folder string, x dbIndex) map[string]watcher.Observation {
	t.Helper()
	w, err := watcher.New(watcher.Options{Root: folder, Index: x})
	if err != nil {
		t.Fatal(err)
	}
	out := make(chan []watcher.Observation, 100)
	if err := w.Scan(context.Background(), out); err != nil {
		t.Fatal(err)
	}
	close(out)
	got := map[string]watcher.Observation{}
	for b := range out {
		for _, o := range b {
			got[o.Path] = o
		}
	}
	return got
}

// recordsDB is a database holding files as live records.
func recordsDB(t *testing.T, files ...state.File) *state.DB {
	t.Helper()
	ctx := context.Background()
	db, err := state.Open(ctx, filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	for i := range files {
		files[i].Origin, files[i].Seq = certs.DeviceID{1}, uint64(i+1)
		if !files[i].Dir {
			files[i].Hash = content.Sum([]byte(files[i].Path))
		}
	}
	if err := db.Apply(ctx, state.Batch{Files: files}); err != nil {
		t.Fatal(err)
	}
	return db
}

// goneIn reports whether got has path p (in either Unicode form given)
// reported gone.
func goneIn(got map[string]watcher.Observation, paths ...string) bool {
	for _, p := range paths {
		if o, ok := got[p]; ok && !o.Exists {
			return true
		}
	}
	return false
}

// TestScanFindsGoneUnderADecomposedDirectory: on a folder that lists
// names decomposed (HFS+) while records hold them in NFC, a subdirectory
// removed while the daemon was down takes what was recorded in it along,
// whether or not it had a record of its own.
func TestScanFindsGoneUnderADecomposedDirectory(t *testing.T) {
	const nfc, nfd = "caf\u00e9", "cafe\u0301"
	for _, implied := range []bool{false, true} {
		folder := t.TempDir()
		if err := os.Mkdir(filepath.Join(folder, nfd), 0o755); err != nil {
			t.Fatal(err)
		}
		files := []state.File{{Path: nfc, Dir: true}, {Path: nfc + "/sub/f.txt"}}
		if !implied {
			files = append(files, state.File{Path: nfc + "/sub", Dir: true})
		}
		got := scanAgainst(t, folder, dbIndex{db: recordsDB(t, files...), placing: &placingSet{}, nfc: true})
		if !goneIn(got, nfc+"/sub/f.txt", nfd+"/sub/f.txt") {
			t.Errorf("sub with a record of its own %v: sub/f.txt not reported gone; got %v", !implied, got)
		}
	}
}

// TestScanFindsGoneInADirectoryRecordedDecomposed: records a peer made
// under a decomposed name are held so; a file removed from that
// directory is reported gone.
func TestScanFindsGoneInADirectoryRecordedDecomposed(t *testing.T) {
	const nfd = "cafe\u0301"
	folder := t.TempDir()
	if err := os.Mkdir(filepath.Join(folder, nfd), 0o755); err != nil {
		t.Fatal(err)
	}
	db := recordsDB(t, state.File{Path: nfd, Dir: true}, state.File{Path: nfd + "/x.txt"})
	got := scanAgainst(t, folder, dbIndex{db: db, placing: &placingSet{}, nfc: true})
	if !goneIn(got, nfd+"/x.txt") {
		t.Errorf("x.txt not reported gone: %v", got)
	}
}

// TestScanFindsAPlacedFileGoneDeeperDown: a file an apply placed two
// directories down, not yet recorded, whose directory is removed before
// the scan gets there, is reported gone (the placing set's contract).
func TestScanFindsAPlacedFileGoneDeeperDown(t *testing.T) {
	folder := t.TempDir()
	if err := os.Mkdir(filepath.Join(folder, "a"), 0o755); err != nil {
		t.Fatal(err)
	}
	placing := &placingSet{}
	placing.add([]state.File{{Path: "a/b/f.txt", Size: 1}})
	got := scanAgainst(t, folder, dbIndex{db: recordsDB(t, state.File{Path: "other.txt"}), placing: placing})
	if !goneIn(got, "a/b/f.txt") {
		t.Errorf("a/b/f.txt not reported gone: %v", got)
	}
}
