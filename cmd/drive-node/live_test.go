package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/drive-node/drive-node/certs"
	"github.com/drive-node/drive-node/internal/clock"
	"github.com/drive-node/drive-node/node"
)

// lineWriter hands each write to a channel.
type lineWriter chan string

func (w lineWriter) Write(b []byte) (int, error) {
	w <- string(b)
	return len(b), nil
}

func TestStatusWatchRedrawsEachSecond(t *testing.T) {
	dir := t.TempDir()
	peer, err := certs.LoadOrCreate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := node.Pair(ctx, "", dir, peer.ID, "laptop"); err != nil { // makes the database
		t.Fatal(err)
	}
	clk := clock.NewFake(time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC))
	out := make(lineWriter, 8)
	done := make(chan error, 1)
	go func() { done <- watchStatus(ctx, clk, time.Second, dir, true, out) }()
	next := func() node.Status {
		t.Helper()
		select {
		case line := <-out:
			var st node.Status
			if err := json.Unmarshal([]byte(line), &st); err != nil || !strings.HasSuffix(line, "\n") {
				t.Fatalf("not a JSON line: %q %v", line, err)
			}
			return st
		case <-time.After(20 * time.Second):
			t.Fatal("no redraw")
		}
		return node.Status{}
	}
	for range 3 {
		if st := next(); len(st.Peers) != 1 || st.Peers[0].Name != "laptop" || st.Running {
			t.Fatalf("status: %+v", st)
		}
		select {
		case line := <-out:
			t.Fatalf("redrawn before the second was up: %q", line)
		default:
		}
		clk.Advance(time.Second)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("watch did not stop when interrupted")
	}
}
