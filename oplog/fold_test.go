package oplog

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"testing"

	"github.com/drive-node/drive-node/certs"
)

// foldSource is a log of test device 2 holding 12 ops made in three
// Append calls of four, so ops 4, 8 and 12 are signed and the rest are
// proven by the chain.
func foldSource(t *testing.T, dir string) (*Log, []Op) {
	t.Helper()
	ctx := context.Background()
	l := openLog(t, dir, 2)
	var all []Op
	for call := 0; call < 3; call++ {
		var ops []Op
		for i := 0; i < 4; i++ {
			ops = append(ops, Op{Kind: KindWrite, Path: fmt.Sprintf("f%d", call*4+i)})
		}
		got, err := l.Append(ctx, ops...)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, got...)
	}
	for _, op := range all {
		if signed := len(op.Sig) > 0; signed != (op.Seq%4 == 0) {
			t.Fatalf("%s signed %v: the test needs every fourth op signed", op, signed)
		}
	}
	return l, all
}

func seqsOf(ops []Op) []uint64 {
	out := make([]uint64, len(ops))
	for i, op := range ops {
		out[i] = op.Seq
	}
	return out
}

// Fold removes what it is asked to except what keeps the log provable:
// of a peer's ops, one after a kept unsigned op; and the origin's
// highest. What it removed stays removed, and Folded says so, after a
// reopen.
func TestFoldKeepsEveryRunProven(t *testing.T) {
	ctx := context.Background()
	src, all := foldSource(t, t.TempDir())
	src.Close()
	dir := filepath.Join(t.TempDir(), "log")
	l := openLog(t, dir, 1)
	trust(t, l, 2)
	if _, err := l.Insert(ctx, dev(2), all...); err != nil {
		t.Fatal(err)
	}
	n, err := l.Fold(ctx, dev(2), []uint64{2, 3, 5, 6, 9, 12, 40})
	if err != nil {
		t.Fatal(err)
	}
	// 2 and 3 follow unsigned 1 and 2; 5 follows signed 4, 6 follows
	// folded 5, 9 follows signed 8; 12 is the highest; 40 is not held.
	if n != 3 {
		t.Fatalf("folded %d ops, want 3 (5, 6, 9)", n)
	}
	want := []uint64{1, 2, 3, 4, 7, 8, 10, 11, 12}
	if got := seqsOf(collect(t, l, 2, 1)); !slices.Equal(got, want) {
		t.Fatalf("held %v, want %v", got, want)
	}
	if f := l.Folded(dev(2)); f != 9 {
		t.Fatalf("Folded = %d, want 9", f)
	}
	if err := l.Check(ctx); err != nil {
		t.Fatalf("a folded log fails its check: %v", err)
	}
	l.Close()
	l = openLog(t, dir, 1)
	defer l.Close()
	if got := seqsOf(collect(t, l, 2, 1)); !slices.Equal(got, want) || l.Folded(dev(2)) != 9 || l.Highest(dev(2)) != 12 {
		t.Fatalf("after a reopen: held %v, Folded %d, highest %d", got, l.Folded(dev(2)), l.Highest(dev(2)))
	}
	if err := l.Check(ctx); err != nil {
		t.Fatalf("after a reopen: %v", err)
	}
}

// A log folds its own ops after a kept unsigned one too: it signs that
// one, whose Link is unchanged, so what peers hold still matches; the
// chain goes on, and another log takes the folded run.
func TestFoldSignsItsOwnKeptOps(t *testing.T) {
	ctx := context.Background()
	l, all := foldSource(t, t.TempDir())
	defer l.Close()
	n, err := l.Fold(ctx, dev(2), []uint64{2, 3, 5, 6, 9, 12})
	if err != nil || n != 5 {
		t.Fatalf("folded %d (%v), want 5 (2, 3, 5, 6, 9)", n, err)
	}
	held := collect(t, l, 2, 1)
	if got, want := seqsOf(held), []uint64{1, 4, 7, 8, 10, 11, 12}; !slices.Equal(got, want) {
		t.Fatalf("held %v, want %v", got, want)
	}
	key, _, _ := l.Origin(dev(2))
	if !key.Signed(held[0]) || held[0].Link() != all[0].Link() {
		t.Fatalf("op 1 kept before a fold is not signed, or not the same op")
	}
	if next, err := l.Append(ctx, Op{Kind: KindWrite, Path: "next"}); err != nil || next[0].Seq != 13 {
		t.Fatalf("the chain does not go on after a fold: %v %v", next, err)
	}
	other := openLog(t, t.TempDir(), 3)
	defer other.Close()
	trust(t, other, 2)
	held = collect(t, l, 2, 1)
	if got, err := other.InsertFolded(ctx, dev(2), map[certs.DeviceID]uint64{dev(2): l.Folded(dev(2))}, held...); err != nil || len(got) != len(held) {
		t.Fatalf("another log took %d of the %d ops kept: %v", len(got), len(held), err)
	}
	// The ops as first sent, op 1 unsigned among them, are the ops it
	// holds.
	if got, err := other.Insert(ctx, dev(2), all...); err != nil || len(got) != 0 {
		t.Fatalf("the ops as first sent: stored %d: %v", len(got), err)
	}
}

