package oplog

import (
	"context"
	"encoding/binary"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/drive-node/drive-node/certs"
	"github.com/drive-node/drive-node/vclock"
)

// manyDevices returns a version of n made-up devices, counter 1 each.
func manyDevices(n int) vclock.Vector {
	v := make(vclock.Vector, n)
	for i := range v {
		binary.BigEndian.PutUint32(v[i].Device[:], uint32(i+1))
		v[i].Counter = 1
	}
	return v
}

// TestLogRefusesOpsPeersWouldRefuse: 2,300 concurrent writes of one path
// give the next edit of it a version of 2,300 entries, a 76 KB op that no
// peer takes. The log refuses it, by Append and by Insert, with an error
// saying why, and stores nothing of the call; an op at the limit is
// stored, read back and encodes within MaxOpSize.
func TestLogRefusesOpsPeersWouldRefuse(t *testing.T) {
	ctx := context.Background()
	l := openLog(t, t.TempDir(), 1)
	defer l.Close()
	wide := Op{Kind: KindWrite, Path: "shared.txt", Mode: 0o644, Parent: manyDevices(2300)}
	ok := Op{Kind: KindWrite, Path: "other.txt", Mode: 0o644}
	_, err := l.Append(ctx, ok, wide)
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "version of 2300 entries, over the 1536") {
		t.Fatalf("append of a 2,300-entry version: %v, want ErrInvalid saying why", err)
	}
	remote := wide
	remote.Origin, remote.Seq, remote.Lamport = dev(2), 1, 1
	if _, err := l.Insert(ctx, remote); !errors.Is(err, ErrInvalid) {
		t.Fatalf("insert of a 2,300-entry version: %v", err)
	}
	unsorted := remote
	unsorted.Parent = vclock.Vector{{Device: dev(4), Counter: 1}, {Device: dev(3), Counter: 1}}
	if _, err := l.Insert(ctx, unsorted); !errors.Is(err, ErrInvalid) || !errors.Is(err, vclock.ErrInvalid) {
		t.Fatalf("insert of a version out of order: %v", err)
	}
	if v := l.Vector(); len(v) != 0 {
		t.Fatalf("refused calls stored ops: %v", v)
	}

	widest := wide
	widest.Parent = manyDevices(MaxParents)
	stored, err := l.Append(ctx, widest)
	if err != nil {
		t.Fatalf("append at the limit: %v", err)
	}
	got := collect(t, l, 1, 1)
	if len(got) != 1 || len(got[0].Parent) != MaxParents {
		t.Fatalf("read back %d ops", len(got))
	}
	if b, err := stored[0].MarshalBinary(); err != nil || len(b) > MaxOpSize {
		t.Fatalf("the stored op encodes to %d bytes (%v), limit %d", len(b), err, MaxOpSize)
	}
}

// TestInsertRefusesOriginsPastMaxOrigins: a Hello lists every origin a
// log holds and carries at most MaxOrigins. A log that took one more
// could say Hello to no one. Insert refuses the origin that would be one
// too many; a place is kept for the device's own ops.
func TestInsertRefusesOriginsPastMaxOrigins(t *testing.T) {
	ctx := context.Background()
	l := openLog(t, t.TempDir(), 1)
	defer l.Close()
	origin := func(i int) certs.DeviceID {
		var d certs.DeviceID
		d[0] = 0xee
		binary.BigEndian.PutUint32(d[1:], uint32(i))
		return d
	}
	ops := make([]Op, MaxOrigins-1)
	for i := range ops {
		ops[i] = Op{Origin: origin(i), Seq: 1, Lamport: 1, Kind: KindDelete, Path: "x"}
	}
	if _, err := l.Insert(ctx, ops...); err != nil {
		t.Fatalf("%d origins: %v", len(ops), err)
	}
	one := Op{Origin: origin(len(ops)), Seq: 1, Lamport: 1, Kind: KindDelete, Path: "x"}
	if _, err := l.Insert(ctx, one); !errors.Is(err, ErrTooManyOrigins) {
		t.Fatalf("origin %d: %v, want ErrTooManyOrigins", MaxOrigins, err)
	}
	if _, err := l.Append(ctx, Op{Kind: KindWrite, Path: "mine"}); err != nil {
		t.Fatalf("the device's own op with %d other origins: %v", len(ops), err)
	}
	more := Op{Origin: ops[0].Origin, Seq: 2, Lamport: 2, Kind: KindDelete, Path: "x"}
	if _, err := l.Insert(ctx, more); err != nil {
		t.Fatalf("a known origin's next op: %v", err)
	}
	if _, err := l.Insert(ctx, one); !errors.Is(err, ErrTooManyOrigins) {
		t.Fatalf("origin %d once full: %v", MaxOrigins+1, err)
	}
	if n := len(l.Vector()); n != MaxOrigins {
		t.Fatalf("%d origins held, want %d", n, MaxOrigins)
	}
}

