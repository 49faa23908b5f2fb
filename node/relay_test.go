package node

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drive-node/drive-node/content"
	"github.com/drive-node/drive-node/internal/clock"
)

// TestWhileApplyingWaitsForTheApply checks when a request for a content
// not held here waits: only while an apply is due or running, until a
// chunk it records holds the content, the pass ends, or relayWait passes.
func TestWhileApplyingWaitsForTheApply(t *testing.T) {
	missing := fmt.Errorf("content: %w", fs.ErrNotExist)
	var h content.Hash
	ctx := context.Background()
	start := func(n *Node, held func() bool) (looks *int, done chan error) {
		looks, done = new(int), make(chan error, 1)
		go func() {
			done <- n.whileApplying(ctx, h, func() error {
				*looks++
				if held() {
					return nil
				}
				return missing
			})
		}()
		return looks, done
	}
	ended := func(t *testing.T, done chan error) error {
		t.Helper()
		select {
		case err := <-done:
			return err
		case <-time.After(10 * time.Second):
			t.Fatal("the request still waits")
			return nil
		}
	}
	waiting := func(t *testing.T, clk *clock.Fake, done chan error) {
		t.Helper()
		if armed, next := clk.Armed(); armed == 0 {
			select {
			case <-next: // the request's relayWait timer
			case err := <-done:
				t.Fatalf("the request ended (%v) while it should wait", err)
			case <-time.After(10 * time.Second):
				t.Fatal("the request did not wait")
			}
		}
		select {
		case err := <-done:
			t.Fatalf("the request ended (%v) while it should wait", err)
		default:
		}
	}

	t.Run("idle: answered at once", func(t *testing.T) {
		n := newNode(Config{Clock: clock.NewFake(time.Unix(0, 0)), Logger: slog.New(slog.DiscardHandler)})
		looks, done := start(n, func() bool { return false })
		if err := ended(t, done); err != missing || *looks != 1 {
			t.Fatalf("err %v after %d looks, want the miss after one", err, *looks)
		}
	})
	t.Run("placed by a chunk", func(t *testing.T) {
		clk := clock.NewFake(time.Unix(0, 0))
		n := newNode(Config{Clock: clk, Logger: slog.New(slog.DiscardHandler)})
		n.kickApply()
		n.applying.passStarted()
		placed := make(chan bool, 1)
		looks, done := start(n, func() bool {
			select {
			case <-placed:
				return true
			default:
				return false
			}
		})
		waiting(t, clk, done)
		placed <- true
		n.applying.recorded.Fire()
		if err := ended(t, done); err != nil || *looks != 2 {
			t.Fatalf("err %v after %d looks, want the content on the second", err, *looks)
		}
	})
	t.Run("pass ends without it", func(t *testing.T) {
		clk := clock.NewFake(time.Unix(0, 0))
		n := newNode(Config{Clock: clk, Logger: slog.New(slog.DiscardHandler)})
		n.kickApply()
		_, done := start(n, func() bool { return false })
		waiting(t, clk, done)
		n.applying.passStarted()
		n.applying.passEnded()
		if err := ended(t, done); err != missing {
			t.Fatalf("err %v, want the miss once the pass ended", err)
		}
	})
	t.Run("bounded by relayWait", func(t *testing.T) {
		clk := clock.NewFake(time.Unix(0, 0))
		n := newNode(Config{Clock: clk, Logger: slog.New(slog.DiscardHandler)})
		n.applying.passStarted()
		_, done := start(n, func() bool { return false })
		waiting(t, clk, done)
		clk.Advance(relayWait - time.Millisecond)
		select {
		case err := <-done:
			t.Fatalf("ended (%v) before relayWait", err)
		default:
		}
		clk.Advance(time.Millisecond)
		if err := ended(t, done); err != missing {
			t.Fatalf("err %v, want the miss after relayWait", err)
		}
	})
}

// TestRelayedContentComesFirstTime runs a chain a – b – c, where c is not
// paired with a, and a mesh of three: each file written on a reaches c,
// and no request for its content is told "not held" and retried seconds
// later (b waits until it has placed it), nor waits for a device that
// itself waits (in the mesh, b and c both lack it for a moment).
func TestRelayedContentComesFirstTime(t *testing.T) {
	for _, mesh := range []bool{false, true} {
		t.Run(map[bool]string{false: "chain", true: "mesh"}[mesh], func(t *testing.T) {
			a, b, c := t.TempDir(), t.TempDir(), t.TempDir()
			pairFolders(t, a, b)
			pairFolders(t, b, c)
			addrA, addrB := freeUDPPort(t), freeUDPPort(t)
			peersOfC := []string{addrB}
			if mesh {
				pairFolders(t, a, c)
				peersOfC = append(peersOfC, addrA)
			}
			nodes := []*runningNode{startNode(t, a, addrA), startNode(t, b, addrB, addrA), startNode(t, c, freeUDPPort(t), peersOfC...)}
			rng := rand.New(rand.NewPCG(1, 2))
			for i := range 4 {
				// Large enough that b is still fetching it when c asks.
				data := make([]byte, 4<<20)
				for j := range data {
					data[j] = byte(rng.Uint32())
				}
				name := fmt.Sprintf("relayed-%d.bin", i)
				if err := os.WriteFile(filepath.Join(a, name), data, 0o644); err != nil {
					t.Fatal(err)
				}
				for _, dir := range []string{b, c} {
					waitFor(t, name+" on "+dir, func() string {
						got, err := os.ReadFile(filepath.Join(dir, name))
						if err != nil || !bytes.Equal(got, data) {
							return "not yet"
						}
						return ""
					})
				}
			}
			for i, n := range nodes {
				logs := n.logs.String()
				for _, bad := range []string{"op stays pending", "not placed in time"} {
					if strings.Contains(logs, bad) {
						t.Fatalf("node %d logged %q:\n%s", i, bad, logs)
					}
				}
			}
		})
	}
}
