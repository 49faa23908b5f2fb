package oplog

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// A batch is chained and signed at its end, and at least every
// MaxUnsignedRun ops and before a run could pass MaxUnsignedBytes, so a
// receiver never holds more than that unverified.
func TestAppendSignsRunsWithinTheBounds(t *testing.T) {
	ctx := context.Background()
	l := openLog(t, t.TempDir(), 1)
	defer l.Close()
	small := make([]Op, 2*MaxUnsignedRun+10)
	for i := range small {
		small[i] = Op{Kind: KindWrite, Path: fmt.Sprint("f", i)}
	}
	big := make([]Op, 300) // ops of 8 KB each: 2.4 MB in 300 ops
	long := strings.Repeat("p", 3980)
	for i := range big {
		big[i] = Op{Kind: KindRename, Path: fmt.Sprintf("%016d/%s", i, long), NewPath: fmt.Sprintf("%016d/n%s", i, long)}
	}
	for _, batch := range [][]Op{small, big, big} {
		stored, err := l.Append(ctx, batch...)
		if err != nil {
			t.Fatal(err)
		}
		key, _, _ := l.Origin(l.Self())
		run, bytes, signatures := 0, 0, 0
		for i, op := range stored {
			run, bytes = run+1, bytes+op.EncodedLen()
			if len(op.Sig) == 0 {
				if run >= MaxUnsignedRun || bytes > MaxUnsignedBytes {
					t.Fatalf("op %d: %d ops, %d bytes unsigned", i, run, bytes)
				}
				continue
			}
			if !key.Signed(op) {
				t.Fatalf("op %d: its signature does not verify", i)
			}
			run, bytes, signatures = 0, 0, signatures+1
		}
		if len(stored[len(stored)-1].Sig) == 0 {
			t.Fatal("the last op of a batch is not signed")
		}
		if signatures < 3 {
			t.Fatalf("%d signatures in a batch of %d ops: the bounds were never reached", signatures, len(stored))
		}
	}
	// The log's own ops, sent on, are what another log takes.
	other := openLog(t, t.TempDir(), 2)
	defer other.Close()
	trust(t, other, 1)
	var all []Op
	if err := l.Iterate(ctx, l.Self(), 1, func(op Op) error { all = append(all, op); return nil }); err != nil {
		t.Fatal(err)
	}
	if got, err := other.Insert(ctx, l.Self(), all...); err != nil || len(got) != len(all) {
		t.Fatalf("another log took %d of %d ops: %v", len(got), len(all), err)
	}
}

// The chain holds across calls and restarts: ops inserted later must
// follow the last op held, and a reopened log checks against it too.
func TestInsertChainsAcrossCallsAndRestarts(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l := openLog(t, dir, 1)
	first := signed(t, l, Op{Origin: dev(2), Seq: 1, Lamport: 1, Kind: KindDelete, Path: "a"})
	if _, err := l.Insert(ctx, dev(2), first...); err != nil {
		t.Fatal(err)
	}
	l.Close()
	l = openLog(t, dir, 1)
	defer l.Close()
	stray := signedBy(t, 2, Link{7}, Op{Origin: dev(2), Seq: 2, Lamport: 2, Kind: KindDelete, Path: "b"})
	if _, err := l.Insert(ctx, dev(2), stray...); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("an op chained to another op 1, after a restart: %v", err)
	}
	next := signedBy(t, 2, first[0].Link(), Op{Origin: dev(2), Seq: 2, Lamport: 2, Kind: KindDelete, Path: "b"})
	if _, err := l.Insert(ctx, dev(2), next...); err != nil {
		t.Fatalf("the op that follows: %v", err)
	}
}

