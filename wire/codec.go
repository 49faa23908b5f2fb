package wire

import (
	"encoding/binary"
	"fmt"
	"sort"

	"github.com/drive-node/drive-node/certs"
)

// decoder reads fields from a body, remembering the first error so
// decode methods read straight through.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
	}
}

func (d *decoder) uvarint(what string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("bad varint at %s", what)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes(what string, limit int) []byte {
	n := d.uvarint(what + " length")
	if d.err != nil {
		return nil
	}
	if n > uint64(limit) || n > uint64(len(d.b)) {
		d.fail("%s of %d bytes (limit %d, %d left)", what, n, limit, len(d.b))
		return nil
	}
	out := d.b[:n:n]
	d.b = d.b[n:]
	return out
}

func (d *decoder) fixed(dst []byte, what string) {
	if d.err != nil {
		return
	}
	if len(d.b) < len(dst) {
		d.fail("truncated at %s", what)
		return
	}
	copy(dst, d.b)
	d.b = d.b[len(dst):]
}

func appendBytes(b, p []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(p)))
	return append(b, p...)
}

// VectorEntry is one device's highest sequence.
type VectorEntry struct {
	Device certs.DeviceID
	Seq    uint64
}

// maxDevices bounds a vector's length on decode.
const maxDevices = 1 << 16

// minVectorEntry is the fewest bytes one vector entry takes: the device,
// then its sequence's varint of at least one byte. A vector's declared
// length is checked against the bytes left with it before the map is
// allocated.
const minVectorEntry = len(certs.DeviceID{}) + 1

// appendVector encodes v sorted by device so equal maps encode equally.
func appendVector(b []byte, v map[certs.DeviceID]uint64) []byte {
	ids := make([]certs.DeviceID, 0, len(v))
	for id := range v {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return string(ids[i][:]) < string(ids[j][:]) })
	b = binary.AppendUvarint(b, uint64(len(ids)))
	for _, id := range ids {
		b = append(b, id[:]...)
		b = binary.AppendUvarint(b, v[id])
	}
	return b
}

func (d *decoder) vector(what string) map[certs.DeviceID]uint64 {
	n := d.uvarint(what + " length")
	if d.err != nil {
		return nil
	}
	if n > maxDevices || n > uint64(len(d.b)/minVectorEntry) {
		d.fail("%s of %d devices does not fit in %d bytes", what, n, len(d.b))
		return nil
	}
	v := make(map[certs.DeviceID]uint64, n)
	for i := uint64(0); i < n && d.err == nil; i++ {
		var id certs.DeviceID
		d.fixed(id[:], what+" device")
		v[id] = d.uvarint(what + " sequence")
	}
	return v
}
