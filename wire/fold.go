package wire

import (
	"encoding/binary"
	"fmt"

	"github.com/drive-node/drive-node/certs"
	"github.com/drive-node/drive-node/internal/fields"
)

// Fold tells the receiver that the sender's log may lack ops of Origin
// up to sequence Through (oplog.Folded): they were superseded and folded
// away. The ops of Origin the sender sends after it may follow gaps
// within 1..Through, which the receiver takes (oplog.InsertFolded) only
// after this message. Through is at least 1: a log that lacks nothing
// sends no Fold.
type Fold struct {
	Origin  certs.DeviceID
	Through uint64
}

// Type implements Message.
func (*Fold) Type() Type { return TypeFold }

// AppendBody implements Message. It refuses what the decoder refuses.
func (m *Fold) AppendBody(b []byte) ([]byte, error) {
	if m.Origin.IsZero() || m.Through == 0 {
		return b, fmt.Errorf("wire: fold of %s through %d: names no origin or no op", m.Origin.Short(), m.Through)
	}
	b = append(b, m.Origin[:]...)
	return binary.AppendUvarint(b, m.Through), nil
}

func (m *Fold) decode(d *fields.Decoder) {
	d.Fixed(m.Origin[:], "fold's origin")
	m.Through = d.Uvarint("fold's through")
	if d.Err() == nil && (m.Origin.IsZero() || m.Through == 0) {
		d.Fail("fold names the zero device or sequence 0")
	}
}
