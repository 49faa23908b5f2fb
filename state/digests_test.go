package state

import (
	"context"
	"errors"
	"maps"
	"testing"

	"github.com/drive-node/drive-node/certs"
	"github.com/drive-node/drive-node/content"
)

// TestLiveEntries lists live records only, under a directory or all, and
// FilesGeneration advances with each write of records.
func TestLiveEntries(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	gen := db.FilesGeneration()
	err := db.Apply(ctx, Batch{Files: []File{
		{Path: "a", Dir: true, Mode: 0o755, Origin: dev(1), Seq: 1},
		{Path: "a/x", Hash: content.Sum([]byte("x")), Mode: 0o600, Origin: dev(1), Seq: 2},
		{Path: "a.txt", Hash: content.Sum([]byte("t")), Mode: 0o644, Origin: dev(1), Seq: 3},
		{Path: "gone", Deleted: true, Origin: dev(1), Seq: 4},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if db.FilesGeneration() == gen {
		t.Fatal("FilesGeneration did not advance with an Apply")
	}
	list := func(dir string) []LiveEntry {
		var out []LiveEntry
		if err := db.LiveEntries(ctx, dir, func(e LiveEntry) error { out = append(out, e); return nil }); err != nil {
			t.Fatal(err)
		}
		return out
	}
	all := list("")
	if len(all) != 3 || all[0].Path != "a" || !all[0].Dir || all[1].Path != "a.txt" || all[2].Path != "a/x" || all[2].Mode != 0o600 ||
		all[2].Hash != content.Sum([]byte("x")) {
		t.Fatalf("live entries %+v", all)
	}
	if under := list("a"); len(under) != 1 || under[0].Path != "a/x" {
		t.Fatalf("under a: %+v", under)
	}
	stop := errors.New("stop")
	if err := db.LiveEntries(ctx, "", func(LiveEntry) error { return stop }); err != stop {
		t.Fatalf("the callback's error came back as %v", err)
	}
}

// TestPeerDigests keeps the last digest of each paired peer, and none of
// a peer not paired.
func TestPeerDigests(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	if err := db.SetPeerDigest(ctx, PeerDigest{Peer: dev(9)}); !errors.Is(err, ErrNotPaired) {
		t.Fatalf("digest of an unpaired peer: %v", err)
	}
	if err := db.Pair(ctx, dev(2), "nas"); err != nil {
		t.Fatal(err)
	}
	want := PeerDigest{Peer: dev(2), Root: [32]byte{7}, Files: 12, Applied: map[certs.DeviceID]uint64{dev(1): 3, dev(2): 1 << 40}, At: 5}
	for _, p := range []PeerDigest{{Peer: dev(2), Root: [32]byte{1}, Applied: map[certs.DeviceID]uint64{}}, want} {
		if err := db.SetPeerDigest(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	got, err := db.PeerDigests(ctx)
	if err != nil {
		t.Fatal(err)
	}
	g := got[dev(2)]
	if len(got) != 1 || g.Root != want.Root || g.Files != want.Files || g.At != want.At || !maps.Equal(g.Applied, want.Applied) {
		t.Fatalf("peer digests %+v, want %+v", got, want)
	}
	if err := db.Unpair(ctx, dev(2)); err != nil {
		t.Fatal(err)
	}
	if got, _ := db.PeerDigests(ctx); len(got) != 0 {
		t.Fatalf("an unpaired peer's digest is kept: %+v", got)
	}
}
