package node

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/drive-node/drive-node/content"
	"github.com/drive-node/drive-node/internal/clock"
	"github.com/drive-node/drive-node/node/internal/retention"
	"github.com/drive-node/drive-node/state"
)

// openAt opens a node on folder, not running, on a fake clock.
func openAt(t *testing.T, folder string, clk clock.Clock, versions string) *Node {
	t.Helper()
	n, err := Open(context.Background(), Config{Folder: folder, Listen: "127.0.0.1:0", NoDiscovery: true, Clock: clk, Versions: versions})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// storeContent puts data in folder's version store as the store names it.
func storeContent(t *testing.T, folder, data string) content.Hash {
	t.Helper()
	h := content.Sum([]byte(data))
	write(t, filepath.Join(folder, filepath.FromSlash(versionPath(h))), data)
	return h
}

// Pruning keeps exactly what the schedule keeps, and removes a content
// from the store only once no version names it.
func TestPruneFollowsTheSchedule(t *testing.T) {
	folder := t.TempDir()
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	clk := clock.NewFake(now)
	n := openAt(t, folder, clk, "")
	ctx := context.Background()

	shared := storeContent(t, folder, "kept by an old and a new version")
	var vs []state.Version
	var items []retention.Item
	for i := range 200 {
		data := "version " + string(rune('a'+i%26)) + time.Duration(i).String()
		h := storeContent(t, folder, data)
		if i%50 == 0 {
			h = shared
		}
		kept := now.Add(-time.Duration(i*i) * 10 * time.Minute)
		vs = append(vs, state.Version{Path: "doc.txt", Hash: h, Size: int64(len(data)), Kept: kept.UnixNano(), By: state.OpID{Seq: uint64(i + 1)}})
	}
	if err := n.db.AddVersions(ctx, vs); err != nil {
		t.Fatal(err)
	}
	stored, _ := n.db.AllVersions(ctx)
	for _, v := range stored {
		items = append(items, retention.Item{ID: v.ID, Path: v.Path, Kept: time.Unix(0, v.Kept), Content: v.Hash.String(), Size: v.Size})
	}
	drop := retention.Drop(retention.Default(), now, items, 0)
	if len(drop) == 0 || len(drop) == len(items) {
		t.Fatalf("the test's versions should be partly dropped, not %d of %d", len(drop), len(items))
	}
	n.cfg.VersionsMaxShare = 1 // no cap that matters here
	if err := n.pruneVersions(ctx); err != nil {
		t.Fatal(err)
	}
	left, _ := n.db.AllVersions(ctx)
	for _, v := range stored {
		dropped := slices.Contains(drop, v.ID)
		kept := slices.ContainsFunc(left, func(l state.Version) bool { return l.ID == v.ID })
		if dropped == kept {
			t.Fatalf("version %d (kept %s ago): dropped %v by the schedule, kept %v by pruning", v.ID, now.Sub(time.Unix(0, v.Kept)), dropped, kept)
		}
		_, err := os.Stat(filepath.Join(folder, filepath.FromSlash(versionPath(v.Hash))))
		named := slices.ContainsFunc(left, func(l state.Version) bool { return l.Hash == v.Hash })
		if named != (err == nil) {
			t.Fatalf("content %s: named by a version %v, in the store %v", v.Hash.Short(), named, err == nil)
		}
	}
	if !slices.ContainsFunc(left, func(l state.Version) bool { return l.Hash == shared }) {
		t.Fatal("the shared content lost every version; the test wants one of its versions kept")
	}
}

// After a crash between keeping a file and recording the batch, the next
// start adopts a content the replaced path's record still names, removes
// one still in place (nothing was replaced), and forgets a version whose
// content is gone.
func TestVersionStoreHealsAfterACrash(t *testing.T) {
	folder := t.TempDir()
	clk := clock.NewFake(time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC))
	ctx := context.Background()
	write(t, filepath.Join(folder, "replaced.txt"), "old content")
	write(t, filepath.Join(folder, "untouched.txt"), "still here")
	n := openAt(t, folder, clk, "")
	if err := n.applyPending(ctx); err != nil {
		t.Fatal(err)
	}
	// The start-up scan records the files.
	if err := n.observeLocked(ctx, "replaced.txt", "untouched.txt"); err != nil {
		t.Fatal(err)
	}
	n.Close()

	old, still := content.Sum([]byte("old content")), content.Sum([]byte("still here"))
	// replaced.txt: kept (moved to the store), then replaced, unrecorded.
	os.MkdirAll(filepath.Join(folder, filepath.FromSlash(parentDir(versionPath(old)))), 0o700)
	if err := os.Rename(filepath.Join(folder, "replaced.txt"), filepath.Join(folder, filepath.FromSlash(versionPath(old)))); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(folder, "replaced.txt"), "new content from a peer")
	// untouched.txt: linked into the store, the effect never ran.
	os.MkdirAll(filepath.Join(folder, filepath.FromSlash(parentDir(versionPath(still)))), 0o700)
	if err := os.Link(filepath.Join(folder, "untouched.txt"), filepath.Join(folder, filepath.FromSlash(versionPath(still)))); err != nil {
		t.Fatal(err)
	}
	// A version whose content is gone.
	db, err := state.Open(ctx, filepath.Join(folder, StateDirName, dbName))
	if err != nil {
		t.Fatal(err)
	}
	gone := content.Sum([]byte("gone"))
	if err := db.AddVersions(ctx, []state.Version{{Path: "gone.txt", Hash: gone, Size: 4, Kept: 1}}); err != nil {
		t.Fatal(err)
	}
	db.Close()

	n = openAt(t, folder, clk, "")
	vs, err := n.db.AllVersions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) != 1 || vs[0].Path != "replaced.txt" || vs[0].Hash != old {
		t.Fatalf("versions after the restart: %+v, want only replaced.txt's old content", vs)
	}
	if _, err := os.Stat(filepath.Join(folder, filepath.FromSlash(versionPath(still)))); !os.IsNotExist(err) {
		t.Fatalf("the link to a file never replaced is still in the store: %v", err)
	}
	if got, err := os.ReadFile(filepath.Join(folder, "untouched.txt")); err != nil || string(got) != "still here" {
		t.Fatalf("untouched.txt: %q %v", got, err)
	}
}

