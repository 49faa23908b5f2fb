package node

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/drive-node/drive-node/content"
	"github.com/drive-node/drive-node/oplog"
	"github.com/drive-node/drive-node/state"
	"github.com/drive-node/drive-node/watcher"
)

// TestStaleObservationsDoNotUndoPeerOps hands recordLocal what a watcher
// saw before a peer's ops were applied: a file the peer created as absent,
// and a file the peer then edited with its older content. Recording either
// as it stands would delete the peer's new file or revert its edit on every
// device; the node must look again and log nothing for them.
func TestStaleObservationsDoNotUndoPeerOps(t *testing.T) {
	ctx := context.Background()
	folder := t.TempDir()
	peer := pairedPeer(t, folder, "peer")
	n := startNode(t, folder, freeUDPPort(t))

	// This device writes edit.txt; the watcher's look at it is kept.
	write(t, filepath.Join(folder, "edit.txt"), "this device's version")
	var mine state.File
	waitFor(t, "edit.txt recorded", func() string {
		f, ok, _ := n.db.File(ctx, "edit.txt")
		if !ok {
			return "not yet"
		}
		mine = f
		return ""
	})
	older, err := n.observe(ctx, "edit.txt")
	if err != nil || len(older) != 1 {
		t.Fatalf("observe: %v %v", older, err)
	}

	// The peer, having seen that version, edits it and creates a file.
	edit, created := []byte("the peer's edit, made after seeing this device's"), []byte("the peer's new file")
	src := &memSource{data: map[content.Hash][]byte{content.Sum(edit): edit, content.Sum(created): created}}
	at := time.Now().Add(time.Second).UnixNano()
	ops := []oplog.Op{
		{Origin: peer.ID, Seq: 1, Lamport: mine.Lamport + 1, Kind: oplog.KindWrite, Path: "edit.txt", Parent: mine.Version,
			Hash: content.Sum(edit), Size: int64(len(edit)), Mode: 0o644, MTime: at},
		{Origin: peer.ID, Seq: 2, Lamport: mine.Lamport + 2, Kind: oplog.KindWrite, Path: "new.txt",
			Hash: content.Sum(created), Size: int64(len(created)), Mode: 0o644, MTime: at},
	}
	sendAsPeer(t, peer, n, src, ops)
	waitFor(t, "the peer's ops applied", func() string {
		if got, _ := n.db.Applied(ctx); got[peer.ID] < 2 {
			return "not yet"
		}
		return ""
	})

	own := n.ops.Highest(n.ID())
	stale := map[string][]watcher.Observation{
		"new.txt absent":     {{Path: "new.txt"}},
		"edit.txt as it was": older,
		"both in one batch":  append([]watcher.Observation{{Path: "new.txt"}}, older...),
	}
	for name, obs := range stale {
		if err := n.recordLocal(ctx, obs); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got := n.ops.Highest(n.ID()); got != own {
			t.Fatalf("a stale look (%s) was logged as %d op(s) of this device", name, got-own)
		}
	}
	for p, want := range map[string][]byte{"edit.txt": edit, "new.txt": created} {
		if b, _ := os.ReadFile(filepath.Join(folder, p)); string(b) != string(want) {
			t.Fatalf("%s holds %q, want the peer's %q", p, b, want)
		}
		if f, ok, _ := n.db.File(ctx, p); !ok || f.Deleted || f.Hash != content.Sum(want) {
			t.Fatalf("%s recorded as %+v, want the peer's version", p, f)
		}
	}

	// A look that is still true is logged as it stands.
	os.Remove(filepath.Join(folder, "new.txt"))
	if err := n.recordLocal(ctx, []watcher.Observation{{Path: "new.txt"}}); err != nil {
		t.Fatal(err)
	}
	if f, ok, _ := n.db.File(ctx, "new.txt"); !ok || !f.Deleted {
		t.Fatalf("a true removal was not recorded: %+v", f)
	}
}
