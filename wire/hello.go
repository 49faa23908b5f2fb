package wire

import (
	"encoding/binary"
	"unicode/utf8"

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
	b = appendBytes(b, []byte(cutName(m.Name)))
	return appendVector(b, m.Have, "hello's have")
}

// cutName returns name cut to maxName bytes at a rune boundary: a cut
// through a rune would send the peer a name that is not UTF-8, which it
// shows (status, logs) as garbage or refuses.
func cutName(name string) string {
	if len(name) <= maxName {
		return name
	}
	cut := maxName
	// name[cut] is the first byte left out; while it continues a rune,
	// that rune began before the cut and goes too. A rune is at most
	// utf8.UTFMax bytes, so past that the name was not UTF-8 anyway.
	for back := 0; back < utf8.UTFMax-1 && cut > 0 && !utf8.RuneStart(name[cut]); back++ {
		cut--
	}
	if !utf8.RuneStart(name[cut]) {
		cut = maxName
	}
	return name[:cut]
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
