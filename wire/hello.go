package wire

import (
	"encoding/binary"

	"github.com/drive-node/drive-node/certs"
	"github.com/drive-node/drive-node/internal/fields"
)

// maxName bounds the device name in Hello.
const maxName = 256

// Hello opens the control stream in both directions. The device itself is
// known from its TLS certificate, not from anything in Hello.
type Hello struct {
	// Version is the sender's ProtocolVersion.
	Version uint32
	// Name is the sender's human-readable name.
	Name string
	// Have is, for every origin device, the highest sequence of its ops
	// the sender has: the receiver sends what lies beyond.
	Have map[certs.DeviceID]uint64
}

// Type implements Message.
func (*Hello) Type() Type { return TypeHello }

// AppendBody implements Message.
func (m *Hello) AppendBody(b []byte) ([]byte, error) {
	b = binary.AppendUvarint(b, uint64(m.Version))
	name := m.Name
	if len(name) > maxName {
		name = name[:maxName]
	}
	b = appendBytes(b, []byte(name))
	return appendVector(b, m.Have), nil
}

func (m *Hello) decode(d *fields.Decoder) {
	v := d.Uvarint("version")
	if v > 1<<31 {
		d.Fail("version %d", v)
	}
	m.Version = uint32(v)
	m.Name = string(d.Bytes("name", maxName))
	m.Have = readVector(d, "have")
}
