package node

import (
	"context"
	"log/slog"
	"net/netip"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/drive-node/drive-node/certs"
	"github.com/drive-node/drive-node/quicnet"
	"github.com/drive-node/drive-node/wire"
)

// TestDigestRequestsFromAFloodingPeer: a paired peer that sends walk
// requests without pause, for odd paths among them, and answers nobody
// asked for, gets every request answered (listed, no such directory, or
// busy), its stray answers dropped, and the node's own digest; the node
// keeps its session and serves a plain request afterwards.
func TestDigestRequestsFromAFloodingPeer(t *testing.T) {
	folder := t.TempDir()
	write(t, filepath.Join(folder, "docs/a.txt"), "a")
	peer := pairedPeer(t, folder, "flooder")
	n := startNodeWith(t, folder, freeUDPPort(t), fastDigests)
	waitFor(t, "a digest", func() string {
		if _, ok := n.CurrentDigest(); !ok {
			return "none yet"
		}
		return ""
	})

	const flood = 200
	var (
		mu       sync.Mutex
		answers  = map[uint64]wire.DigestStatus{}
		listing  *wire.DigestResponse
		announce *wire.StateDigest
		conn     *quicnet.Peer
	)
	tr, err := quicnet.Listen(context.Background(), quicnet.Config{
		Identity: peer, Listen: "127.0.0.1:0", Content: &memSource{},
		Paired: func(certs.DeviceID) bool { return true },
		OnPeer: func(ctx context.Context, p *quicnet.Peer) {
			p.Send(ctx, &wire.Hello{Version: wire.ProtocolVersion, Name: "flooder"})
			mu.Lock()
			conn = p
			mu.Unlock()
			go func() {
				p.Send(ctx, &wire.DigestResponse{ID: 99, Entries: []wire.DigestEntry{{Name: "x", Kind: wire.DigestFile}}})
				p.Send(ctx, &wire.StateDigest{Root: [32]byte{1}, Files: 1 << 40})
				for i := range uint64(flood) {
					dir := []string{"", "docs", "../etc", "docs/a.txt", "missing"}[i%5]
					p.Send(ctx, &wire.DigestRequest{ID: i, Dir: dir, After: string(make([]byte, wire.MaxDigestName))})
				}
			}()
			for {
				m, err := p.Recv(ctx)
				if err != nil {
					return
				}
				mu.Lock()
				switch m := m.(type) {
				case *wire.DigestResponse:
					answers[m.ID] = m.Status
					if m.ID == flood {
						listing = m
					}
				case *wire.StateDigest:
					announce = m
				}
				mu.Unlock()
			}
		},
		Logger: slog.New(slog.NewTextHandler(&testLog{}, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	if _, err := tr.Dial(context.Background(), netip.MustParseAddrPort(n.addr), n.ID()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the node's digest reaches the peer", func() string {
		mu.Lock()
		defer mu.Unlock()
		if announce == nil {
			return "no state digest"
		}
		return ""
	})
	// Not every request need be answered (a full outbox drops answers),
	// but the session goes on: a later plain request is answered with the
	// root's listing.
	deadline := time.Now().Add(20 * time.Second)
	for {
		mu.Lock()
		got, p := listing, conn
		mu.Unlock()
		if got != nil && got.Status == wire.DigestListed {
			if len(got.Entries) != 1 || got.Entries[0].Name != "docs" || got.Entries[0].Kind != wire.DigestDir {
				t.Fatalf("the root's listing: %+v", got.Entries)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no listing of the root after the flood: %+v", got)
		}
		n.peersMu.Lock()
		ps := n.peers[peer.ID]
		n.peersMu.Unlock()
		if ps == nil {
			t.Fatal("the node dropped the flooding peer")
		}
		p.Send(context.Background(), &wire.DigestRequest{ID: flood})
		time.Sleep(100 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	busy, noDir := 0, 0
	for _, st := range answers {
		switch st {
		case wire.DigestBusy:
			busy++
		case wire.DigestNoDir:
			noDir++
		}
	}
	if busy == 0 || noDir == 0 {
		t.Errorf("of %d answers to %d requests, %d busy and %d no-such-directory; want some of each", len(answers), flood, busy, noDir)
	}
	if root := n.peerDigestRoot(peer.ID); len(root) != 64 || root[:4] != "0100" {
		t.Errorf("the peer's announced root is not kept: %q", root)
	}
}
