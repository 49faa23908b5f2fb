package state

import (
	"context"
	"reflect"
	"testing"

	"github.com/drive-node/drive-node/certs"
)

// listSetAside returns the set-aside ops for why, failing the test on
// error.
func listSetAside(t *testing.T, db *DB, why string) []SetAside {
	t.Helper()
	var out []SetAside
	if err := db.SetAsideOps(context.Background(), why, func(s SetAside) error {
		s.At = 0 // stamped by the database
		out = append(out, s)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestSetAsideWithTheAppliedVector: ops set aside are stored in the batch
// that counts them applied, listed by reason, replaced when set aside
// again, and gone once resumed; a batch that fails stores neither.
func TestSetAsideWithTheAppliedVector(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	ignored := SetAside{Op: OpID{dev(1), 2}, Path: "cache/x", Why: "ignored"}
	renamed := SetAside{Op: OpID{dev(1), 3}, Path: "a", NewPath: "videos/a", Why: "ignored"}
	master := SetAside{Op: OpID{dev(2), 1}, Path: "report.txt", Why: "send-only"}
	if err := db.Apply(ctx, Batch{Applied: map[certs.DeviceID]uint64{dev(1): 3, dev(2): 1},
		SetAside: []SetAside{ignored, renamed, master}}); err != nil {
		t.Fatal(err)
	}
	if got, want := listSetAside(t, db, "ignored"), []SetAside{ignored, renamed}; !reflect.DeepEqual(got, want) {
		t.Fatalf("ignored ops set aside: %+v; want %+v", got, want)
	}
	if got := listSetAside(t, db, ""); len(got) != 3 {
		t.Fatalf("all set-aside ops: %+v; want 3", got)
	}
	for p, want := range map[string]bool{"cache/x": true, "a": true, "videos/a": true, "report.txt": true, "other": false, "": false} {
		if got, err := db.SetAsideAt(ctx, p); err != nil || got != want {
			t.Fatalf("SetAsideAt(%q) = %v (%v); want %v", p, got, err, want)
		}
	}
	counts, err := db.SetAsideCounts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]int{"ignored": 2, "send-only": 1}; !reflect.DeepEqual(counts, want) {
		t.Fatalf("counts %v; want %v", counts, want)
	}
	applied, err := db.Applied(ctx)
	if err != nil || applied[dev(1)] != 3 {
		t.Fatalf("applied %v (%v); want dev(1) at 3 with the set-aside ops", applied, err)
	}

	// Set aside again for another reason: replaced, not doubled.
	master.Why = "ignored"
	if err := db.Apply(ctx, Batch{SetAside: []SetAside{master}, Resumed: []OpID{renamed.Op}}); err != nil {
		t.Fatal(err)
	}
	if got, want := listSetAside(t, db, ""), []SetAside{ignored, master}; !reflect.DeepEqual(got, want) {
		t.Fatalf("after resuming the rename: %+v; want %+v", got, want)
	}

	// A failing batch (a file without a path) stores no set-aside op.
	bad := SetAside{Op: OpID{dev(3), 1}, Path: "never", Why: "ignored"}
	if err := db.Apply(ctx, Batch{Files: []File{{}}, SetAside: []SetAside{bad}}); err == nil {
		t.Fatal("a batch with a pathless file was stored")
	}
	if got := listSetAside(t, db, ""); len(got) != 2 {
		t.Fatalf("after a failed batch: %+v; want the 2 set aside before", got)
	}
}

// TestLocalChangesNotedAndUndone: local changes are noted by path (a
// later note replaces an earlier one), undone in the same batch, and all
// forgotten at once.
func TestLocalChangesNotedAndUndone(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	list := func() []LocalChange {
		var out []LocalChange
		if err := db.LocalChanges(ctx, func(c LocalChange) error {
			c.At = 0
			out = append(out, c)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return out
	}
	if err := db.Apply(ctx, Batch{LocalChanges: []LocalChange{{Path: "b.txt", Kind: "write"}, {Path: "a.txt", Kind: "delete"}}}); err != nil {
		t.Fatal(err)
	}
	if got, want := list(), []LocalChange{{"a.txt", "delete", 0}, {"b.txt", "write", 0}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("noted %+v; want %+v", got, want)
	}
	if err := db.Apply(ctx, Batch{Undone: []string{"a.txt"}, LocalChanges: []LocalChange{{Path: "b.txt", Kind: "delete"}}}); err != nil {
		t.Fatal(err)
	}
	if got, want := list(), []LocalChange{{"b.txt", "delete", 0}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("after undoing a.txt: %+v; want %+v", got, want)
	}
	if err := db.ForgetLocalChanges(ctx); err != nil {
		t.Fatal(err)
	}
	if got := list(); len(got) != 0 {
		t.Fatalf("after forgetting: %+v", got)
	}
}
