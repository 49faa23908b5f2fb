package state

import (
	"context"
	"errors"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/drive-node/drive-node/certs"
)

func TestPairIdempotent(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	id := dev(1)
	if ok, err := db.IsPaired(ctx, id); err != nil || ok {
		t.Fatalf("IsPaired before Pair: %v %v", ok, err)
	}
	before := time.Now().UnixNano()
	if err := db.Pair(ctx, id, "laptop"); err != nil {
		t.Fatal(err)
	}
	first, ok, err := db.Peer(ctx, id)
	if err != nil || !ok {
		t.Fatalf("Peer after Pair: %v %v", ok, err)
	}
	if first.ID != id || first.Name != "laptop" || first.PairedAt < before || first.Connected || first.Addresses != nil {
		t.Fatalf("fresh peer %+v", first)
	}
	status := Peer{ID: id, Addresses: []string{"10.0.0.2:22000"}, LastSeen: 77, Behind: 3}
	if err := db.UpdatePeerStatus(ctx, status); err != nil {
		t.Fatal(err)
	}
	for _, step := range []struct{ name, want string }{
		{"", "laptop"},       // empty name keeps the old one
		{"laptop", "laptop"}, // same again
		{"work laptop", "work laptop"},
	} {
		if err := db.Pair(ctx, id, step.name); err != nil {
			t.Fatal(err)
		}
		p, ok, err := db.Peer(ctx, id)
		if err != nil || !ok {
			t.Fatal(ok, err)
		}
		if p.Name != step.want || p.PairedAt != first.PairedAt || p.LastSeen != 77 || p.Behind != 3 {
			t.Fatalf("Pair(%q) again: %+v; want name %q and the rest of the row kept", step.name, p, step.want)
		}
	}
	peers, err := db.Peers(ctx)
	if err != nil || len(peers) != 1 {
		t.Fatalf("Peers after repeated Pair: %+v %v", peers, err)
	}
}

func TestUnpair(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	if err := db.Pair(ctx, dev(1), ""); err != nil {
		t.Fatal(err)
	}
	if err := db.Pair(ctx, dev(2), ""); err != nil {
		t.Fatal(err)
	}
	if err := db.SetPeerProgress(ctx, dev(1), dev(3), 9); err != nil {
		t.Fatal(err)
	}
	if err := db.Unpair(ctx, dev(1)); err != nil {
		t.Fatal(err)
	}
	if ok, err := db.IsPaired(ctx, dev(1)); err != nil || ok {
		t.Fatalf("IsPaired after Unpair: %v %v", ok, err)
	}
	if ok, _ := db.IsPaired(ctx, dev(2)); !ok {
		t.Fatal("Unpair removed another peer")
	}
	if pr, err := db.PeerProgress(ctx, dev(1)); err != nil || len(pr) != 0 {
		t.Fatalf("progress survived Unpair: %v %v", pr, err)
	}
	err := db.Unpair(ctx, dev(1))
	if !errors.Is(err, ErrNotPaired) || !strings.Contains(err.Error(), dev(1).String()) {
		t.Fatalf("second Unpair: %v, want ErrNotPaired naming the peer", err)
	}
	// Pairing again starts over.
	if err := db.Pair(ctx, dev(1), "back"); err != nil {
		t.Fatal(err)
	}
	if pr, _ := db.PeerProgress(ctx, dev(1)); len(pr) != 0 {
		t.Fatalf("re-paired peer has old progress %v", pr)
	}
}

func TestPeersOrderedByIDString(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	var want []string
	for i := byte(0); i < 20; i++ {
		// Spread first bytes across the base32 alphabet, whose digits
		// sort before its letters.
		var id certs.DeviceID
		id[0], id[1] = i*13, i
		if err := db.Pair(ctx, id, ""); err != nil {
			t.Fatal(err)
		}
		want = append(want, id.String())
	}
	sort.Strings(want)
	peers, err := db.Peers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range peers {
		got = append(got, p.ID.String())
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Peers order:\n got %v\nwant %v", got, want)
	}
}

