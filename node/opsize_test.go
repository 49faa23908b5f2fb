package node

import (
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/drive-node/drive-node/certs"
	"github.com/drive-node/drive-node/oplog"
	"github.com/drive-node/drive-node/quicnet"
	"github.com/drive-node/drive-node/vclock"
	"github.com/drive-node/drive-node/wire"
)

// TestHostileSizedOpsReachAPeer: 2,000 ops of 4.5 KB (long paths, wide
// versions, each within the log's limits) make more than a frame holds.
// A sender that cut frames by count alone could not write its first
// frame, ended the session, and did the same at every connection: the
// peer never got these ops or any after them. Frames are cut by size as
// well, and the peer gets every op.
func TestHostileSizedOpsReachAPeer(t *testing.T) {
	const ops = 2000
	folder := t.TempDir()
	peer := pairedPeer(t, folder, "peer")
	var wide vclock.Vector
	for i := 0; i < 12; i++ {
		var d certs.DeviceID
		d[0] = 0x5e
		binary.BigEndian.PutUint32(d[1:], uint32(i+1))
		wide = wide.With(d, 1)
	}
	n := startNodeWith(t, folder, freeUDPPort(t), func(n *Node) {
		batch := make([]oplog.Op, ops)
		for i := range batch {
			// Components of 250 bytes (the limit is 255), unique per op.
			p := fmt.Sprintf("gone/%06d", i)
			for len(p) < oplog.MaxPathLen-251 {
				p += "/" + strings.Repeat("x", 250)
			}
			batch[i] = oplog.Op{Kind: oplog.KindDelete, Path: p, MTime: 1, Parent: wide}
		}
		if _, err := n.ops.Append(context.Background(), batch...); err != nil {
			t.Fatal(err)
		}
	})
	var total int
	n.ops.Iterate(context.Background(), n.ID(), 1, func(op oplog.Op) error {
		b, _ := op.MarshalBinary()
		total += len(b)
		return nil
	})
	if total <= wire.MaxFrame {
		t.Fatalf("the ops take %d bytes, not more than a frame", total)
	}

	var got atomic.Int64
	ended := make(chan error, 1)
	tr, err := quicnet.Listen(context.Background(), quicnet.Config{
		Identity: peer, Listen: "127.0.0.1:0", Content: &memSource{},
		Paired: func(certs.DeviceID) bool { return true },
		OnPeer: func(ctx context.Context, p *quicnet.Peer) {
			p.Send(ctx, &wire.Hello{Version: wire.ProtocolVersion, Name: "peer"})
			for {
				m, err := p.Recv(ctx)
				if err != nil {
					ended <- err
					return
				}
				if o, ok := m.(*wire.Ops); ok {
					got.Add(int64(len(o.Ops)))
				}
			}
		},
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	if _, err := tr.Dial(context.Background(), netip.MustParseAddrPort(n.addr), n.ID()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "every op at the peer", func() string {
		select {
		case err := <-ended:
			t.Fatalf("the session ended after %d of %d ops: %v", got.Load(), ops, err)
		default:
		}
		if g := got.Load(); g < ops {
			return fmt.Sprintf("%d of %d ops", g, ops)
		}
		return ""
	})
}
