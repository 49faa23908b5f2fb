package wire

import (
	"encoding/binary"
	"fmt"

	"github.com/drive-node/drive-node/internal/fields"
)

// Origins introduces the devices whose ops the sender is about to send:
// each one's public key, PKIX-encoded as its certificate holds it (the
// SHA-256 of which is its device ID). Ops carry signatures that only an
// origin's key verifies; a receiver that lacks a key takes it from here,
// if it takes that origin at all. A sender sends an origin's key once
// per connection, before the first Ops frame with that origin's ops.
type Origins struct {
	Keys [][]byte
}

// MaxKeyLen bounds one key in Origins. A P-256 key takes 91 bytes.
const MaxKeyLen = 256

// MaxOriginsPerFrame bounds the keys in one Origins frame (a sender with
// more sends several frames): with keys at MaxKeyLen, well within
// MaxFrame.
const MaxOriginsPerFrame = 4096

// Type implements Message.
func (*Origins) Type() Type { return TypeOrigins }

// AppendBody implements Message.
func (m *Origins) AppendBody(b []byte) ([]byte, error) {
	if len(m.Keys) > MaxOriginsPerFrame {
		return b, fmt.Errorf("wire: %d keys in one Origins frame, over %d", len(m.Keys), MaxOriginsPerFrame)
	}
	b = binary.AppendUvarint(b, uint64(len(m.Keys)))
	for _, k := range m.Keys {
		if len(k) == 0 || len(k) > MaxKeyLen {
			return b, fmt.Errorf("wire: a key of %d bytes in Origins, want 1 to %d", len(k), MaxKeyLen)
		}
		b = appendBytes(b, k)
	}
	return b, nil
}

func (m *Origins) decode(d *fields.Decoder) {
	n := d.Uvarint("key count")
	switch {
	case d.Err() != nil:
		return
	case n > MaxOriginsPerFrame:
		d.Fail("%d keys, over %d", n, MaxOriginsPerFrame)
		return
	case n > uint64(d.Left()/2): // a key takes at least its length and a byte
		d.Fail("%d keys do not fit in %d bytes", n, d.Left())
		return
	}
	m.Keys = make([][]byte, 0, n)
	for i := uint64(0); i < n && d.Err() == nil; i++ {
		k := d.Bytes("key", MaxKeyLen)
		if d.Err() == nil && len(k) == 0 {
			d.Fail("key %d is empty", i)
		}
		m.Keys = append(m.Keys, append([]byte(nil), k...))
	}
}
