package wire

import (
	"encoding/binary"
	"errors"
	"runtime"
	"strings"
	"testing"

	"github.com/drive-node/drive-node/internal/fields"
	"github.com/drive-node/drive-node/oplog"
)

// allocated returns the bytes f allocates on the heap.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestOpsCountBoundedByFrame decodes an Ops body that declares one op per
// byte left: the count fits the bytes but not the ops, which take at
// least minOpBytes each. It is refused before the ops are allocated
// (168 bytes an op: 168 MiB for this MiB).
func TestOpsCountBoundedByFrame(t *testing.T) {
	const left = 1 << 20
	body := binary.AppendUvarint(nil, left)
	body = append(body, make([]byte, left)...)
	var err error
	n := allocated(func() { _, err = Decode(TypeOps, body) })
	if n > 64<<10 {
		t.Errorf("decoding allocated %d bytes for a %d-byte body", n, len(body))
	}
	if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "op count") {
		t.Errorf("got %v, want a malformed op count", err)
	}
}

// TestMinOpBytes checks minOpBytes against the encoding: a legacy op
// with every varint one byte and every string and the version empty is
// the shortest (a signed op also has a Prev and a Sig length), and its
// length prefix one byte.
func TestMinOpBytes(t *testing.T) {
	shortest := oplog.Op{Kind: oplog.KindWrite, Legacy: true}
	b, err := shortest.AppendBinary(nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := len(appendBytes(nil, b)); got != minOpBytes {
		t.Fatalf("the shortest op takes %d bytes in an Ops body, minOpBytes is %d", got, minOpBytes)
	}
	if b, _ := (oplog.Op{Kind: oplog.KindWrite}).AppendBinary(nil); len(b) < minOpBytes {
		t.Fatalf("the shortest signed op takes %d bytes, under minOpBytes %d", len(b), minOpBytes)
	}
	// A body of three shortest ops passes the count check; a byte less,
	// it does not.
	body, _ := (&Ops{Ops: []oplog.Op{shortest, shortest, shortest}}).AppendBody(nil)
	for _, cut := range []int{0, 1} {
		d := fields.NewDecoder(body[:len(body)-cut], ErrMalformed)
		(&Ops{}).decode(d)
		if refused := d.Err() != nil && strings.Contains(d.Err().Error(), "op count"); refused != (cut == 1) {
			t.Errorf("body %d bytes short of three shortest ops: %v", cut, d.Err())
		}
	}
}
