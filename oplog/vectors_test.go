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
		Chain struct {
			Key   vectors.Hex   `json:"key"`
			Ops   []string      `json:"ops"`
			Links []vectors.Hex `json:"links"`
		} `json:"chain"`
		Refused []struct {
			Name     string      `json:"name"`
			Encoding vectors.Hex `json:"encoding"`
		} `json:"refused"`
	}
	vectors.Load(t, "testdata/ops.json", wire.ProtocolVersion, &v)
	kinds := map[oplog.Kind]bool{}
	byName := map[string]oplog.Op{}
	for _, c := range v.Ops {
		want := c.Op.ToOp(t)
		byName[c.Name] = want
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
	checkChain(t, v.Chain.Key, v.Chain.Ops, v.Chain.Links, byName)
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

// checkChain checks the vectors' chain: each op's Link, each Prev the Link
// before it, each signature verifying under the key and failing once any
// byte of the op it covers changes.
func checkChain(t *testing.T, der []byte, names []string, links []vectors.Hex, ops map[string]oplog.Op) {
	t.Helper()
	key, err := oplog.ParseOriginKey(der)
	if err != nil {
		t.Fatal(err)
	}
	var prev oplog.Link
	signed := 0
	for i, name := range names {
		op, ok := ops[name]
		if !ok {
			t.Fatalf("chain names %q, which is not among the ops", name)
		}
		if op.Origin != key.ID {
			t.Errorf("%s: origin %s, the key's ID is %s", name, op.Origin.Short(), key.ID.Short())
		}
		if link := op.Link(); !bytes.Equal(link[:], links[i]) {
			t.Errorf("%s: Link %x, want %x", name, link, []byte(links[i]))
		}
		if op.Prev != prev {
			t.Errorf("%s: Prev %x, want the Link before it, %x", name, op.Prev, prev)
		}
		prev = op.Link()
		if len(op.Sig) == 0 {
			continue
		}
		signed++
		if !key.Signed(op) {
			t.Errorf("%s: its signature does not verify", name)
		}
		altered := op
		altered.Lamport++
		if key.Signed(altered) {
			t.Errorf("%s: its signature verifies for an altered op", name)
		}
	}
	if signed == 0 {
		t.Error("no signed op in the chain")
	}
}
