package node

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/drive-node/drive-node/certs"
)

// pausedFor returns the reason the node at folder gives in its status for
// being paused ("" when it is not).
func pausedFor(t *testing.T, folder string) string {
	t.Helper()
	st, err := ReadStatus(context.Background(), DefaultStateDir(folder, ""))
	if err != nil {
		return "status: " + err.Error()
	}
	return st.Paused
}

func TestPausesWhileStateDiskNearlyFull(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	pairFolders(t, a, b)
	var free atomic.Uint64
	free.Store(1 << 30)
	addrA, addrB := freeUDPPort(t), freeUDPPort(t)
	na := startNodeWith(t, a, addrA, func(n *Node) {
		n.diskFree = func(string) (uint64, error) { return free.Load(), nil }
	}, addrB)
	nb := startNode(t, b, addrB, addrA)
	write(t, filepath.Join(a, "before.txt"), "synced before the disk filled")
	waitFor(t, "initial sync", func() string { return sameTree(a, b) })

	free.Store(DefaultMinStateFree - 1)
	write(t, filepath.Join(a, "local.txt"), "made while a's state disk is nearly full")
	waitFor(t, "a pauses", func() string {
		if why := pausedFor(t, a); !strings.Contains(why, "disk nearly full") {
			return "paused: " + why
		}
		return ""
	})
	opsA := na.ops.Highest(na.ID())
	write(t, filepath.Join(b, "remote.txt"), "made on b meanwhile")
	waitFor(t, "b records its file", func() string {
		if nb.ops.Highest(nb.ID()) == 0 {
			return "not yet"
		}
		return ""
	})
	waitFor(t, "b's op reaches a and is held back", func() string {
		if !strings.Contains(na.logs.String(), "holding back ops from a peer") {
			return "not yet"
		}
		return ""
	})
	if got := na.ops.Highest(na.ID()); got != opsA {
		t.Fatalf("a logged %d local ops while paused", got-opsA)
	}
	if got := na.ops.Highest(nb.ID()); got != 0 {
		t.Fatalf("a persisted b's op %d while its state disk was nearly full", got)
	}
	if _, err := os.Stat(filepath.Join(a, "remote.txt")); err == nil {
		t.Fatal("a applied b's file while paused")
	}

	free.Store(1 << 30)
	waitFor(t, "both changes sync once there is room", func() string { return sameTree(a, b) })
	if _, err := os.Stat(filepath.Join(b, "local.txt")); err != nil {
		t.Fatalf("the file made while paused did not reach b: %v", err)
	}
	if why := pausedFor(t, a); why != "" {
		t.Fatalf("still paused: %s", why)
	}
}

func TestPausesWhileStateDirReplaced(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	pairFolders(t, a, b)
	addrA, addrB := freeUDPPort(t), freeUDPPort(t)
	na := startNode(t, a, addrA, addrB)
	startNode(t, b, addrB, addrA)
	write(t, filepath.Join(a, "before.txt"), "v1")
	waitFor(t, "initial sync", func() string { return sameTree(a, b) })

	// Another (empty) directory now sits where a's state dir was, as when
	// a disk mounts over it.
	stateDir := DefaultStateDir(a, "")
	away := stateDir + "-away"
	if err := os.Rename(stateDir, away); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(stateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a pauses", func() string {
		if !na.paused.Load() {
			return "not paused"
		}
		return ""
	})
	if why := pausedFor(t, a); !strings.Contains(why, "no drive-node database") {
		t.Fatalf("status with the empty state dir in place: %q", why)
	}
	write(t, filepath.Join(a, "during.txt"), "made while the state dir was elsewhere")
	ops := na.ops.Highest(na.ID())
	if entries, _ := os.ReadDir(stateDir); len(entries) != 0 {
		t.Fatalf("a wrote %d files into the directory that replaced its state dir: %v", len(entries), entries[0].Name())
	}

	if err := os.Remove(stateDir); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(away, stateDir); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the change made meanwhile syncs once the state dir is back", func() string { return sameTree(a, b) })
	if na.ops.Highest(na.ID()) == ops {
		t.Fatal("the file made while paused was not recorded")
	}
	if why := pausedFor(t, a); why != "" {
		t.Fatalf("still paused: %s", why)
	}
}

