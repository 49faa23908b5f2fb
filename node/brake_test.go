package node

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestParseBrake(t *testing.T) {
	for in, want := range map[string]*BrakeRule{
		"":                   &DefaultBrake,
		"on":                 &DefaultBrake,
		"off":                nil,
		"50,10%,1m":          {Files: 50, Share: 0.10, MinRun: DefaultBrake.MinRun, Window: time.Minute},
		"5,100%,30s,min=0":   {Files: 5, Share: 1, MinRun: 0, Window: 30 * time.Second},
		"2000,2.5%,1h,min=7": {Files: 2000, Share: 0.025, MinRun: 7, Window: time.Hour},
	} {
		got, err := ParseBrake(in)
		if err != nil || (got == nil) != (want == nil) || got != nil && *got != *want {
			t.Errorf("ParseBrake(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, in := range []string{"1000", "0,30%,5m", "10,30,5m", "10,0%,5m", "10,101%,5m", "10,30%,0s", "10,30%,5m,7", "x,30%,5m"} {
		if _, err := ParseBrake(in); err == nil {
			t.Errorf("ParseBrake(%q) accepted", in)
		}
	}
}

// A peer deleting most of the folder is held: this device keeps its
// files and says so; reject gives the peer its files back; the second
// time, approve lets the deletions through.
func TestBrakeHoldsRejectsAndApproves(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	pairFolders(t, a, b)
	addrA, addrB := freeUDPPort(t), freeUDPPort(t)
	const files = 40
	for i := range files {
		write(t, filepath.Join(a, fmt.Sprintf("d/f%02d.txt", i)), fmt.Sprintf("file %d", i))
	}
	strict := func(n *Node) { n.cfg.brake = &BrakeRule{Files: 1000, Share: 0.5, MinRun: 10, Window: time.Minute} }
	na := startNodeWith(t, a, addrA, strict, addrB)
	nb := startNode(t, b, addrB, addrA)
	waitFor(t, "initial sync", func() string { return sameTree(a, b) })
	ctx := context.Background()
	waitFor(t, "B records A's files", func() string {
		if applied, err := nb.db.Applied(ctx); err != nil || applied[na.ID()] != na.ops.Highest(na.ID()) {
			return fmt.Sprintf("B applied %d of A's %d ops (%v)", applied[na.ID()], na.ops.Highest(na.ID()), err)
		}
		return ""
	})
	if _, err := na.Approve(ctx); !errors.Is(err, ErrNothingHeld) {
		t.Fatalf("approve with nothing held: %v", err)
	}

	deleteOnB := func() {
		for i := range 30 {
			os.Remove(filepath.Join(b, fmt.Sprintf("d/f%02d.txt", i)))
		}
	}
	held := func() string {
		st, err := ReadStatus(ctx, na.StateDir())
		if err != nil {
			return err.Error()
		}
		if len(st.Held) != 1 || st.Held[0].Files != 30 {
			return fmt.Sprintf("held: %+v", st.Held)
		}
		if len(st.Pending) != 1 || st.Pending[0].Reason != reasonHeld {
			return fmt.Sprintf("pending: %+v", st.Pending)
		}
		return ""
	}
	deleteOnB()
	waitFor(t, "A holds B's deletions", held)
	// A change to one file is applied at once: a run whose first piece
	// is one file may let that one through before it is judged.
	if left, _ := os.ReadDir(filepath.Join(a, "d")); len(left) < files-1 {
		t.Fatalf("A holds %d files while the brake holds B's run, want at least %d", len(left), files-1)
	}
	runs, answered, err := na.Reject(ctx)
	if err != nil || len(runs) != 1 || answered != 30 {
		t.Fatalf("reject: %+v %d %v", runs, answered, err)
	}
	waitFor(t, "B gets its files back", func() string { return sameTree(a, b) })
	// The held deletions were recorded after the answer that supersedes
	// them: replaying the log to now changes nothing.
	res, err := na.Restore(ctx, RestoreRequest{Paths: []string{"."}, At: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if r.Outcome != Unchanged {
			t.Fatalf("a restore to now after the reject: %+v", r)
		}
	}
	if left, _ := os.ReadDir(filepath.Join(b, "d")); len(left) != files {
		t.Fatalf("B holds %d files after the reject, want %d", len(left), files)
	}

	deleteOnB()
	waitFor(t, "A holds B's deletions again", held)
	if runs, err := na.Approve(ctx); err != nil || len(runs) != 1 {
		t.Fatalf("approve: %+v %v", runs, err)
	}
	waitFor(t, "A applies the deletions", func() string { return sameTree(a, b) })
	if left, _ := os.ReadDir(filepath.Join(a, "d")); len(left) != files-30 {
		t.Fatalf("A holds %d files after the approve, want %d", len(left), files-30)
	}
	if st, _ := ReadStatus(ctx, na.StateDir()); len(st.Held) != 0 {
		t.Fatalf("still held after the approve: %+v", st.Held)
	}
}

func TestBrakeRuleRoundTrip(t *testing.T) {
	for _, r := range []BrakeRule{DefaultBrake, {Files: 7, Share: 0.025, MinRun: 0, Window: 90 * time.Second}} {
		got, err := ParseBrake(r.String())
		if err != nil || *got != r {
			t.Errorf("ParseBrake(%q) = %+v, %v; want %+v", r.String(), got, err, r)
		}
	}
}
