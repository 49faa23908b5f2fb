package state

import (
	"context"
	"testing"

	"github.com/drive-node/drive-node/certs"
)

func TestUnpairedSeenIsBoundedAndLeftOnPairing(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	for i := range MaxUnpairedSeen + 20 {
		id := certs.DeviceID{byte(i), byte(i >> 8), 7}
		if err := db.NoteUnpaired(ctx, id, "10.0.0.9:22000", int64(1000+i)); err != nil {
			t.Fatal(err)
		}
	}
	seen, err := db.UnpairedSeen(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) != MaxUnpairedSeen {
		t.Fatalf("%d devices kept, want %d", len(seen), MaxUnpairedSeen)
	}
	newest := certs.DeviceID{byte(MaxUnpairedSeen + 19), 0, 7}
	if seen[0].ID != newest || seen[0].At != int64(1000+MaxUnpairedSeen+19) || seen[0].Address != "10.0.0.9:22000" {
		t.Fatalf("newest is %+v, want %s", seen[0], newest.Short())
	}
	// A device seen again moves up; a paired one leaves and is not noted.
	if err := db.Pair(ctx, newest, "laptop"); err != nil {
		t.Fatal(err)
	}
	if err := db.NoteUnpaired(ctx, newest, "10.0.0.9:1", 5000); err != nil {
		t.Fatal(err)
	}
	seen, err = db.UnpairedSeen(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range seen {
		if d.ID == newest {
			t.Fatal("a paired device is listed as unpaired")
		}
	}
	if len(seen) != MaxUnpairedSeen-1 {
		t.Fatalf("%d devices after pairing one, want %d", len(seen), MaxUnpairedSeen-1)
	}
}
