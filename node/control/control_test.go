package control

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/drive-node/drive-node/certs"
	"github.com/drive-node/drive-node/node"
)

// fakeNode answers as a node would, and remembers what it was asked.
type fakeNode struct {
	asked   []string
	restore node.RestoreRequest
	paused  bool
	events  *node.Events
}

func (f *fakeNode) History(_ context.Context, p string) ([]node.HistoryEntry, error) {
	f.asked = append(f.asked, "history "+p)
	if p == "missing" {
		return nil, errors.New(`unsafe path "missing"`)
	}
	return []node.HistoryEntry{{Path: p, Change: "created or edited", Hash: "ab", Where: []string{"here"}}}, nil
}

func (f *fakeNode) Restore(_ context.Context, req node.RestoreRequest) ([]node.RestoreResult, error) {
	f.restore = req
	return []node.RestoreResult{{Path: req.Paths[0], Outcome: node.Restored}}, nil
}

func (f *fakeNode) Held(context.Context) ([]node.HeldRun, error) {
	return []node.HeldRun{{Origin: "B", Files: 3}}, nil
}

func (f *fakeNode) Approve(context.Context) ([]node.HeldRun, error) { return nil, node.ErrNothingHeld }

func (f *fakeNode) Reject(context.Context) ([]node.HeldRun, int, error) {
	return []node.HeldRun{{Origin: "B", Files: 3}}, 3, nil
}

func (f *fakeNode) Revert(context.Context) ([]node.RestoreResult, error) {
	return []node.RestoreResult{{Path: "local.txt", Outcome: node.Removed}}, nil
}

func (f *fakeNode) Override(context.Context) (int, error) { return 0, node.ErrNotSendOnly }

func (f *fakeNode) Differences(_ context.Context, peer certs.DeviceID, limit int) ([]node.Difference, error) {
	f.asked = append(f.asked, fmt.Sprintf("differences %s %d", peer.Short(), limit))
	return []node.Difference{{Path: "x.log", Here: "absent", There: "file", Why: node.WhyIgnored}}, nil
}

func TestSocketServesTheNode(t *testing.T) {
	dir, err := os.MkdirTemp("", "ctl") // short: a socket path has a length limit
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	// A socket left by a daemon that crashed is replaced.
	if err := os.WriteFile(filepath.Join(dir, SocketName), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	f := &fakeNode{}
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, f, dir, slog.New(slog.DiscardHandler)) }()
	var c *Client
	deadline := time.Now().Add(10 * time.Second)
	for c == nil {
		if c, err = Dial(ctx, dir); err != nil && time.Now().After(deadline) {
			t.Fatalf("dial: %v", err)
		}
		time.Sleep(10 * time.Millisecond) // the server starts in its own goroutine
	}
	st, err := os.Stat(filepath.Join(dir, SocketName))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode: %v %v", st.Mode(), err)
	}

	hist, err := c.History(ctx, "docs/a.txt")
	if err != nil || len(hist) != 1 || hist[0].Path != "docs/a.txt" || hist[0].Where[0] != "here" {
		t.Fatalf("history: %+v %v", hist, err)
	}
	if _, err := c.History(ctx, "missing"); err == nil || err.Error() != `unsafe path "missing"` {
		t.Fatalf("history's error: %v", err)
	}
	at := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	res, err := c.Restore(ctx, node.RestoreRequest{Paths: []string{"docs"}, At: at})
	if err != nil || len(res) != 1 || res[0].Outcome != node.Restored || !f.restore.At.Equal(at) {
		t.Fatalf("restore: %+v %v (asked %+v)", res, err, f.restore)
	}
	if held, err := c.Held(ctx); err != nil || len(held) != 1 || held[0].Files != 3 {
		t.Fatalf("held: %+v %v", held, err)
	}
	if _, err := c.Approve(ctx); err == nil || err.Error() != node.ErrNothingHeld.Error() {
		t.Fatalf("approve: %v", err)
	}
	if runs, answered, err := c.Reject(ctx); err != nil || len(runs) != 1 || answered != 3 {
		t.Fatalf("reject: %+v %d %v", runs, answered, err)
	}
	if res, err := c.Revert(ctx); err != nil || len(res) != 1 || res[0].Path != "local.txt" || res[0].Outcome != node.Removed {
		t.Fatalf("revert: %+v %v", res, err)
	}
	if _, err := c.Override(ctx); err == nil || err.Error() != node.ErrNotSendOnly.Error() {
		t.Fatalf("override on a device that is not send-only: %v", err)
	}
	peer := certs.DeviceID{1, 2, 3}
	diffs, err := c.Differences(ctx, peer, 5)
	if err != nil || len(diffs) != 1 || diffs[0].Why != node.WhyIgnored || f.asked[len(f.asked)-1] != "differences "+peer.Short()+" 5" {
		t.Fatalf("differences: %+v %v (asked %v)", diffs, err, f.asked)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("serve: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, SocketName)); !os.IsNotExist(err) {
		t.Fatalf("the socket outlives the daemon: %v", err)
	}
	if _, err := Dial(context.Background(), dir); err == nil {
		t.Fatal("dial after the daemon stopped succeeded")
	}
}