func TestUpdatePeerStatus(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	err := db.UpdatePeerStatus(ctx, Peer{ID: dev(1), Connected: true})
	if !errors.Is(err, ErrNotPaired) || !strings.Contains(err.Error(), dev(1).String()) {
		t.Fatalf("UpdatePeerStatus of unpaired: %v, want ErrNotPaired naming the peer", err)
	}
	if ok, _ := db.IsPaired(ctx, dev(1)); ok {
		t.Fatal("UpdatePeerStatus created a pairing")
	}

	if err := db.Pair(ctx, dev(1), "nas"); err != nil {
		t.Fatal(err)
	}
	orig, _, _ := db.Peer(ctx, dev(1))
	upd := Peer{
		ID: dev(1), Name: "ignored", PairedAt: 1, // not updated
		Addresses: []string{"192.168.1.5:7000", "[fe80::1%eth0]:7000"},
		LastSeen:  123, Connected: true, Address: "192.168.1.5:7000", Behind: 1<<63 + 2, Error: "disk full",
	}
	if err := db.UpdatePeerStatus(ctx, upd); err != nil {
		t.Fatal(err)
	}
	got, _, err := db.Peer(ctx, dev(1))
	if err != nil {
		t.Fatal(err)
	}
	want := upd
	want.Name, want.PairedAt = orig.Name, orig.PairedAt
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("after UpdatePeerStatus:\n got %+v\nwant %+v", got, want)
	}

	// The daemon restarting: nobody is connected any more; the rest stays.
	if err := db.ResetPeerStatus(ctx); err != nil {
		t.Fatal(err)
	}
	got, _, _ = db.Peer(ctx, dev(1))
	want.Connected, want.Address = false, ""
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("after ResetPeerStatus:\n got %+v\nwant %+v", got, want)
	}

	// Clearing the addresses and the error.
	want.Addresses, want.Error = nil, ""
	if err := db.UpdatePeerStatus(ctx, want); err != nil {
		t.Fatal(err)
	}
	if got, _, _ = db.Peer(ctx, dev(1)); !reflect.DeepEqual(got, want) {
		t.Fatalf("after clearing:\n got %+v\nwant %+v", got, want)
	}
}

func TestPeerProgressOnlyRaised(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	peer, other := dev(1), dev(2)
	a, b := dev(10), dev(11)
	if err := db.SetPeerProgress(ctx, peer, a, 1); !errors.Is(err, ErrNotPaired) {
		t.Fatalf("SetPeerProgress of unpaired: %v, want ErrNotPaired", err)
	}
	for _, id := range []certs.DeviceID{peer, other} {
		if err := db.Pair(ctx, id, ""); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range []struct {
		origin certs.DeviceID
		seq    uint64
		want   map[certs.DeviceID]uint64
	}{
		{a, 5, map[certs.DeviceID]uint64{a: 5}},
		{a, 3, map[certs.DeviceID]uint64{a: 5}},
		{a, 0, map[certs.DeviceID]uint64{a: 5}},
		{b, 2, map[certs.DeviceID]uint64{a: 5, b: 2}},
		{a, 8, map[certs.DeviceID]uint64{a: 8, b: 2}},
		{b, 1<<63 + 1, map[certs.DeviceID]uint64{a: 8, b: 1<<63 + 1}},
		{b, 1 << 62, map[certs.DeviceID]uint64{a: 8, b: 1<<63 + 1}},
	} {
		if err := db.SetPeerProgress(ctx, peer, s.origin, s.seq); err != nil {
			t.Fatal(err)
		}
		got, err := db.PeerProgress(ctx, peer)
		if err != nil || !reflect.DeepEqual(got, s.want) {
			t.Fatalf("after SetPeerProgress(%s, %d): %v %v, want %v", s.origin.Short(), s.seq, got, err, s.want)
		}
	}
	if got, err := db.PeerProgress(ctx, other); err != nil || got == nil || len(got) != 0 {
		t.Fatalf("progress leaked to another peer: %v %v", got, err)
	}
}
