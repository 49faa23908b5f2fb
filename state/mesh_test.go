package state

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/drive-node/drive-node/certs"
)

// TestMeshPairing: only a mesh member's introduction pairs devices, never
// one already paired or revoked; a revocation unpairs only a device
// paired by introduction; an explicit pairing forgets a revocation.
func TestMeshPairing(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, testPath(t))
	member, hand, joined, fresh, gone := dev(1), dev(2), dev(3), dev(4), dev(5)
	if err := db.PairByCode(ctx, member, "member"); err != nil {
		t.Fatal(err)
	}
	if err := db.Pair(ctx, hand, "hand"); err != nil {
		t.Fatal(err)
	}
	if err := db.PairByCode(ctx, joined, "joined"); err != nil {
		t.Fatal(err)
	}
	if err := db.Pair(ctx, gone, ""); err != nil {
		t.Fatal(err)
	}
	if err := db.Unpair(ctx, gone); err != nil {
		t.Fatal(err)
	}
	devices := []Introduced{{hand, "x"}, {joined, "x"}, {fresh, "fresh"}, {gone, "gone"}}

	if _, err := db.PairIntroduced(ctx, hand, devices, []byte("s"), []byte("g")); !errors.Is(err, ErrNotMeshMember) {
		t.Fatalf("introduction from a device paired by hand: %v, want ErrNotMeshMember", err)
	}
	if _, err := db.PairIntroduced(ctx, dev(9), devices, []byte("s"), []byte("g")); !errors.Is(err, ErrNotMeshMember) {
		t.Fatalf("introduction from a device not paired: %v, want ErrNotMeshMember", err)
	}
	added, err := db.PairIntroduced(ctx, member, devices, []byte("stmt"), []byte("sig"))
	if err != nil || !slices.Equal(added, []certs.DeviceID{fresh}) {
		t.Fatalf("introduction paired %v, %v; want only the fresh device", added, err)
	}
	p, ok, err := db.Peer(ctx, fresh)
	if err != nil || !ok || p.PairedBy != PairedByIntroduction || p.IntroducedBy != member || p.Name != "fresh" {
		t.Fatalf("introduced peer %+v %v %v", p, ok, err)
	}
	if by, stmt, sig, ok, err := db.Introduction(ctx, fresh); err != nil || !ok || by != member || string(stmt) != "stmt" || string(sig) != "sig" {
		t.Fatalf("introduction of %s: %s %q %q %v %v", fresh.Short(), by.Short(), stmt, sig, ok, err)
	}
	if p, _, _ := db.Peer(ctx, hand); p.PairedBy != PairedByHand {
		t.Fatalf("a device paired by hand became %s by an introduction", p.PairedBy)
	}

	// Revocations: not honoured for devices paired by hand or by code.
	for _, id := range []certs.DeviceID{hand, joined} {
		if un, err := db.RevokeIntroduced(ctx, member, id, nil, nil); err != nil || un {
			t.Fatalf("revocation of %s: %v %v, want kept", id.Short(), un, err)
		}
		if ok, _ := db.IsPaired(ctx, id); !ok {
			t.Fatalf("%s unpaired by a revocation", id.Short())
		}
	}
	if _, err := db.RevokeIntroduced(ctx, hand, fresh, nil, nil); !errors.Is(err, ErrNotMeshMember) {
		t.Fatalf("revocation by a device paired by hand: %v", err)
	}
	if un, err := db.RevokeIntroduced(ctx, member, fresh, []byte("r"), []byte("s")); err != nil || !un {
		t.Fatalf("revocation of an introduced device: %v %v", un, err)
	}
	if ok, _ := db.IsPaired(ctx, fresh); ok {
		t.Fatal("a revoked device is still paired")
	}
	other := dev(6)
	if err := db.PairByCode(ctx, other, ""); err != nil {
		t.Fatal(err)
	}
	if added, err := db.PairIntroduced(ctx, other, devices, nil, nil); err != nil || len(added) != 0 {
		t.Fatalf("introduction after revocations paired %v, %v", added, err)
	}
	if revs, err := db.Revocations(ctx, 10); err != nil || !slices.Equal(revs, []certs.DeviceID{gone}) {
		t.Fatalf("this device's revocations %v, %v; want the one it unpaired", revs, err)
	}
	// The revoker's own later introduction withdraws its revocation;
	// another member's does not.
	if added, err := db.PairIntroduced(ctx, other, []Introduced{{ID: fresh}}, nil, nil); err != nil || len(added) != 0 {
		t.Fatalf("another member's introduction of a revoked device paired %v, %v", added, err)
	}
	if added, err := db.PairIntroduced(ctx, member, []Introduced{{ID: fresh}}, nil, nil); err != nil || !slices.Equal(added, []certs.DeviceID{fresh}) {
		t.Fatalf("the revoker's introduction paired %v, %v; want the device back", added, err)
	}
	if r, _ := db.IsRevoked(ctx, fresh); r {
		t.Fatal("still revoked after the revoker introduced it again")
	}
	// Pairing explicitly forgets the revocation.
	if err := db.Pair(ctx, gone, ""); err != nil {
		t.Fatal(err)
	}
	if r, err := db.IsRevoked(ctx, gone); err != nil || r {
		t.Fatalf("revoked after pairing: %v %v", r, err)
	}
}
