// Package fields reads the fields of drive-node's binary encodings (an op
// in the log, a frame's body on the wire): single bytes, fixed-length
// byte strings, varints and length-prefixed byte strings.
//
// A Decoder remembers its first error and reads nothing after it, so a
// decode function reads its fields straight through and checks once.
// Every error wraps the malformed-input error of the encoding being read
// (oplog.ErrMalformed, wire.ErrMalformed) and names the field that was
// bad. A varint is accepted only in its shortest form, as encoders write
// it, so no value has two encodings. No length read from the input is trusted: a length-prefixed field
// is checked against its limit and against the bytes left before it is
// sliced, and nothing is allocated from a declared length.
package fields

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// ErrMalformed is what the errors of a Decoder made without one of the
// encoding's own wrap.
var ErrMalformed = errors.New("malformed encoding")

// Decoder reads fields from the front of a byte slice. Its zero value
// reads an empty input, and its errors wrap ErrMalformed.
type Decoder struct {
	b         []byte
	err       error
	malformed error
}

// NewDecoder returns a Decoder over b whose errors wrap malformed (or
// ErrMalformed if malformed is nil).
func NewDecoder(b []byte, malformed error) *Decoder {
	return &Decoder{b: b, malformed: malformed}
}

// Err returns the first error met, or nil.
func (d *Decoder) Err() error { return d.err }

// Left returns the number of bytes not read yet.
func (d *Decoder) Left() int { return len(d.b) }

// Fail records a malformed-input error, formatted as by fmt.Sprintf,
// unless an error is recorded already: the first error is the one that
// says what went wrong.
func (d *Decoder) Fail(format string, args ...any) {
	if d.err != nil {
		return
	}
	malformed := d.malformed
	if malformed == nil {
		malformed = ErrMalformed
	}
	d.err = fmt.Errorf("%w: %s", malformed, fmt.Sprintf(format, args...))
}

// Finish records an error if bytes are left unread and returns the first
// error: an encoding is read whole or not at all.
func (d *Decoder) Finish() error {
	if d.err == nil && len(d.b) != 0 {
		d.Fail("%d trailing bytes", len(d.b))
	}
	return d.err
}

// Byte reads one byte; what names the field in an error.
func (d *Decoder) Byte(what string) byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) < 1 {
		d.Fail("truncated at %s", what)
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

// Fixed fills dst with the next len(dst) bytes.
func (d *Decoder) Fixed(dst []byte, what string) {
	if d.err != nil {
		return
	}
	if len(d.b) < len(dst) {
		d.Fail("truncated at %s", what)
		return
	}
	copy(dst, d.b)
	d.b = d.b[len(dst):]
}

// Uvarint reads an unsigned varint in its shortest form.
func (d *Decoder) Uvarint(what string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if !d.canonical(n, what) {
		return 0
	}
	d.b = d.b[n:]
	return v
}

// canonical checks the n bytes binary.Uvarint or binary.Varint read off
// the front of the input: n <= 0 is a varint cut short or past 64 bits,
// and a last byte of zero adds nothing (80 00 is 0 in two bytes). Only
// the shortest form is accepted, so every value has one encoding and
// bytes that differ are values that differ.
func (d *Decoder) canonical(n int, what string) bool {
	if n <= 0 {
		d.Fail("bad varint at %s", what)
		return false
	}
	if n > 1 && d.b[n-1] == 0 {
		d.Fail("varint at %s in %d bytes, longer than its shortest form", what, n)
		return false
	}
	return true
}

// Varint reads a signed (zig-zag) varint in its shortest form.
func (d *Decoder) Varint(what string) int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if !d.canonical(n, what) {
		return 0
	}
	d.b = d.b[n:]
	return v
}

// Bytes reads a byte string of at most limit bytes prefixed by its length
// as an unsigned varint. The result shares the input's memory, with its
// capacity cut to its length so an append cannot overwrite what follows.
func (d *Decoder) Bytes(what string, limit int) []byte {
	n := d.Uvarint(what + " length")
	if d.err != nil {
		return nil
	}
	if n > uint64(limit) || n > uint64(len(d.b)) {
		d.Fail("%s of %d bytes (limit %d, %d left)", what, n, limit, len(d.b))
		return nil
	}
	out := d.b[:n:n]
	d.b = d.b[n:]
	return out
}

// String reads a length-prefixed string of at most limit bytes, as Bytes.
func (d *Decoder) String(what string, limit int) string {
	return string(d.Bytes(what, limit))
}
