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
	"sync/atomic"
	"testing"
	"time"

	"github.com/drive-node/drive-node/certs"
	"github.com/drive-node/drive-node/content"
	"github.com/drive-node/drive-node/internal/clock"
)

// TestWhileApplyingWaitsForTheApply checks when a peer's request for a
// content not held here waits: only while an apply is due or running, up
// to relayLook unless the apply wants the content, up to relayWait when it
// does, and never for a batch, for the peer this device asks for it, or
// for the only peer connected.
func TestWhileApplyingWaitsForTheApply(t *testing.T) {
	missing := fmt.Errorf("content: %w", fs.ErrNotExist)
	var h content.Hash
	h[0] = 1
	asker, other := certs.DeviceID{1}, certs.DeviceID{2}
	type probe struct {
		looks atomic.Int32
		held  atomic.Bool
		done  chan error
	}
	setup := func(t *testing.T) (*Node, *clock.Fake) {
		clk := clock.NewFake(time.Unix(0, 0))
		n := newNode(Config{Clock: clk, Logger: slog.New(slog.DiscardHandler)})
		n.peers[asker], n.peers[other] = &peerState{}, &peerState{}
		return n, clk
	}
	ask := func(n *Node, req request) *probe {
		p := &probe{done: make(chan error, 1)}
		go func() {
			p.done <- n.whileApplying(context.Background(), req, func() error {
				p.looks.Add(1)
				if p.held.Load() {
					return nil
				}
				return missing
			})
		}()
		return p
	}
	ended := func(t *testing.T, p *probe) error {
		t.Helper()
		select {
		case err := <-p.done:
			return err
		case <-time.After(10 * time.Second):
			t.Fatal("the request still waits")
			return nil
		}
	}
	// stillWaiting checks that the request has not ended: woken, it
	// looks once more instead.
	stillWaiting := func(t *testing.T, n *Node, p *probe) {
		t.Helper()
		before := p.looks.Load()
		deadline := time.After(10 * time.Second)
		for p.looks.Load() == before {
			n.applying.recorded.Fire()
			select {
			case err := <-p.done:
				t.Fatalf("the request ended (%v) while it should wait", err)
			case <-deadline:
				t.Fatal("the request neither waits nor ends")
			case <-time.After(time.Millisecond): // let it take the wake-up
			}
		}
	}
	armed := func(t *testing.T, clk *clock.Fake, timers int) {
		t.Helper()
		deadline := time.After(10 * time.Second)
		for {
			got, next := clk.Armed()
			if got >= timers {
				return
			}
			select {
			case <-next:
			case <-deadline:
				t.Fatalf("%d timers armed, want %d", got, timers)
			}
		}
	}
	req := request{h: h, from: asker, known: true}

	t.Run("idle: answered at once", func(t *testing.T) {
		n, _ := setup(t)
		p := ask(n, req)
		if err := ended(t, p); err != missing || p.looks.Load() != 1 {
			t.Fatalf("err %v after %d looks, want the miss after one", err, p.looks.Load())
		}
	})
	t.Run("placed by a chunk", func(t *testing.T) {
		n, clk := setup(t)
		n.kickApply()
		p := ask(n, req)
		armed(t, clk, 1)
		p.held.Store(true)
		n.applying.recorded.Fire()
		if err := ended(t, p); err != nil {
			t.Fatalf("err %v, want the content once a chunk recorded it", err)
		}
	})
	t.Run("pass ends without it", func(t *testing.T) {
		n, clk := setup(t)
		n.kickApply()
		p := ask(n, req)
		armed(t, clk, 1)
		n.applying.passStarted()
		n.applying.passEnded()
		if err := ended(t, p); err != missing {
			t.Fatalf("err %v, want the miss once the pass ended", err)
		}
	})
	t.Run("not wanted: bounded by relayLook", func(t *testing.T) {
		n, clk := setup(t)
		n.applying.passStarted()
		p := ask(n, req)
		armed(t, clk, 1)
		clk.Advance(relayLook - time.Millisecond)
		stillWaiting(t, n, p)
		clk.Advance(time.Millisecond)
		if err := ended(t, p); err != missing {
			t.Fatalf("err %v, want the miss after relayLook", err)
		}
	})
	t.Run("wanted: bounded by relayWait", func(t *testing.T) {
		n, clk := setup(t)
		n.applying.passStarted()
		p := ask(n, req)
		armed(t, clk, 1)
		release := n.wantContents([]content.Hash{h})
		defer release()
		armed(t, clk, 2)
		clk.Advance(relayWait - time.Millisecond)
		stillWaiting(t, n, p)
		clk.Advance(time.Millisecond)
		if err := ended(t, p); err != missing {
			t.Fatalf("err %v, want the miss after relayWait", err)
		}
	})
	for name, tweak := range map[string]func(n *Node, r *request){
		"one of a batch":             func(_ *Node, r *request) { r.inBatch = true },
		"from the peer asked for it": func(n *Node, _ *request) { n.relays.asks(h, asker) },
		"from the only peer":         func(n *Node, _ *request) { delete(n.peers, other) },
	} {
		t.Run(name+": answered at once", func(t *testing.T) {
			n, _ := setup(t)
			n.applying.passStarted()
			defer n.wantContents([]content.Hash{h})()
			r := req
			tweak(n, &r)
			p := ask(n, r)
			if err := ended(t, p); err != missing || p.looks.Load() != 1 {
				t.Fatalf("err %v after %d looks, want the miss after one", err, p.looks.Load())
			}
		})
	}
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

// Who brought an op's content is noted until its chunk is staged, also
// for ops whose content needs no fetch (a rename, a copy of a content
// here already): after a sync the receiver notes nobody, and the map's
// memory is given back.
func TestRelaysForgetBringersOnceDecided(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	pairFolders(t, a, b)
	addrA, addrB := freeUDPPort(t), freeUDPPort(t)
	startNodeConfig(t, a, addrA, nil, nil, addrB)
	nb := startNodeConfig(t, b, addrB, nil, nil, addrA)
	for i := range 20 {
		write(t, filepath.Join(a, fmt.Sprintf("f%02d.txt", i)), fmt.Sprintf("file %d", i))
	}
	waitFor(t, "the files on b", func() string { return sameTree(a, b) })
	write(t, filepath.Join(a, "copy.txt"), "file 3")
	if err := os.Rename(filepath.Join(a, "f04.txt"), filepath.Join(a, "moved.txt")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the copy and the move on b", func() string { return sameTree(a, b) })
	waitFor(t, "b to note no bringer", func() string {
		nb.relays.mu.Lock()
		defer nb.relays.mu.Unlock()
		if nb.relays.broughtBy != nil {
			return fmt.Sprintf("b still notes who brought %d contents", len(nb.relays.broughtBy))
		}
		return ""
	})
}
