package node

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/drive-node/drive-node/content"
	"github.com/drive-node/drive-node/state"
)

// withRole starts a node in role r.
func withRole(r Role) func(*Config) {
	return func(c *Config) { c.Role = r }
}

// localChanges returns the paths n keeps as local changes.
func localChanges(t *testing.T, n *runningNode) []string {
	t.Helper()
	list, err := n.LocalChangesList(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, c := range list {
		out = append(out, c.Path)
	}
	return out
}

// TestReceiveOnlyKeepsLocalChangesToItself: a receive-only B applies A's
// changes; its own edit and new file stay on B, listed, and never reach
// A; revert puts A's version back and keeps B's edit in the version
// store; an edit of A's over a local change replaces it.
func TestReceiveOnlyKeepsLocalChangesToItself(t *testing.T) {
	ctx := context.Background()
	a, b := t.TempDir(), t.TempDir()
	pairFolders(t, a, b)
	addrA, addrB := freeUDPPort(t), freeUDPPort(t)
	write(t, filepath.Join(a, "a.txt"), "v1")
	ra := startNode(t, a, addrA, addrB)
	rb := startNodeConfig(t, b, addrB, withRole(ReceiveOnly), nil, addrA)
	waitFor(t, "a.txt reaches B", func() string { return fileIs(filepath.Join(b, "a.txt"), "v1") })

	write(t, filepath.Join(b, "a.txt"), "B's local edit")
	write(t, filepath.Join(b, "b-only.txt"), "made on B")
	waitFor(t, "B lists its local changes", func() string {
		return listIs(localChanges(t, rb), "a.txt", "b-only.txt")
	})
	write(t, filepath.Join(a, "c.txt"), "later on A")
	waitFor(t, "A's later change reaches B", func() string { return fileIs(filepath.Join(b, "c.txt"), "later on A") })
	if msg := fileIs(filepath.Join(a, "a.txt"), "v1") + fileIs(filepath.Join(a, "b-only.txt"), ""); msg != "" {
		t.Fatalf("B's local changes reached A: %s", msg)
	}
	if got := ra.ops.Highest(rb.ID()); got != 0 {
		t.Fatalf("A's log holds %d ops of the receive-only B", got)
	}

	res, err := rb.Revert(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 2 {
		t.Fatalf("revert did %+v; want 2 paths", res)
	}
	if msg := fileIs(filepath.Join(b, "a.txt"), "v1") + fileIs(filepath.Join(b, "b-only.txt"), ""); msg != "" {
		t.Fatalf("after revert: %s", msg)
	}
	if _, err := os.Stat(filepath.Join(b, versionPath(content.Sum([]byte("B's local edit"))))); err != nil {
		t.Fatalf("B's reverted edit is not in its version store: %v", err)
	}
	waitFor(t, "B lists no local change after revert", func() string { return listIs(localChanges(t, rb)) })

	// A's edit over a local change: A's version wins on B.
	write(t, filepath.Join(b, "c.txt"), "B's second edit")
	waitFor(t, "B lists c.txt", func() string { return listIs(localChanges(t, rb), "c.txt") })
	write(t, filepath.Join(a, "c.txt"), "A's edit")
	waitFor(t, "A's edit replaces B's local one", func() string { return fileIs(filepath.Join(b, "c.txt"), "A's edit") })
	waitFor(t, "B lists no local change", func() string { return listIs(localChanges(t, rb)) })
	if msg := sameTree(a, b); msg != "" {
		t.Fatalf("A and B differ: %s", msg)
	}
}

// TestSendOnlyAppliesNoPeerChange: a send-only A's files reach B; B's
// edit and new file are logged on A and not applied, and listed as
// differing; override makes B match A again.
func TestSendOnlyAppliesNoPeerChange(t *testing.T) {
	ctx := context.Background()
	a, b := t.TempDir(), t.TempDir()
	pairFolders(t, a, b)
	addrA, addrB := freeUDPPort(t), freeUDPPort(t)
	write(t, filepath.Join(a, "m.txt"), "master")
	ra := startNodeConfig(t, a, addrA, withRole(SendOnly), nil, addrB)
	startNode(t, b, addrB, addrA)
	waitFor(t, "m.txt reaches B", func() string { return fileIs(filepath.Join(b, "m.txt"), "master") })

	write(t, filepath.Join(b, "m.txt"), "B's edit")
	write(t, filepath.Join(b, "p.txt"), "made on B")
	diff := func() []string {
		d, _, err := differing(ctx, ra.db.(*state.DB), whySendOnly, nil, 10)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, x := range d {
			out = append(out, x.Path)
		}
		return out
	}
	waitFor(t, "A lists what B changed", func() string { return listIs(diff(), "m.txt", "p.txt") })
	if msg := fileIs(filepath.Join(a, "m.txt"), "master") + fileIs(filepath.Join(a, "p.txt"), ""); msg != "" {
		t.Fatalf("the send-only A applied B's changes: %s", msg)
	}
	n, err := ra.Override(ctx)
	if err != nil || n != 2 {
		t.Fatalf("override answered %d paths (%v); want 2", n, err)
	}
	waitFor(t, "B matches A after the override", func() string { return sameTree(a, b) })
	if got := diff(); len(got) != 0 {
		t.Fatalf("A still lists %v as differing", got)
	}
}

// listIs returns "" when got is want, or what got is.
func listIs(got []string, want ...string) string {
	if slices.Equal(got, want) {
		return ""
	}
	return fmt.Sprintf("%q", got)
}

// TestRoleKeptAcrossRestarts: a mirror restarted without a role is still
// a mirror, and its local change still unsent; started as send-receive,
// it sends the change. A receive-only device without a version store is
// refused, naming why.
func TestRoleKeptAcrossRestarts(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	pairFolders(t, a, b)
	addrA, addrB := freeUDPPort(t), freeUDPPort(t)
	write(t, filepath.Join(a, "doc.txt"), "A's")
	ra := startNode(t, a, addrA, addrB)
	rb := startNodeConfig(t, b, addrB, withRole(ReceiveOnly), nil, addrA)
	waitFor(t, "doc.txt reaches B", func() string { return fileIs(filepath.Join(b, "doc.txt"), "A's") })
	write(t, filepath.Join(b, "doc.txt"), "B's local edit")
	waitFor(t, "B lists its local change", func() string { return listIs(localChanges(t, rb), "doc.txt") })
	rb.stop(t)

	rb = startNode(t, b, addrB, addrA) // no role given
	if rb.cfg.Role != ReceiveOnly {
		t.Fatalf("restarted without --role, B is %q; want receive-only", rb.cfg.Role)
	}
	write(t, filepath.Join(a, "later.txt"), "later")
	waitFor(t, "A's later file reaches B", func() string { return fileIs(filepath.Join(b, "later.txt"), "later") })
	if msg := fileIs(filepath.Join(a, "doc.txt"), "A's"); msg != "" {
		t.Fatalf("B's local change reached A after a restart: %s", msg)
	}
	if got := localChanges(t, rb); !slices.Equal(got, []string{"doc.txt"}) {
		t.Fatalf("after a restart B lists %q", got)
	}
	rb.stop(t)

	rb = startNodeConfig(t, b, addrB, withRole(SendReceive), nil, addrA)
	waitFor(t, "B's edit reaches A once B sends", func() string { return fileIs(filepath.Join(a, "doc.txt"), "B's local edit") })
	if got := localChanges(t, rb); len(got) != 0 {
		t.Fatalf("a send-receive B lists local changes %q", got)
	}
	rb.stop(t)
	ra.stop(t)

	_, err := Open(context.Background(), Config{Folder: b, Role: ReceiveOnly, Versions: "off", Logger: slog.New(slog.DiscardHandler)})
	if err == nil || !strings.Contains(err.Error(), "--versions on") {
		t.Fatalf("a receive-only device without versions opened: %v", err)
	}
}
