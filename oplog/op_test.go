package oplog

import (
	"bytes"
	"encoding/binary"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/drive-node/drive-node/certs"
	"github.com/drive-node/drive-node/content"
	"github.com/drive-node/drive-node/vclock"
)

// plainID returns a device ID made of b, in the order of b, for versions
// whose order a test depends on.
func plainID(b byte) certs.DeviceID { var d certs.DeviceID; d[0] = b; d[31] = b; return d }

func sampleOp() Op {
	return Op{
		Origin: dev(1), Seq: 42, Lamport: 99, Kind: KindRename,
		Path: "dir/a b.txt", NewPath: "dir/ü.txt", Hash: content.Sum([]byte("x")),
		Size: -1 << 40, Mode: 0o755, MTime: -5,
		Parent: vclock.Vector{}.With(plainID(2), 7).With(plainID(3), 1<<60),
	}
}

func TestOpRoundTrip(t *testing.T) {
	for _, op := range []Op{sampleOp(), {Origin: dev(9), Seq: 1, Kind: KindMkdir, Path: "d"}} {
		b, err := op.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var got Op
		if err := got.UnmarshalBinary(b); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, op) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", got, op)
		}
	}
}

func TestOpVersionIncludesItself(t *testing.T) {
	op := sampleOp()
	v := op.Version()
	if v.Get(op.Origin) != op.Seq || v.Compare(op.Parent) != vclock.After {
		t.Fatalf("version %v does not dominate parent %v with own seq", v, op.Parent)
	}
}

func TestUnmarshalRejects(t *testing.T) {
	good, _ := sampleOp().MarshalBinary()
	long := Op{Origin: dev(1), Seq: 1, Kind: KindWrite, Path: string(make([]byte, MaxPathLen+1))}
	if _, err := long.MarshalBinary(); err == nil {
		t.Fatal("over-long path encoded")
	}
	for name, b := range map[string][]byte{
		"empty":     nil,
		"version":   append([]byte{9}, good[1:]...),
		"kind":      append([]byte{1, 77}, good[2:]...),
		"truncated": good[:len(good)-3],
		"trailing":  append(append([]byte(nil), good...), 0),
		"huge path": append(append([]byte{1, 1}, make([]byte, 32)...), 1, 1, 0xff, 0xff, 0xff, 0xff, 0x0f),
	} {
		var op Op
		if err := op.UnmarshalBinary(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: got %v, want ErrMalformed", name, err)
		}
	}
}