// TestRefusesNewIdentityForSyncedFolder opens a folder that was synced
// before with a state dir that holds nothing (a state disk that did not
// mount): the node must refuse, naming the state dir and the way out,
// rather than start as a new device; without the marker it starts.
func TestRefusesNewIdentityForSyncedFolder(t *testing.T) {
	ctx := context.Background()
	folder := t.TempDir()
	write(t, filepath.Join(folder, "kept.txt"), "synced before")
	n := startNode(t, folder, freeUDPPort(t))
	n.stop(t)

	empty := filepath.Join(t.TempDir(), "unmounted")
	cfg := Config{Folder: folder, StateDir: empty, NoDiscovery: true, Listen: "127.0.0.1:0"}
	_, err := Open(ctx, cfg)
	if !errors.Is(err, ErrNoIdentity) {
		t.Fatalf("Open with an empty state dir: %v, want ErrNoIdentity", err)
	}
	for _, want := range []string{empty, folder, MarkerName} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
	if _, err := os.Stat(filepath.Join(empty, certs.KeyFile)); err == nil {
		t.Fatal("a new identity was written anyway")
	}

	os.Remove(filepath.Join(folder, MarkerName))
	fresh, err := Open(ctx, cfg)
	if err != nil {
		t.Fatalf("Open after the marker was deleted: %v", err)
	}
	defer fresh.Close()
	if fresh.ID() == n.ID() {
		t.Fatal("the fresh state has the old identity")
	}
}

// syncedFolder runs a node on a new folder with one file until it has
// recorded it, and returns the folder and the node's ID.
func syncedFolder(t *testing.T) (string, certs.DeviceID) {
	t.Helper()
	folder := t.TempDir()
	write(t, filepath.Join(folder, "kept.txt"), "synced before")
	n := startNode(t, folder, freeUDPPort(t))
	waitFor(t, "the file is recorded", func() string {
		if n.ops.Count() == 0 {
			return "no op yet"
		}
		return ""
	})
	n.stop(t)
	return folder, n.ID()
}

// The CLI's id and pair must not make a new identity where the daemon
// refuses to: a state disk that did not mount would otherwise gain a key,
// and the next start would pass the daemon's check as a new device.
func TestIDAndPairKeepTheIdentityGuard(t *testing.T) {
	folder, _ := syncedFolder(t)
	empty := filepath.Join(t.TempDir(), "unmounted")
	if _, err := Identity(folder, empty); !errors.Is(err, ErrNoIdentity) {
		t.Errorf("Identity with the folder and an empty state dir: %v, want ErrNoIdentity", err)
	}
	peer := pairedPeer(t, t.TempDir(), "x")
	if err := Pair(context.Background(), folder, empty, peer.ID, "x"); !errors.Is(err, ErrNoIdentity) {
		t.Errorf("Pair with the folder and an empty state dir: %v, want ErrNoIdentity", err)
	}
	if _, err := os.Stat(filepath.Join(empty, certs.KeyFile)); err == nil {
		t.Fatal("a new identity was written")
	}
}

// A state dir with no history that meets a folder another state synced
// does not start, whoever made its identity (here `drive-node id --state`,
// which does not know the folder).
func TestNewStateRefusesAFolderSyncedElsewhere(t *testing.T) {
	ctx := context.Background()
	folder, old := syncedFolder(t)
	empty := filepath.Join(t.TempDir(), "unmounted")
	if _, err := Identity("", empty); err != nil {
		t.Fatal(err)
	}
	cfg := Config{Folder: folder, StateDir: empty, NoDiscovery: true, Listen: "127.0.0.1:0"}
	n, err := Open(ctx, cfg)
	if err == nil {
		n.Close()
		t.Fatalf("a new state (device %s) took over the folder device %s synced", n.ID(), old)
	}
	if !errors.Is(err, ErrFolderNotOurs) {
		t.Fatalf("Open: %v, want ErrFolderNotOurs", err)
	}
	for _, want := range []string{empty, folder, MarkerName} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}

	// Deleting the marker is how a user starts over as a new device.
	os.Remove(filepath.Join(folder, MarkerName))
	n, err = Open(ctx, cfg)
	if err != nil {
		t.Fatalf("Open after the marker was deleted: %v", err)
	}
	n.Close()
}