// A legacy op is taken from its origin only.
func TestLegacyOpsOnlyFromTheirOrigin(t *testing.T) {
	ctx := context.Background()
	l := openLog(t, t.TempDir(), 1)
	defer l.Close()
	trust(t, l, 2)
	trust(t, l, 3)
	old := Op{Origin: dev(2), Seq: 1, Lamport: 1, Kind: KindDelete, Path: "a", Legacy: true}
	if _, err := l.Insert(ctx, dev(3), old); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("a legacy op relayed: %v", err)
	}
	if _, err := l.Insert(ctx, dev(2), old); err != nil {
		t.Fatalf("a legacy op from its origin: %v", err)
	}
	next := signedBy(t, 2, old.Link(), Op{Origin: dev(2), Seq: 2, Lamport: 2, Kind: KindDelete, Path: "b"})
	if _, err := l.Insert(ctx, dev(3), next...); err != nil {
		t.Fatalf("a signed op after a legacy one, relayed: %v", err)
	}
	later := Op{Origin: dev(2), Seq: 3, Lamport: 3, Kind: KindDelete, Path: "c", Legacy: true}
	if _, err := l.Insert(ctx, dev(2), later); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("a legacy op after a signed one: %v", err)
	}
}

// BenchmarkSign is the cost of signing one op: what a batch of local
// changes pays once.
func BenchmarkSign(b *testing.B) {
	key := testKey(1)
	op := Op{Origin: dev(1), Seq: 1, Lamport: 1, Kind: KindWrite, Path: "some/dir/file.txt", Size: 4096}
	link := op.Link()
	for b.Loop() {
		if _, err := sign(key, link); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "signatures/s")
}

// BenchmarkVerify is the cost of checking one signature.
func BenchmarkVerify(b *testing.B) {
	ops := signedBy(b, 1, Link{}, Op{Origin: dev(1), Seq: 1, Lamport: 1, Kind: KindWrite, Path: "some/dir/file.txt", Size: 4096})
	k, _ := signerKey(testKey(1))
	for b.Loop() {
		if !k.Signed(ops[0]) {
			b.Fatal("does not verify")
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "verifications/s")
}

// BenchmarkInsertVerified inserts a peer's ops in frames of 1,000, each
// ending with a signed op, as a sender's batches arrive: what receiving
// costs with the chain and signature checks. Compare with
// BenchmarkAppendGrouped.
func BenchmarkInsertVerified(b *testing.B) {
	ctx := context.Background()
	frames := peerFrames(b, max(1, b.N))
	l := openLog(b, b.TempDir(), 1)
	defer l.Close()
	trust(b, l, 2)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := l.Insert(ctx, dev(2), frames[i]...); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(frames[0]))/b.Elapsed().Seconds(), "ops/s")
}

// peerFrames returns n frames of 1,000 ops of test device 2, as its log
// records and signs them.
func peerFrames(b *testing.B, n int) [][]Op {
	src := openLog(b, b.TempDir(), 2)
	defer src.Close()
	batch := make([]Op, 1000)
	for i := range batch {
		batch[i] = Op{Kind: KindWrite, Path: fmt.Sprintf("some/dir/file%04d.txt", i), Size: 4096}
	}
	var frames [][]Op
	for range n {
		stored, err := src.Append(context.Background(), batch...)
		if err != nil {
			b.Fatal(err)
		}
		frames = append(frames, stored)
	}
	return frames
}

// BenchmarkAuthenticate is the CPU cost per op of what Insert checks
// before storing (Links, chain, one signature per 1,000 ops), without
// the disk: ops verified per second on one core.
func BenchmarkAuthenticate(b *testing.B) {
	stored := peerFrames(b, 1)[0]
	l := openLog(b, b.TempDir(), 1)
	defer l.Close()
	trust(b, l, 2)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, refused := l.authenticate(dev(2), nil, stored); len(refused) > 0 {
			b.Fatal(refused)
		}
	}
	b.ReportMetric(float64(b.N*len(stored))/b.Elapsed().Seconds(), "ops/s")
}

// An origin's ops are refused when more of them follow each other
// unsigned than an origin makes (a relay that stripped signatures would
// otherwise hand every later device a run it must refuse), and the other
// origins' ops in the call are stored.
func TestInsertRefusesLongUnsignedRuns(t *testing.T) {
	ctx := context.Background()
	l := openLog(t, t.TempDir(), 1)
	defer l.Close()
	trust(t, l, 3)
	long := make([]Op, MaxUnsignedRun+1)
	for i := range long {
		long[i] = Op{Origin: dev(2), Seq: uint64(i + 1), Lamport: uint64(i + 1), Kind: KindDelete, Path: "x"}
	}
	long = signed(t, l, long...) // one signature, at the end
	other := signedBy(t, 3, Link{}, Op{Origin: dev(3), Seq: 1, Lamport: 1, Kind: KindDelete, Path: "y"})
	got, err := l.Insert(ctx, dev(3), append(long, other...)...)
	var refused *InsertError
	if !errors.As(err, &refused) || !errors.Is(refused.Refused[dev(2)], ErrUnauthenticated) || len(refused.Refused) != 1 {
		t.Fatalf("a run of %d unsigned ops: %v", len(long)-1, err)
	}
	if len(got) != 1 || got[0].Origin != dev(3) || l.Highest(dev(2)) != 0 {
		t.Fatalf("stored %v and %d of the long run; want only the other origin's op", got, l.Highest(dev(2)))
	}
}