// A log takes a folded peer's ops across its gaps only on the peer's word
// that they were folded, and then says so itself; a gap past that word,
// or after an unsigned op, refuses the origin's ops in the call.
func TestInsertFoldedTakesGapsOnlyWhereFolded(t *testing.T) {
	ctx := context.Background()
	src, all := foldSource(t, t.TempDir())
	defer src.Close()
	if _, err := src.Fold(ctx, dev(2), []uint64{5, 6, 9}); err != nil {
		t.Fatal(err)
	}
	sparse := collect(t, src, 2, 1)

	plain := openLog(t, t.TempDir(), 1)
	defer plain.Close()
	trust(t, plain, 2)
	if got, err := plain.Insert(ctx, dev(2), sparse...); !errors.Is(err, ErrGap) || len(got) != 0 {
		t.Fatalf("a gap without the peer's word: stored %d, err %v; want none and ErrGap", len(got), err)
	}

	short := openLog(t, t.TempDir(), 1)
	defer short.Close()
	trust(t, short, 2)
	if got, err := short.InsertFolded(ctx, dev(2), map[certs.DeviceID]uint64{dev(2): 6}, sparse...); !errors.Is(err, ErrGap) || len(got) != 0 {
		t.Fatalf("a gap past the peer's word: stored %d, err %v; want none and ErrGap", len(got), err)
	}

	dst := openLog(t, t.TempDir(), 1)
	defer dst.Close()
	trust(t, dst, 2)
	got, err := dst.InsertFolded(ctx, dev(2), map[certs.DeviceID]uint64{dev(2): 9}, sparse...)
	if err != nil || len(got) != len(sparse) {
		t.Fatalf("the folded run: stored %d of %d: %v", len(got), len(sparse), err)
	}
	if dst.Folded(dev(2)) != 9 || dst.Highest(dev(2)) != 12 {
		t.Fatalf("Folded %d, highest %d; want 9 and 12", dst.Folded(dev(2)), dst.Highest(dev(2)))
	}
	if err := dst.Check(ctx); err != nil {
		t.Fatal(err)
	}
	// Across calls: the gap is between what the log holds and the call.
	split := openLog(t, t.TempDir(), 1)
	defer split.Close()
	trust(t, split, 2)
	word := map[certs.DeviceID]uint64{dev(2): 9}
	for _, part := range [][]Op{sparse[:4], sparse[4:6], sparse[6:]} {
		if _, err := split.InsertFolded(ctx, dev(2), word, part...); err != nil {
			t.Fatalf("the folded run in parts, from %s: %v", part[0], err)
		}
	}
	if split.Highest(dev(2)) != 12 || split.Folded(dev(2)) != 9 {
		t.Fatalf("in parts: highest %d, Folded %d", split.Highest(dev(2)), split.Folded(dev(2)))
	}
	// A peer that never folded sends every op: those folded here are
	// taken as held.
	if got, err := dst.Insert(ctx, dev(3), all...); err != nil || len(got) != 0 {
		t.Fatalf("the whole run again: stored %d: %v", len(got), err)
	}

	// Op 3 is unsigned: the run 1-3 would end unproven.
	gappy := openLog(t, t.TempDir(), 1)
	defer gappy.Close()
	trust(t, gappy, 2)
	if _, err := gappy.InsertFolded(ctx, dev(2), map[certs.DeviceID]uint64{dev(2): 9}, all[0], all[1], all[2], all[6], all[7]); !errors.Is(err, ErrGap) {
		t.Fatalf("a gap after an unsigned op: %v", err)
	}
	if gappy.Highest(dev(2)) != 0 {
		t.Fatalf("stored up to %d of a refused call", gappy.Highest(dev(2)))
	}
}

// An op across a gap still has to be its origin's: a forged one is
// refused, as anywhere else.
func TestInsertFoldedRefusesAForgeryAcrossAGap(t *testing.T) {
	ctx := context.Background()
	src, all := foldSource(t, t.TempDir())
	defer src.Close()
	forged := all[9]
	forged.Path = "forged"
	dst := openLog(t, t.TempDir(), 1)
	defer dst.Close()
	trust(t, dst, 2)
	run := []Op{all[0], all[1], all[2], all[3], forged, all[10], all[11]}
	got, err := dst.InsertFolded(ctx, dev(2), map[certs.DeviceID]uint64{dev(2): 9}, run...)
	if !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("a forged op after a gap: stored %d: %v", len(got), err)
	}
	for _, op := range collect(t, dst, 2, 1) {
		if op.Path == "forged" {
			t.Fatalf("the forged op was stored")
		}
	}
}