// The marker's record and file are written in two steps; a first start
// cut between them leaves a recorded marker and no file, and the next
// start writes the file instead of pausing for good. A state with history
// whose database was lost adopts the folder's marker.
func TestMarkerAfterACutFirstStartAndALostDatabase(t *testing.T) {
	ctx := context.Background()
	folder := t.TempDir()
	n := startNode(t, folder, freeUDPPort(t))
	n.stop(t)
	marker := filepath.Join(folder, MarkerName)
	want := readMarker(marker)
	if want == "" {
		t.Fatal("the first start wrote no marker")
	}
	os.Remove(marker)
	n = startNode(t, folder, freeUDPPort(t))
	if got := readMarker(marker); got != want {
		t.Fatalf("marker after the cut first start: %q, want %q written again", got, want)
	}
	if n.paused.Load() {
		t.Fatal("paused although nothing was ever synced")
	}
	n.stop(t)

	folder2, id := syncedFolder(t)
	state := DefaultStateDir(folder2, "")
	for _, name := range []string{dbName, dbName + "-wal", dbName + "-shm"} {
		os.Remove(filepath.Join(state, name))
	}
	again, err := Open(ctx, Config{Folder: folder2, NoDiscovery: true, Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatalf("Open after the database was lost: %v", err)
	}
	defer again.Close()
	if again.ID() != id {
		t.Fatalf("identity %s after the database was lost, want %s", again.ID(), id)
	}
	if got, _, _ := again.db.Meta(ctx, metaMarker); got != readMarker(filepath.Join(folder2, MarkerName)) {
		t.Fatalf("recorded marker %q, want the folder's", got)
	}
}

// A folder that passes the checks but cannot be opened again (unmounted
// meanwhile, no permission) keeps the node paused, saying why, until it
// can be opened; the daemon does not end. The pause comes from a full
// state disk, found when a change is about to be recorded: an idle node
// runs no periodic pass that would find it sooner.
func TestFolderThatCannotBeReopenedKeepsThePause(t *testing.T) {
	a := t.TempDir()
	var free atomic.Uint64
	free.Store(1 << 30)
	var refuse atomic.Bool
	n := startNodeWith(t, a, freeUDPPort(t), func(n *Node) {
		n.diskFree = func(string) (uint64, error) { return free.Load(), nil }
		n.openFolder = func(path string) (Folder, error) {
			if refuse.Load() {
				return nil, &os.PathError{Op: "openat", Path: path, Err: os.ErrPermission}
			}
			return OpenRootFolder(path)
		}
	})
	refuse.Store(true)
	free.Store(DefaultMinStateFree - 1)
	write(t, filepath.Join(a, "before.txt"), "a change to record while the state disk is full")
	waitFor(t, "a pauses", func() string {
		if !n.paused.Load() {
			return "not paused"
		}
		return ""
	})
	free.Store(1 << 30)
	waitFor(t, "the pause names the folder that cannot be opened", func() string {
		if why := pausedFor(t, a); !strings.Contains(why, "cannot be opened") || !strings.Contains(why, a) {
			return "paused: " + why
		}
		return ""
	})
	select {
	case err := <-n.done:
		t.Fatalf("the node stopped (%v) instead of waiting for the folder", err)
	default:
	}
	refuse.Store(false)
	waitFor(t, "resumes once the folder opens", func() string {
		if n.paused.Load() {
			return "still paused"
		}
		return ""
	})
	write(t, filepath.Join(a, "after.txt"), "recorded after the pause")
	waitFor(t, "a change after the pause is recorded", func() string {
		if n.ops.Highest(n.ID()) == 0 {
			return "not yet"
		}
		return ""
	})
}
