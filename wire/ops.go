package wire

import (
	"encoding/binary"
	"fmt"

	"github.com/drive-node/drive-node/certs"
	"github.com/drive-node/drive-node/content"
	"github.com/drive-node/drive-node/internal/fields"
	"github.com/drive-node/drive-node/oplog"
)

// minOpBytes is the fewest bytes one op takes in an Ops body, so a body
// with k bytes left holds at most k/minOpBytes ops: the decoder refuses a
// larger count before allocating for it (a decoded op takes several
// times its shortest encoding). The shortest op is a write with every
// other field zero: a one-byte length prefix, then oplog's encoding with
// every varint one byte and every string and the version empty —
// encoding version and kind, origin, seq and lamport, path and new-path
// lengths, hash, size, mode and mtime, version length. TestMinOpBytes
// holds it to the encoding.
const minOpBytes = 1 + 2 + len(certs.DeviceID{}) + 2 + 2 + len(content.Hash{}) + 3 + 1

// Ops carries ops the receiver lacks, each origin's in sequence order.
type Ops struct {
	Ops []oplog.Op
}

// Type implements Message.
func (*Ops) Type() Type { return TypeOps }

// AppendBody implements Message.
func (m *Ops) AppendBody(b []byte) ([]byte, error) {
	b = binary.AppendUvarint(b, uint64(len(m.Ops)))
	var tmp []byte
	for _, op := range m.Ops {
		var err error
		tmp, err = op.AppendBinary(tmp[:0])
		if err != nil {
			return b, fmt.Errorf("wire: encode %s: %w", op, err)
		}
		b = appendBytes(b, tmp)
	}
	return b, nil
}

func (m *Ops) decode(d *fields.Decoder) {
	n := d.Uvarint("op count")
	if d.Err() != nil {
		return
	}
	if most := uint64(d.Left() / minOpBytes); n > most {
		d.Fail("op count %d: the %d bytes left hold at most %d ops", n, d.Left(), most)
		return
	}
	m.Ops = make([]oplog.Op, 0, n)
	for i := uint64(0); i < n && d.Err() == nil; i++ {
		raw := d.Bytes("op", oplog.MaxOpSize)
		if d.Err() != nil {
			return
		}
		var op oplog.Op
		if err := op.UnmarshalBinary(raw); err != nil {
			d.Fail("op %d: %v", i, err)
			return
		}
		m.Ops = append(m.Ops, op)
	}
}

// Progress tells the peer how far the sender now has every origin's log,
// after it persisted ops the peer sent.
type Progress struct {
	Have map[certs.DeviceID]uint64
}

// Type implements Message.
func (*Progress) Type() Type { return TypeProgress }

// AppendBody implements Message.
func (m *Progress) AppendBody(b []byte) ([]byte, error) {
	return appendVector(b, m.Have, "progress's have")
}

func (m *Progress) decode(d *fields.Decoder) { m.Have = readVector(d, "have") }
