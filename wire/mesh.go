package wire

import (
	"encoding/binary"
	"fmt"
	"unicode/utf8"

	"github.com/drive-node/drive-node/certs"
	"github.com/drive-node/drive-node/internal/fields"
)

// Bounds of the mesh messages, checked by encoders and decoders alike.
const (
	// MaxMembers bounds the devices one Introduce frame names; a sender
	// with more names the first MaxMembers.
	MaxMembers = 256
	// MaxMemberName bounds a member's name, in bytes.
	MaxMemberName = 256
	// MaxMeshSig bounds a signature: an ASN.1 ECDSA P-256 signature
	// takes at most 72 bytes.
	MaxMeshSig = 72
)

// Domains of the statements the mesh messages carry a signature over:
// each names what is signed, so a signature over one statement is never
// one over another statement, an op or a handshake.
const (
	introduceDomain = "drive-node introduce 1\x00"
	revokeDomain    = "drive-node revoke 1\x00"
)

// Member is a device named in an Introduce: its ID and its name for
// people ("" if none).
type Member struct {
	ID   certs.DeviceID
	Name string
}

// Introduce is the sender's signed statement that it vouches for
// Members, the other devices of its mesh: a receiver that counts the
// sender as a mesh member pairs those it lacks. Sig is the sender's
// signature (its identity key, as its certificate holds it) over
// IntroduceStatement(sender, Members).
type Introduce struct {
	Members []Member
	Sig     []byte
}

// IntroduceStatement is the domain-separated encoding that an Introduce
// from sender signs: the domain, the sender's ID, then the count and each
// member's ID and length-prefixed name.
func IntroduceStatement(sender certs.DeviceID, members []Member) []byte {
	b := append([]byte(introduceDomain), sender[:]...)
	b = binary.AppendUvarint(b, uint64(len(members)))
	for _, m := range members {
		b = append(b, m.ID[:]...)
		b = appendBytes(b, []byte(m.Name))
	}
	return b
}

// Type implements Message.
func (*Introduce) Type() Type { return TypeIntroduce }

// AppendBody implements Message. It refuses what the decoder refuses.
func (m *Introduce) AppendBody(b []byte) ([]byte, error) {
	if len(m.Members) > MaxMembers {
		return b, fmt.Errorf("wire: introduce: %d members, over %d", len(m.Members), MaxMembers)
	}
	if err := checkSig(m.Sig); err != nil {
		return b, fmt.Errorf("wire: introduce: %w", err)
	}
	b = binary.AppendUvarint(b, uint64(len(m.Members)))
	for _, mb := range m.Members {
		if err := checkMember(mb); err != nil {
			return b, fmt.Errorf("wire: introduce: %w", err)
		}
		b = append(b, mb.ID[:]...)
		b = appendBytes(b, []byte(mb.Name))
	}
	return appendBytes(b, m.Sig), nil
}

func (m *Introduce) decode(d *fields.Decoder) {
	n := d.Uvarint("member count")
	switch {
	case d.Err() != nil:
		return
	case n > MaxMembers:
		d.Fail("%d members, over %d", n, MaxMembers)
		return
	case n > uint64(d.Left()/33): // an ID and a name's length at least
		d.Fail("%d members do not fit in %d bytes", n, d.Left())
		return
	}
	m.Members = make([]Member, 0, n)
	seen := make(map[certs.DeviceID]bool, n)
	for i := uint64(0); i < n && d.Err() == nil; i++ {
		var mb Member
		d.Fixed(mb.ID[:], "member")
		mb.Name = d.String("member name", MaxMemberName)
		if d.Err() != nil {
			return
		}
		if err := checkMember(mb); err != nil {
			d.Fail("member %d: %v", i, err)
			return
		}
		if seen[mb.ID] {
			d.Fail("member %s named twice", mb.ID.Short())
			return
		}
		seen[mb.ID] = true
		m.Members = append(m.Members, mb)
	}
	m.Sig = readSig(d)
}

// Revoke is the sender's signed statement that it no longer trusts the
// device ID: a receiver that counts the sender as a mesh member unpairs
// ID if it was introduced there, and takes no later introduction of it.
// Sig is the sender's signature over RevokeStatement(sender, ID).
type Revoke struct {
	ID  certs.DeviceID
	Sig []byte
}

// RevokeStatement is the domain-separated encoding that a Revoke from
// sender signs: the domain, the sender's ID, then the revoked ID.
func RevokeStatement(sender, id certs.DeviceID) []byte {
	b := append([]byte(revokeDomain), sender[:]...)
	return append(b, id[:]...)
}

// Type implements Message.
func (*Revoke) Type() Type { return TypeRevoke }

// AppendBody implements Message. It refuses what the decoder refuses.
func (m *Revoke) AppendBody(b []byte) ([]byte, error) {
	if m.ID.IsZero() {
		return b, fmt.Errorf("wire: revoke: no device named")
	}
	if err := checkSig(m.Sig); err != nil {
		return b, fmt.Errorf("wire: revoke %s: %w", m.ID.Short(), err)
	}
	b = append(b, m.ID[:]...)
	return appendBytes(b, m.Sig), nil
}

func (m *Revoke) decode(d *fields.Decoder) {
	d.Fixed(m.ID[:], "revoked device")
	if d.Err() == nil && m.ID.IsZero() {
		d.Fail("revoke names the zero device")
		return
	}
	m.Sig = readSig(d)
}

// checkMember refuses a zero ID and a name that is too long, not UTF-8 or
// holds control characters.
func checkMember(m Member) error {
	switch {
	case m.ID.IsZero():
		return fmt.Errorf("a member with the zero ID")
	case len(m.Name) > MaxMemberName:
		return fmt.Errorf("member %s: a name of %d bytes, over %d", m.ID.Short(), len(m.Name), MaxMemberName)
	case !utf8.ValidString(m.Name):
		return fmt.Errorf("member %s: a name that is not UTF-8", m.ID.Short())
	}
	for _, r := range m.Name {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("member %s: a control character in its name", m.ID.Short())
		}
	}
	return nil
}

// checkSig refuses an empty or oversized signature.
func checkSig(sig []byte) error {
	if len(sig) == 0 || len(sig) > MaxMeshSig {
		return fmt.Errorf("a signature of %d bytes, want 1 to %d", len(sig), MaxMeshSig)
	}
	return nil
}

func readSig(d *fields.Decoder) []byte {
	sig := d.Bytes("signature", MaxMeshSig)
	if d.Err() == nil && len(sig) == 0 {
		d.Fail("no signature")
	}
	return append([]byte(nil), sig...)
}
