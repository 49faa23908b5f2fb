package node

import (
	"context"
	"maps"
	"testing"

	"github.com/drive-node/drive-node/certs"
	"github.com/drive-node/drive-node/content"
	"github.com/drive-node/drive-node/oplog"
	"github.com/drive-node/drive-node/state"
)

// A Progress frame naming thousands of made-up origins writes nothing for
// them: only origins this device's log holds are recorded, and no further
// than it holds them.
func TestProgressRecordsOnlyOriginsTheLogHolds(t *testing.T) {
	folder := t.TempDir()
	peer := pairedPeer(t, folder, "peer")
	ctx := context.Background()
	n, err := Open(ctx, Config{Folder: folder, Listen: "127.0.0.1:0", NoDiscovery: true})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	op := oplog.Op{Origin: peer.ID, Seq: 1, Lamport: 1, Kind: oplog.KindWrite, Path: "f.txt",
		Hash: content.Sum([]byte("x")), Size: 1, Mode: 0o644}
	insertFrom(t, n.ops, peer, op)
	have := map[certs.DeviceID]uint64{peer.ID: 5}
	for i := range 5000 {
		var made certs.DeviceID
		made[0], made[1], made[2] = 0xee, byte(i>>8), byte(i)
		have[made] = 1
	}
	n.peerProgress(ctx, peer.ID, have)
	got, err := n.db.(*state.DB).PeerProgress(ctx, peer.ID)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[certs.DeviceID]uint64{peer.ID: 1}; !maps.Equal(got, want) {
		t.Fatalf("recorded progress of %d origins (%v...), want only %v", len(got), firstOf(got), want)
	}
}

func firstOf(m map[certs.DeviceID]uint64) map[certs.DeviceID]uint64 {
	out := map[certs.DeviceID]uint64{}
	for k, v := range m {
		out[k] = v
		if len(out) == 3 {
			break
		}
	}
	return out
}