// TestStoredOpsPastTheLimitsReadBack: a log written before the limits
// were shared may hold an op with a longer version, or one out of order,
// that a peer sent. The log reads it back, and checks whole, rather than
// failing on its own data; encoding it to send fails with ErrInvalid.
func TestStoredOpsPastTheLimitsReadBack(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "log")
	l := openLog(t, dir, 1)
	head, err := Op{Origin: dev(2), Seq: 1, Lamport: 1, Kind: KindWrite, Path: "old"}.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	enc := binary.AppendUvarint(head[:len(head)-1], 2000) // in place of the empty version
	for i := 2000; i > 0; i-- {                           // out of order, too
		var d certs.DeviceID
		binary.BigEndian.PutUint32(d[:], uint32(i))
		enc = append(append(enc, d[:]...), 1)
	}
	b := l.db.NewBatch()
	b.Set(opKey(dev(2), 1), enc, nil)
	b.Set(highestKey(dev(2)), binary.BigEndian.AppendUint64(nil, 1), nil)
	if err := b.Commit(pebble.Sync); err != nil {
		t.Fatal(err)
	}
	b.Close()
	l.Close()

	l = openLog(t, dir, 1)
	defer l.Close()
	if err := l.Check(ctx); err != nil {
		t.Fatalf("check of a log with an op past the limits: %v", err)
	}
	op, found, err := l.Get(dev(2), 1)
	if err != nil || !found || len(op.Parent) != 2000 {
		t.Fatalf("get: %v %v, %d entries", found, err, len(op.Parent))
	}
	if _, err := op.MarshalBinary(); !errors.Is(err, ErrInvalid) {
		t.Fatalf("encoded to send: %v", err)
	}
	var wire Op
	if err := wire.UnmarshalBinary(enc); !errors.Is(err, ErrMalformed) {
		t.Fatalf("taken from a peer: %v", err)
	}
}

// A peer's op naming this device is refused: the log holds every op this
// device made, so such an op is a forgery, and taking it would give a
// made-up op this device's next sequence number.
func TestInsertRefusesThisDevicesOrigin(t *testing.T) {
	ctx := context.Background()
	l := openLog(t, t.TempDir(), 1)
	defer l.Close()
	mine, err := l.Append(ctx, Op{Kind: KindWrite, Path: "mine"})
	if err != nil {
		t.Fatal(err)
	}
	self := mine[0].Origin
	if _, err := l.Insert(ctx, mine[0]); err != nil {
		t.Fatalf("an op of its own the log holds, sent back: %v", err)
	}
	forged := Op{Origin: self, Seq: 2, Lamport: 9, Kind: KindDelete, Path: "mine"}
	if _, err := l.Insert(ctx, forged); !errors.Is(err, ErrOwnOrigin) {
		t.Fatalf("a forged op of this device: %v, want ErrOwnOrigin", err)
	}
	next, err := l.Append(ctx, Op{Kind: KindWrite, Path: "next"})
	if err != nil || next[0].Seq != 2 {
		t.Fatalf("this device's next op: %v %v, want sequence 2", next, err)
	}
}

// A received Lamport clock past MaxLamport is refused, so the next local
// op never wraps to 0.
func TestInsertRefusesALamportPastTheBound(t *testing.T) {
	ctx := context.Background()
	l := openLog(t, t.TempDir(), 1)
	defer l.Close()
	peer := certs.DeviceID{0xcc}
	if _, err := l.Insert(ctx, Op{Origin: peer, Seq: 1, Lamport: 1<<64 - 1, Kind: KindDelete, Path: "x"}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Lamport 2^64-1: %v, want ErrInvalid", err)
	}
	if _, err := l.Insert(ctx, Op{Origin: peer, Seq: 1, Lamport: MaxLamport, Kind: KindDelete, Path: "x"}); err != nil {
		t.Fatalf("Lamport at the bound: %v", err)
	}
	next, err := l.Append(ctx, Op{Kind: KindWrite, Path: "next"})
	if err != nil || next[0].Lamport != MaxLamport+1 {
		t.Fatalf("next local op: %v %v, want Lamport %d", next, err, uint64(MaxLamport)+1)
	}
}
