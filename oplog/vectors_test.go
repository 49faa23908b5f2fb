package oplog_test

import (
	"bytes"
	"errors"
	"reflect"
	"testing"

	"github.com/drive-node/drive-node/internal/vectors"
	"github.com/drive-node/drive-node/oplog"
	"github.com/drive-node/drive-node/wire"
)

// TestOpVectors checks oplog/testdata/ops.json both ways: each op encodes
// to exactly its bytes and the bytes decode to exactly the op; every
// refused encoding fails to decode. The encoding is what peers exchange
// in Ops messages and what the log keeps on disk, so these tests fail on
// any change to it until the vectors and wire.ProtocolVersion change
// together (docs/protocol.md).
func TestOpVectors(t *testing.T) {
	var v struct {
		Ops []struct {
			Name     string      `json:"name"`
			Encoding vectors.Hex `json:"encoding"`
			Op       vectors.Op  `json:"op"`
		} `json:"ops"`
		Refused []struct {
			Name     string      `json:"name"`
			Encoding vectors.Hex `json:"encoding"`
		} `json:"refused"`
	}
	vectors.Load(t, "testdata/ops.json", wire.ProtocolVersion, &v)
	kinds := map[oplog.Kind]bool{}
	for _, c := range v.Ops {
		want := c.Op.ToOp(t)
		kinds[want.Kind] = true
		b, err := want.MarshalBinary()
		if err != nil {
			t.Errorf("%s: encode: %v", c.Name, err)
		} else if !bytes.Equal(b, c.Encoding) {
			t.Errorf("%s: encodes to\n%x\nwant\n%x", c.Name, b, []byte(c.Encoding))
		}
		var got oplog.Op
		if err := got.UnmarshalBinary(c.Encoding); err != nil {
			t.Errorf("%s: decode: %v", c.Name, err)
		} else if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: decodes to\n%+v\nwant\n%+v", c.Name, got, want)
		}
	}
	for k := oplog.KindWrite; k <= oplog.KindRmdir; k++ {
		if !kinds[k] {
			t.Errorf("no vector for a %s op", k)
		}
	}
	for _, c := range v.Refused {
		var got oplog.Op
		if err := got.UnmarshalBinary(c.Encoding); !errors.Is(err, oplog.ErrMalformed) {
			t.Errorf("%s: decoded %+v, %v; want an error wrapping ErrMalformed", c.Name, got, err)
		}
	}
	if len(v.Refused) == 0 {
		t.Error("no refused encodings")
	}
}
