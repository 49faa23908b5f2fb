package oplog

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/drive-node/drive-node/certs"
	"github.com/drive-node/drive-node/content"
	"github.com/drive-node/drive-node/internal/fields"
	"github.com/drive-node/drive-node/vclock"
)

// Kind is what an operation does to its path.
type Kind uint8

// The kinds of operation.
const (
	KindWrite  Kind = iota + 1 // create or modify a regular file
	KindDelete                 // remove a file
	KindRename                 // move Path to NewPath, content unchanged
	KindMkdir                  // create a directory
	KindRmdir                  // remove an (empty) directory
)

// String returns the kind's name as logs show it ("write", "rename", …).
func (k Kind) String() string {
	switch k {
	case KindWrite:
		return "write"
	case KindDelete:
		return "delete"
	case KindRename:
		return "rename"
	case KindMkdir:
		return "mkdir"
	case KindRmdir:
		return "rmdir"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Op is one accepted change to the folder, made by device Origin as its
// Seq-th operation.
type Op struct {
	Origin  certs.DeviceID
	Seq     uint64 // 1, 2, 3, … per origin, never reused
	Lamport uint64 // Lamport clock at the origin when the op was made
	Kind    Kind
	Path    string // slash-separated, relative to the folder root
	NewPath string // rename target, empty otherwise
	Hash    content.Hash
	Size    int64
	Mode    uint32 // permission bits
	MTime   int64  // unix nanoseconds
	// Parent is the version of Path the origin had when it made the op:
	// the op's own version is Parent with Origin's entry set to Seq.
	Parent vclock.Vector
	// Prev is the Link of the origin's op Seq-1 (zero for Seq 1): it
	// chains the origin's ops, so a signature over one op's Link covers
	// every op before it.
	Prev Link
	// Sig is the origin's signature over the op's Link (see Seal), or nil.
	// An origin signs at least the last op of each Append call and one op
	// in MaxUnsignedRun; ops between are proven by the chain.
	Sig []byte
	// Legacy marks an op made before ops were signed (encoding 1): it has
	// no Prev and no Sig, and peers take it only from its origin itself.
	// Append never makes one; a log keeps those it holds.
	Legacy bool
}

// Version returns the version of the path that this op produces.
func (o Op) Version() vclock.Vector { return o.Parent.With(o.Origin, o.Seq) }

// String describes the op for logs.
func (o Op) String() string {
	s := fmt.Sprintf("%s#%d %s %q", o.Origin.Short(), o.Seq, o.Kind, o.Path)
	if o.Kind == KindRename {
		s += fmt.Sprintf(" -> %q", o.NewPath)
	}
	return s
}

// The first byte of an op's encoding. An op of encoding 1 (Legacy) has
// neither Prev nor Sig.
const (
	encodingV1 = 1
	encodingV2 = 2
)

// minParentEntry is the fewest bytes one Parent entry takes: the device,
// then a one-byte counter. A declared entry count is checked against the
// bytes left before anything is allocated for it.
const minParentEntry = len(certs.DeviceID{}) + 1

// ErrMalformed is wrapped by every decoding error.
var ErrMalformed = errors.New("oplog: malformed op")

// AppendBinary appends the binary encoding of o to b: its body (what
// Link hashes), then, unless o is Legacy, the length of Sig and Sig. It
// refuses, with an error wrapping ErrInvalid, an op that Validate
// refuses: what it writes is always what UnmarshalBinary reads back.
func (o Op) AppendBinary(b []byte) ([]byte, error) {
	if err := o.Validate(); err != nil {
		return b, err
	}
	start := len(b)
	b = o.appendBody(b)
	if !o.Legacy {
		b = binary.AppendUvarint(b, uint64(len(o.Sig)))
		b = append(b, o.Sig...)
	}
	// Validate's limits keep every op within MaxOpSize (TestLargestOp);
	// this holds the encoding to it should they ever drift apart.
	if n := len(b) - start; n > MaxOpSize {
		return b[:start], fmt.Errorf("%w: %s encodes to %d bytes, over %d", ErrInvalid, o, n, MaxOpSize)
	}
	return b, nil
}

// EncodedLen returns the length of o's encoding (AppendBinary's), without
// encoding it.
func (o Op) EncodedLen() int {
	n := 2 + len(o.Origin) + uvarintLen(o.Seq) + uvarintLen(o.Lamport) +
		uvarintLen(uint64(len(o.Path))) + len(o.Path) + uvarintLen(uint64(len(o.NewPath))) + len(o.NewPath) +
		len(o.Hash) + varintLen(o.Size) + uvarintLen(uint64(o.Mode)) + varintLen(o.MTime) +
		uvarintLen(uint64(len(o.Parent)))
	for _, e := range o.Parent {
		n += len(e.Device) + uvarintLen(e.Counter)
	}
	if !o.Legacy {
		n += len(o.Prev) + uvarintLen(uint64(len(o.Sig))) + len(o.Sig)
	}
	return n
}

func uvarintLen(v uint64) int {
	var b [binary.MaxVarintLen64]byte
	return binary.PutUvarint(b[:], v)
}

func varintLen(v int64) int {
	var b [binary.MaxVarintLen64]byte
	return binary.PutVarint(b[:], v)
}

// appendBody appends the part of o's encoding that Link hashes. It does
// not check o: a stored op past today's limits still has a Link of its
// own.
func (o Op) appendBody(b []byte) []byte {
	version := byte(encodingV2)
	if o.Legacy {
		version = encodingV1
	}
	b = append(b, version, byte(o.Kind))
	b = append(b, o.Origin[:]...)
	b = binary.AppendUvarint(b, o.Seq)
	b = binary.AppendUvarint(b, o.Lamport)
	b = binary.AppendUvarint(b, uint64(len(o.Path)))
	b = append(b, o.Path...)
	b = binary.AppendUvarint(b, uint64(len(o.NewPath)))
	b = append(b, o.NewPath...)
	b = append(b, o.Hash[:]...)
	b = binary.AppendVarint(b, o.Size)
	b = binary.AppendUvarint(b, uint64(o.Mode))
	b = binary.AppendVarint(b, o.MTime)
	b = binary.AppendUvarint(b, uint64(len(o.Parent)))
	for _, e := range o.Parent {
		b = append(b, e.Device[:]...)
		b = binary.AppendUvarint(b, e.Counter)
	}
	if !o.Legacy {
		b = append(b, o.Prev[:]...)
	}
	return b
}

// MarshalBinary returns the binary encoding of o.
func (o Op) MarshalBinary() ([]byte, error) {
	return o.AppendBinary(make([]byte, 0, 240+len(o.Path)+len(o.NewPath)))
}

// UnmarshalBinary decodes an op written by MarshalBinary. It takes only
// what AppendBinary writes: an encoding over MaxOpSize, varints longer
// than their shortest form and a Parent that Validate refuses are
// malformed. Every error wraps ErrMalformed and says which field was bad.
func (o *Op) UnmarshalBinary(b []byte) error {
	if len(b) > MaxOpSize {
		return fmt.Errorf("%w: %d bytes, over %d", ErrMalformed, len(b), MaxOpSize)
	}
	return o.decode(b, false)
}

// unmarshalStored decodes an op the log wrote itself. It differs from
// UnmarshalBinary only for ops logs took before the limits were shared
// with the wire (longer versions, versions out of order): the log reads
// its own data back rather than failing on it.
func (o *Op) unmarshalStored(b []byte) error { return o.decode(b, true) }

// decode reads an op; stored relaxes the Parent's limits as
// unmarshalStored says.
func (o *Op) decode(b []byte, stored bool) error {
	maxParents := MaxParents
	if stored {
		maxParents = storedMaxParents
	}
	d := fields.NewDecoder(b, ErrMalformed)
	v := d.Byte("encoding version")
	if d.Err() == nil && v != encodingV1 && v != encodingV2 {
		return fmt.Errorf("%w: unknown encoding version %d", ErrMalformed, v)
	}
	out := Op{Legacy: v == encodingV1}
	out.Kind = Kind(d.Byte("kind"))
	d.Fixed(out.Origin[:], "origin")
	out.Seq = d.Uvarint("seq")
	out.Lamport = d.Uvarint("lamport")
	out.Path = d.String("path", MaxPathLen)
	out.NewPath = d.String("new path", MaxPathLen)
	d.Fixed(out.Hash[:], "hash")
	out.Size = d.Varint("size")
	mode := d.Uvarint("mode")
	out.MTime = d.Varint("mtime")
	n := d.Uvarint("version length")
	if d.Err() == nil && n > uint64(maxParents) {
		d.Fail("version length %d over limit %d", n, maxParents)
	}
	if d.Err() == nil && n > uint64(d.Left()/minParentEntry) {
		d.Fail("version of %d entries does not fit in %d bytes", n, d.Left())
	}
	if d.Err() == nil && n > 0 {
		out.Parent = make(vclock.Vector, 0, n)
	}
	for i := uint64(0); i < n && d.Err() == nil; i++ {
		var e vclock.Entry
		d.Fixed(e.Device[:], "version device")
		e.Counter = d.Uvarint("version counter")
		out.Parent = append(out.Parent, e)
	}
	if !out.Legacy {
		d.Fixed(out.Prev[:], "prev")
		if sig := d.Bytes("sig", MaxSigLen); len(sig) > 0 {
			out.Sig = append([]byte(nil), sig...)
		}
	}
	if err := d.Finish(); err != nil {
		return err
	}
	if out.Kind < KindWrite || out.Kind > KindRmdir {
		return fmt.Errorf("%w: unknown kind %d", ErrMalformed, out.Kind)
	}
	if mode > 0o7777 {
		return fmt.Errorf("%w: mode %o out of range", ErrMalformed, mode)
	}
	if !stored {
		if err := out.Parent.Check(); err != nil {
			return fmt.Errorf("%w: version: %w", ErrMalformed, err)
		}
	}
	out.Mode = uint32(mode)
	*o = out
	return nil
}