// FuzzUnmarshal: whatever the bytes, the decoder does not panic, and what
// it takes is exactly what the encoder writes: the op encodes back to the
// same bytes (one encoding per op) and passes Validate, so the log would
// store it and a peer would take it. The stored-op reader takes at least
// as much, and the same op.
func FuzzUnmarshal(f *testing.F) {
	good, _ := sampleOp().MarshalBinary()
	f.Add(good)
	f.Add([]byte{1, 1})
	signed := sampleOp()
	signed.Prev, signed.Sig = Link{9}, bytes.Repeat([]byte{0x30}, 70)
	b, _ := signed.MarshalBinary()
	f.Add(b)
	legacy := sampleOp()
	legacy.Legacy = true
	b, _ = legacy.MarshalBinary()
	f.Add(b)
	many := sampleOp()
	for i := 0; i < 40; i++ {
		many.Parent = many.Parent.With(dev(byte(10+i)), uint64(i+1)<<(i%64))
	}
	b, _ = many.MarshalBinary()
	f.Add(b)
	for _, c := range refusedOps(f) {
		if len(c) < 1<<10 { // a long seed slows every mutation
			f.Add(c)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var op Op
		err := op.UnmarshalBinary(b)
		var stored Op
		serr := stored.unmarshalStored(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if serr != nil || !reflect.DeepEqual(op, stored) {
			t.Fatalf("the stored-op reader refused or changed an op the decoder took: %v", serr)
		}
		if err := op.Validate(); err != nil {
			t.Fatalf("decoded op fails Validate: %v", err)
		}
		again, err := op.MarshalBinary()
		if err != nil {
			t.Fatalf("decoded op does not encode: %v", err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("decoded\n%x\nre-encodes to\n%x", b, again)
		}
	})
}

// sampleParentLen is the length of sampleOp's Parent, the tail of its
// encoding: the count 2, then dev(2):7 (33 bytes) and dev(3):1<<60 (41).
const sampleParentLen = 1 + 33 + 41

// refusedOps returns encodings the decoder must refuse, one for each
// check, all made from a good op so that only the named field is wrong.
func refusedOps(t testing.TB) map[string][]byte {
	legacy := sampleOp()
	legacy.Legacy = true
	good, err := legacy.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	signed, err := sampleOp().MarshalBinary() // ends with Prev and a 0-byte Sig
	if err != nil {
		t.Fatal(err)
	}
	unsigned := signed[:len(signed)-1]
	tail := len(good) - sampleParentLen
	head := good[:tail]
	entry := func(d byte, c uint64) []byte { id := plainID(d); return binary.AppendUvarint(id[:], c) }
	parent := func(entries ...[]byte) []byte {
		b := append([]byte(nil), head...)
		b = binary.AppendUvarint(b, uint64(len(entries)))
		for _, e := range entries {
			b = append(b, e...)
		}
		return b
	}
	// The seq varint (42, one byte) sits after version, kind and origin.
	padded := append(append(append([]byte(nil), good[:34]...), 42|0x80, 0), good[35:]...)
	return map[string][]byte{
		"parent out of order":    parent(entry(3, 1), entry(2, 7)),
		"parent device twice":    parent(entry(2, 7), entry(2, 8)),
		"parent counter zero":    parent(entry(2, 0), entry(3, 1)),
		"parent zero device":     parent(append(make([]byte, 32), 1), entry(3, 1)),
		"parent count past data": parent(entry(2, 7))[:tail+1+33-1],
		"seq padded to 2 bytes":  padded,
		"over MaxOpSize":         append(parent(), make([]byte, MaxOpSize)...),
		"legacy with a Prev":     append(append([]byte(nil), good...), make([]byte, 32)...),
		"prev cut short":         signed[:len(signed)-2],
		"sig length padded":      append(append([]byte(nil), unsigned...), 0x80, 0),
		"sig over MaxSigLen":     append(binary.AppendUvarint(append([]byte(nil), unsigned...), MaxSigLen+1), make([]byte, MaxSigLen+1)...),
		"unknown encoding 3":     append([]byte{3}, signed[1:]...),
	}
}

// TestUnmarshalRefusesNonCanonical: a Parent out of the form vclock keeps,
// a varint longer than its shortest form or an encoding past MaxOpSize is
// malformed, though each would have been read before.
func TestUnmarshalRefusesNonCanonical(t *testing.T) {
	legacy := sampleOp()
	legacy.Legacy = true
	good, _ := legacy.MarshalBinary()
	if tail := good[len(good)-sampleParentLen:]; tail[0] != 2 {
		t.Fatalf("sampleOp's encoding does not end with its 2-entry parent: %x", tail)
	}
	for name, b := range refusedOps(t) {
		var op Op
		if err := op.UnmarshalBinary(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: got %v, want ErrMalformed", name, err)
		}
	}
}

// TestLargestOp: an op at every limit at once (paths of MaxPathLen,
// MaxParents entries, every varint at its longest, a Sig of MaxSigLen) encodes within
// MaxOpSize, so MaxParents alone says whether an op can be carried; one
// entry or byte more is refused by Validate and by the encoder.
func TestLargestOp(t *testing.T) {
	most := ^uint64(0)
	op := Op{Origin: dev(1), Seq: most, Lamport: most, Kind: KindRename,
		Path: strings.Repeat("p", MaxPathLen), NewPath: strings.Repeat("n", MaxPathLen),
		Size: -1 << 63, Mode: 0o7777, MTime: -1 << 63, Prev: Link{1}, Sig: bytes.Repeat([]byte{0x30}, MaxSigLen)}
	for i := 0; i < MaxParents; i++ {
		var d certs.DeviceID
		binary.BigEndian.PutUint32(d[:], uint32(i+1))
		op.Parent = append(op.Parent, vclock.Entry{Device: d, Counter: most})
	}
	b, err := op.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > MaxOpSize {
		t.Fatalf("the largest op encodes to %d bytes, over MaxOpSize %d", len(b), MaxOpSize)
	}
	t.Logf("largest op: %d bytes of %d", len(b), MaxOpSize)
	var back Op
	if err := back.UnmarshalBinary(b); err != nil || !reflect.DeepEqual(back, op) {
		t.Fatalf("the largest op does not read back: %v", err)
	}
	over := op
	over.Parent = op.Parent.With(certs.DeviceID{0xff}, 1)
	longer := op
	longer.NewPath += "n"
	for name, o := range map[string]Op{"one entry more": over, "one byte more": longer} {
		if err := o.Validate(); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: Validate = %v, want ErrInvalid", name, err)
		}
		if _, err := o.MarshalBinary(); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: encoded: %v", name, err)
		}
	}
}

func BenchmarkOpEncode(b *testing.B) {
	op := sampleOp()
	buf := make([]byte, 0, 256)
	for i := 0; i < b.N; i++ {
		buf, _ = op.AppendBinary(buf[:0])
	}
}

func BenchmarkOpDecode(b *testing.B) {
	enc, _ := sampleOp().MarshalBinary()
	for i := 0; i < b.N; i++ {
		var op Op
		if err := op.UnmarshalBinary(enc); err != nil {
			b.Fatal(err)
		}
	}
}