// When an op fails a check the log makes against what it holds, the ops
// of its origin before it are stored only as far as a signature covers
// them: a log's highest op of every origin stays a signed one, which a
// peer that takes it from here can verify.
func TestInsertKeepsOnlyCoveredOpsBeforeARefusal(t *testing.T) {
	ctx := context.Background()
	l := openLog(t, t.TempDir(), 1)
	defer l.Close()
	ops := make([]Op, 6)
	for i := range ops {
		ops[i] = Op{Origin: dev(2), Seq: uint64(i + 1), Lamport: uint64(i + 1), Kind: KindDelete, Path: "x"}
	}
	ops[5].Lamport = MaxLamportJump + 10 // past the bound: refused by the committer
	trust(t, l, 2)
	var prev Link
	var err error
	for _, part := range [][]Op{ops[:3], ops[3:]} { // signed at 3 and 6
		if prev, err = Seal(testKey(2), prev, part); err != nil {
			t.Fatal(err)
		}
	}
	got, err := l.Insert(ctx, dev(2), ops...)
	if !errors.Is(err, ErrInvalid) || len(got) != 3 || l.Highest(dev(2)) != 3 {
		t.Fatalf("stored %d ops (highest %d): %v; want the 3 the first signature covers", len(got), l.Highest(dev(2)), err)
	}
	if held, _, _ := l.Get(dev(2), 3); len(held.Sig) == 0 {
		t.Fatal("the highest op held is not signed")
	}
}

// The jump bound holds against the clock as a call begins: a chain that
// raises its Lamport clock by the bound at every op cannot carry a log's
// clock further than the bound in one call.
func TestLamportJumpsDoNotRatchetWithinACall(t *testing.T) {
	ctx := context.Background()
	l := openLog(t, t.TempDir(), 1)
	defer l.Close()
	trust(t, l, 2)
	ops := make([]Op, 4)
	for i := range ops {
		ops[i] = Op{Origin: dev(2), Seq: uint64(i + 1), Lamport: uint64(i+1) * MaxLamportJump, Kind: KindDelete, Path: "x"}
	}
	ops = signedBy(t, 2, Link{}, ops...)
	if _, err := l.Insert(ctx, dev(2), ops...); !errors.Is(err, ErrInvalid) {
		t.Fatalf("a clock raised by the bound at each op: %v", err)
	}
	if got := l.Lamport(); got > MaxLamportJump {
		t.Fatalf("the log's clock went to %d, past %d", got, uint64(MaxLamportJump))
	}
}

// A statement's signature verifies with its signer's key only, over its
// bytes only, and no statement in the ops' domain is signed.
func TestStatementSignatures(t *testing.T) {
	k := testKey(1)
	key, err := signerKey(k)
	if err != nil {
		t.Fatal(err)
	}
	other, err := signerKey(testKey(2))
	if err != nil {
		t.Fatal(err)
	}
	stmt := []byte("drive-node introduce 1\x00 some devices")
	sig, err := SignStatement(k, stmt)
	if err != nil {
		t.Fatal(err)
	}
	if !key.VerifyStatement(stmt, sig) {
		t.Fatal("a statement's signature does not verify")
	}
	if other.VerifyStatement(stmt, sig) || key.VerifyStatement(append(stmt, 0), sig) || key.VerifyStatement(stmt, nil) {
		t.Fatal("a statement's signature verifies with another key or over other bytes")
	}
	var l Link
	if _, err := SignStatement(k, append([]byte(signatureDomain), l[:]...)); err == nil {
		t.Fatal("signed a statement in the op signatures' domain")
	}
}
