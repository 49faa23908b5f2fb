package wire

import (
	"encoding/binary"
	"sort"

	"github.com/drive-node/drive-node/certs"
	"github.com/drive-node/drive-node/internal/fields"
)

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

// readVector reads a vector appendVector wrote; what names it in errors.
func readVector(d *fields.Decoder, what string) map[certs.DeviceID]uint64 {
	n := d.Uvarint(what + " length")
	if d.Err() != nil {
		return nil
	}
	if n > maxDevices || n > uint64(d.Left()/minVectorEntry) {
		d.Fail("%s of %d devices does not fit in %d bytes", what, n, d.Left())
		return nil
	}
	v := make(map[certs.DeviceID]uint64, n)
	for i := uint64(0); i < n && d.Err() == nil; i++ {
		var id certs.DeviceID
		d.Fixed(id[:], what+" device")
		v[id] = d.Uvarint(what + " sequence")
	}
	return v
}
