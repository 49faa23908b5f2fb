package node

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
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
		t.Fatalf("a wrote %d files into the directory that replaced its state dir", len(entries))
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
