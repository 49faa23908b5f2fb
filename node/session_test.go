package node

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/drive-node/drive-node/certs"
	"github.com/drive-node/drive-node/content"
	"github.com/drive-node/drive-node/internal/goroutines"
	"github.com/drive-node/drive-node/oplog"
	"github.com/drive-node/drive-node/quicnet"
	"github.com/drive-node/drive-node/wire"
)

// TestSessionBothWaysBeyondStreamWindow has two nodes that each logged
// more ops than the control stream's receive window holds (30 MiB each;
// the window starts at 2 MiB and grows to 16 MiB) before they first meet.
// Both state disks are nearly full when they connect, so each holds back
// the first Ops frame it receives, stops reading, and each sender fills
// the other's window and blocks in the middle of a frame. Once the disks
// have room, each receive loop persists its frame and acknowledges it:
// that must not wait for its own blocked sender, or neither side reads
// again and the connection hangs (keep-alives stop the idle timeout from
// ending it). The hold-back makes the timing certain; without it the same
// hang needs both receive loops to fall behind at once.
func TestSessionBothWaysBeyondStreamWindow(t *testing.T) {
	if testing.Short() {
		t.Skip("moves 2 × 30 MiB of ops")
	}
	// 10,000 ops of about 3 KiB each way, in frames of 6 MiB.
	const ops, pathLen = 10000, 3000
	var free atomic.Uint64
	free.Store(1 << 40)
	setup := func(name string) func(*Node) {
		return func(n *Node) {
			n.diskFree = func(string) (uint64, error) { return free.Load(), nil }
			batch := make([]oplog.Op, ops)
			for i := range batch {
				// Components of 250 bytes (the limit is 255), unique per op.
				p := fmt.Sprintf("%s/%06d", name, i)
				for len(p) < pathLen {
					p += "/" + strings.Repeat("x", 250)
				}
				batch[i] = oplog.Op{Kind: oplog.KindDelete, Path: p, MTime: 1}
			}
			if _, err := n.ops.Append(context.Background(), batch...); err != nil {
				t.Fatal(err)
			}
		}
	}
	a, b := t.TempDir(), t.TempDir()
	pairFolders(t, a, b)
	// Neither dials the other by itself: the test connects them once both
	// state disks are full.
	na := startNodeWith(t, a, freeUDPPort(t), setup("a"))
	nb := startNodeWith(t, b, freeUDPPort(t), setup("b"))
	free.Store(DefaultMinStateFree - 1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := na.tr.Dial(ctx, netip.MustParseAddrPort(nb.addr), nb.ID()); err != nil {
		t.Fatal(err)
	}
	for _, n := range []*runningNode{na, nb} {
		waitFor(t, n.folder+" holds back the first frame", func() string {
			if !strings.Contains(n.logs.String(), "holding back ops from a peer") {
				return "not yet"
			}
			return ""
		})
	}
	// Both senders fill the other's window and block mid-frame: each is
	// parked in a control stream write, having sent more than the
	// connection's initial window (so the other read its first frame
	// before holding back), and sends nothing more from one look to the
	// next.
	peerOf := func(n, other *runningNode) *quicnet.Peer {
		n.peersMu.Lock()
		defer n.peersMu.Unlock()
		if ps := n.peers[other.ID()]; ps != nil {
			return ps.p
		}
		return nil
	}
	var lastSent [2]uint64
	waitFor(t, "both senders blocked on the other's window", func() string {
		parked := goroutines.Count("chan receive", "(*Node).sendOps", "(*Peer).Send", "(*SendStream).write")
		why := fmt.Sprintf("%d senders parked in a stream write", parked)
		blocked := parked == 2
		for i, pair := range [][2]*runningNode{{na, nb}, {nb, na}} {
			p := peerOf(pair[0], pair[1])
			if p == nil {
				return pair[0].folder + " has no session"
			}
			sent := p.Stats().BytesSent
			why += fmt.Sprintf("; %s sent %d bytes, %d at the last look", pair[0].folder, sent, lastSent[i])
			blocked = blocked && sent > 4<<20 && sent == lastSent[i]
			lastSent[i] = sent
		}
		if blocked {
			return ""
		}
		return why
	})
	free.Store(1 << 40)

	start := time.Now()
	deadline := start.Add(90 * time.Second)
	for !maps.Equal(na.ops.Vector(), nb.ops.Vector()) {
		if time.Now().After(deadline) {
			t.Fatalf("logs did not converge in 90 s (control stream deadlocked?): a %v, b %v", na.ops.Vector(), nb.ops.Vector())
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("2 × %d ops of %d bytes exchanged in %v after the disks had room", ops, pathLen, time.Since(start).Round(time.Millisecond))
}

// TestOpsFromAPeerAreNotSentBack: ops a peer sent are in its log already;
// the node must not stream them back to it (it did, from the peer's Hello
// vector on, doubling the control stream's traffic in every transfer).
func TestOpsFromAPeerAreNotSentBack(t *testing.T) {
	folder := t.TempDir()
	peer := pairedPeer(t, folder, "peer")
	n := startNode(t, folder, freeUDPPort(t))
	data := []byte("from the peer")
	src := &memSource{data: map[content.Hash][]byte{content.Sum(data): data}}
	var ops []oplog.Op
	for i := range 3 {
		ops = append(ops, oplog.Op{Origin: peer.ID, Seq: uint64(i + 1), Lamport: uint64(i + 1), Kind: oplog.KindWrite,
			Path: fmt.Sprintf("f%d.txt", i), Hash: content.Sum(data), Size: int64(len(data)), Mode: 0o644, MTime: 1})
	}
	echoed := make(chan oplog.Op, 16)
	scriptPeer(t, peer, n, src, ops, func(m wire.Message) {
		if o, ok := m.(*wire.Ops); ok {
			for _, op := range o.Ops {
				if op.Origin == peer.ID {
					echoed <- op
				}
			}
		}
	})
	waitFor(t, "the peer's ops applied", func() string {
		if applied, _ := n.db.Applied(context.Background()); applied[peer.ID] != 3 {
			return fmt.Sprintf("applied %d", applied[peer.ID])
		}
		return ""
	})
	// The node's own op made after them (sent to the peer) shows the
	// sender ran after the peer's ops were in the log.
	write(t, filepath.Join(folder, "own.txt"), "the node's own")
	select {
	case op := <-echoed:
		t.Fatalf("the node sent the peer's own op back: %s", op)
	case <-time.After(time.Second):
	}
}

// helloOnlyPeer listens as the device id: it answers a session with a
// Hello and reads until the connection ends.
func helloOnlyPeer(t *testing.T, id *certs.Identity) *quicnet.Transport {
	t.Helper()
	tr, err := quicnet.Listen(context.Background(), quicnet.Config{
		Identity: id, Listen: "127.0.0.1:0", Content: &memSource{},
		Paired: func(certs.DeviceID) bool { return true },
		OnPeer: func(ctx context.Context, p *quicnet.Peer) {
			p.Send(ctx, &wire.Hello{Version: wire.ProtocolVersion, Name: "peer"})
			for {
				if _, err := p.Recv(ctx); err != nil {
					return
				}
			}
		},
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

// A peer that restarts connects again while its old connection is still
// ending: the old session's exit, coming after the new session began,
// must not make status show the peer disconnected.
func TestReplacedConnectionStaysConnectedInStatus(t *testing.T) {
	ctx := context.Background()
	folder := t.TempDir()
	peer := pairedPeer(t, folder, "peer")
	n := startNode(t, folder, freeUDPPort(t))
	current := func() *quicnet.Peer {
		n.peersMu.Lock()
		defer n.peersMu.Unlock()
		if ps, ok := n.peers[peer.ID]; ok {
			return ps.p
		}
		return nil
	}
	dial := func() {
		if _, err := helloOnlyPeer(t, peer).Dial(ctx, netip.MustParseAddrPort(n.addr), n.ID()); err != nil {
			t.Fatal(err)
		}
	}
	dial()
	waitFor(t, "the first session", func() string {
		if current() == nil {
			return "none"
		}
		return ""
	})
	old := current()
	dial()
	waitFor(t, "the second session", func() string {
		if c := current(); c == nil || c == old {
			return "not yet"
		}
		return ""
	})
	n.peerDown(old) // what the old session runs on its way out
	row, _, err := n.db.Peer(ctx, peer.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !row.Connected || row.Address == "" {
		t.Fatalf("a session is live, but status says connected=%v address=%q", row.Connected, row.Address)
	}
}