// With versions off, nothing is kept.
func TestVersionsOff(t *testing.T) {
	if _, err := (Config{Folder: t.TempDir(), Versions: "1h:all,30m:1m"}).withDefaults(); err == nil {
		t.Fatal("a schedule whose ages shrink was accepted")
	}
	c, err := (Config{Folder: t.TempDir(), Versions: "off"}).withDefaults()
	if err != nil || c.schedule != nil {
		t.Fatalf("off: %v %v", c.schedule, err)
	}
	c, err = (Config{Folder: t.TempDir()}).withDefaults()
	if err != nil || c.schedule.String() != retention.Default().String() {
		t.Fatalf("default: %v %v", c.schedule, err)
	}
}

// dropFails is a database whose DropVersions fails, as a crash between
// removing contents and forgetting their versions would leave it.
type dropFails struct{ stateStore }

func (dropFails) DropVersions(context.Context, []int64) ([]content.Hash, error) {
	return nil, errors.New("crashed")
}

// A crash while pruning (the contents removed, their versions not yet
// forgotten) loses nothing that is kept: the next start forgets the
// versions whose content is gone, and every other version keeps its
// content.
func TestCrashWhilePruning(t *testing.T) {
	folder := t.TempDir()
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	clk := clock.NewFake(now)
	n := openAt(t, folder, clk, "1h:all")
	ctx := context.Background()
	old, young := storeContent(t, folder, "old enough to go"), storeContent(t, folder, "young")
	shared := storeContent(t, folder, "named by an old and a young version")
	err := n.db.AddVersions(ctx, []state.Version{
		{Path: "a", Hash: old, Size: 16, Kept: now.Add(-2 * time.Hour).UnixNano()},
		{Path: "b", Hash: young, Size: 5, Kept: now.Add(-time.Minute).UnixNano()},
		{Path: "c", Hash: shared, Size: 35, Kept: now.Add(-3 * time.Hour).UnixNano()},
		{Path: "d", Hash: shared, Size: 35, Kept: now.Add(-time.Minute).UnixNano()},
	})
	if err != nil {
		t.Fatal(err)
	}
	real := n.db
	n.db = dropFails{real}
	if err := n.pruneVersions(ctx); err == nil {
		t.Fatal("pruning with a failing database reported no error")
	}
	n.db = real
	n.Close()

	n = openAt(t, folder, clk, "1h:all")
	vs, err := n.db.AllVersions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, v := range vs {
		paths = append(paths, v.Path)
		if _, err := os.Stat(filepath.Join(folder, filepath.FromSlash(versionPath(v.Hash)))); err != nil {
			t.Fatalf("version of %s has no content: %v", v.Path, err)
		}
	}
	// c's version is old, but its content stays for d: it comes back
	// with it until the next prune drops c alone.
	if !slices.Equal(paths, []string{"c", "b", "d"}) {
		t.Fatalf("versions after the crash: %v, want c, b and d", paths)
	}
	if _, err := os.Stat(filepath.Join(folder, filepath.FromSlash(versionPath(old)))); !os.IsNotExist(err) {
		t.Fatalf("the pruned content is still in the store: %v", err)
	}
	if err := n.pruneVersions(ctx); err != nil {
		t.Fatal(err)
	}
	if vs, _ := n.db.AllVersions(ctx); len(vs) != 2 {
		t.Fatalf("after the next prune: %+v, want b and d", vs)
	}
}
