package oplog

import (
	"errors"
	"reflect"
	"testing"

	"github.com/drive-node/drive-node/certs"
	"github.com/drive-node/drive-node/content"
	"github.com/drive-node/drive-node/vclock"
)

func dev(b byte) certs.DeviceID { var d certs.DeviceID; d[0] = b; d[31] = b; return d }

func sampleOp() Op {
	return Op{
		Origin: dev(1), Seq: 42, Lamport: 99, Kind: KindRename,
		Path: "dir/a b.txt", NewPath: "dir/ü.txt", Hash: content.Sum([]byte("x")),
		Size: -1 << 40, Mode: 0o755, MTime: -5,
		Parent: vclock.Vector{}.With(dev(2), 7).With(dev(3), 1<<60),
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

func FuzzUnmarshal(f *testing.F) {
	good, _ := sampleOp().MarshalBinary()
	f.Add(good)
	f.Add([]byte{1, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		var op Op
		if err := op.UnmarshalBinary(b); err != nil {
			return
		}
		again, err := op.MarshalBinary()
		if err != nil {
			t.Fatalf("decoded op does not encode: %v", err)
		}
		var op2 Op
		if err := op2.UnmarshalBinary(again); err != nil || !reflect.DeepEqual(op, op2) {
			t.Fatalf("re-encoding not stable: %v", err)
		}
	})
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
