package oplog

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
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
	if _, err := l.Insert(ctx, dev(2), remote); !errors.Is(err, ErrInvalid) {
		t.Fatalf("insert of a 2,300-entry version: %v", err)
	}
	unsorted := remote
	two := manyDevices(2)
	unsorted.Parent = vclock.Vector{two[1], two[0]}
	if _, err := l.Insert(ctx, dev(2), unsorted); !errors.Is(err, ErrInvalid) || !errors.Is(err, vclock.ErrInvalid) {
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

// TestLogHoldsAtMostMaxOriginsKeys: a Hello lists every origin a log
// holds and carries at most MaxOrigins. The log takes ops only of origins
// whose keys it holds, and holds at most MaxOrigins keys, its own among
// them, so a log never holds more origins than a Hello lists.
func TestLogHoldsAtMostMaxOriginsKeys(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l := openLog(t, dir, 1)
	b := l.db.NewBatch()
	for range MaxOrigins - 1 {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		der, err := x509.MarshalPKIXPublicKey(k.Public())
		if err != nil {
			t.Fatal(err)
		}
		id := certs.DeviceIDFromDER(der)
		b.Set(originKeyKey(id), append(id[:], der...), nil)
	}
	l = reopenWith(t, l, dir, b)
	defer l.Close()
	k, err := signerKey(testKey(2))
	if err != nil {
		t.Fatal(err)
	}
	if err := l.AddOrigin(ctx, k, k.ID); !errors.Is(err, ErrTooManyOrigins) {
		t.Fatalf("key %d: %v, want ErrTooManyOrigins", MaxOrigins+1, err)
	}
	if _, err := l.Insert(ctx, dev(2), signedBy(t, 2, Link{}, Op{Origin: dev(2), Seq: 1, Lamport: 1, Kind: KindDelete, Path: "x"})...); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("an op of an origin whose key was refused: %v", err)
	}
	if _, err := l.Append(ctx, Op{Kind: KindWrite, Path: "mine"}); err != nil {
		t.Fatalf("the device's own op with %d other origins: %v", MaxOrigins-1, err)
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
	head, err := Op{Origin: dev(2), Seq: 1, Lamport: 1, Kind: KindWrite, Path: "old", Legacy: true}.MarshalBinary()
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
	l = reopenWith(t, l, dir, b)
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
	if _, err := l.Insert(ctx, dev(2), mine[0]); err != nil {
		t.Fatalf("an op of its own the log holds, sent back: %v", err)
	}
	forged := []Op{{Origin: self, Seq: 2, Lamport: 9, Kind: KindDelete, Path: "mine", Prev: mine[0].Link(), Sig: mine[0].Sig}}
	if _, err := l.Insert(ctx, dev(2), forged...); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("a forged op of this device: %v, want ErrUnauthenticated", err)
	}
	// Signed with this device's key: a copy of a log this device lost.
	lost := signedBy(t, 1, mine[0].Link(), forged[0])
	if _, err := l.Insert(ctx, dev(2), lost...); !errors.Is(err, ErrOwnOrigin) {
		t.Fatalf("an op of this device it does not hold: %v, want ErrOwnOrigin", err)
	}
	next, err := l.Append(ctx, Op{Kind: KindWrite, Path: "next"})
	if err != nil || next[0].Seq != 2 {
		t.Fatalf("this device's next op: %v %v, want sequence 2", next, err)
	}
}

// A received Lamport clock past MaxLamport, or more than MaxLamportJump
// past the log's, is refused, so the next local op never wraps to 0.
func TestInsertRefusesALamportPastTheBound(t *testing.T) {
	ctx := context.Background()
	l := openLog(t, t.TempDir(), 1)
	defer l.Close()
	trust(t, l, 3)
	op := func(lamport uint64) []Op {
		return signedBy(t, 3, Link{}, Op{Origin: dev(3), Seq: 1, Lamport: lamport, Kind: KindDelete, Path: "x"})
	}
	if _, err := l.Insert(ctx, dev(3), op(1<<64-1)...); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Lamport 2^64-1: %v, want ErrInvalid", err)
	}
	if _, err := l.Insert(ctx, dev(3), op(MaxLamportJump+1)...); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Lamport %d past this log's 0: %v, want ErrInvalid", uint64(MaxLamportJump)+1, err)
	}
	if _, err := l.Insert(ctx, dev(3), op(MaxLamportJump)...); err != nil {
		t.Fatalf("Lamport at the bound: %v", err)
	}
	next, err := l.Append(ctx, Op{Kind: KindWrite, Path: "next"})
	if err != nil || next[0].Lamport != MaxLamportJump+1 {
		t.Fatalf("next local op: %v %v, want Lamport %d", next, err, uint64(MaxLamportJump)+1)
	}
}

// reopenWith commits b, records written under the log l's feet as an
// earlier build or a damaged disk would leave them, and opens the log in
// dir again.
func reopenWith(t *testing.T, l *Log, dir string, b *pebble.Batch) *Log {
	t.Helper()
	if err := b.Commit(pebble.Sync); err != nil {
		t.Fatal(err)
	}
	b.Close()
	l.Close()
	return openLog(t, dir, 1)
}
