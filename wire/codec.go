package wire

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"sort"

	"github.com/drive-node/drive-node/certs"
	"github.com/drive-node/drive-node/internal/fields"
	"github.com/drive-node/drive-node/oplog"
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

// minVectorEntry is the fewest bytes one vector entry takes: the device,
// then its sequence's varint of at least one byte. A vector's declared
// length is checked against the bytes left with it before the map is
// allocated.
const minVectorEntry = len(certs.DeviceID{}) + 1

// appendVector encodes v sorted by device so equal maps encode equally.
// An origin at sequence 0 says nothing (no op of it is held) and is left
// out, so that what is written is what readVector takes.
func appendVector(b []byte, v map[certs.DeviceID]uint64, what string) ([]byte, error) {
	ids := make([]certs.DeviceID, 0, len(v))
	for id, seq := range v {
		if id.IsZero() {
			return b, fmt.Errorf("wire: %s lists the all-zero device, which names none", what)
		}
		if seq != 0 {
			ids = append(ids, id)
		}
	}
	if len(ids) > oplog.MaxOrigins {
		return b, fmt.Errorf("wire: %s of %d origins, over %d", what, len(ids), oplog.MaxOrigins)
	}
	sort.Slice(ids, func(i, j int) bool { return bytes.Compare(ids[i][:], ids[j][:]) < 0 })
	b = binary.AppendUvarint(b, uint64(len(ids)))
	for _, id := range ids {
		b = append(b, id[:]...)
		b = binary.AppendUvarint(b, v[id])
	}
	return b, nil
}

// readVector reads a vector appendVector wrote; what names it in errors.
// It takes only what appendVector writes: at most oplog.MaxOrigins
// devices, in increasing order, none zero, no sequence 0. A device listed
// twice would otherwise be read as its last sequence, and a peer could
// make two encodings of one vector.
func readVector(d *fields.Decoder, what string) map[certs.DeviceID]uint64 {
	n := d.Uvarint(what + " length")
	if d.Err() != nil {
		return nil
	}
	if n > oplog.MaxOrigins || n > uint64(d.Left()/minVectorEntry) {
		d.Fail("%s of %d devices does not fit in %d bytes (limit %d)", what, n, d.Left(), oplog.MaxOrigins)
		return nil
	}
	v := make(map[certs.DeviceID]uint64, n)
	var prev certs.DeviceID
	for i := uint64(0); i < n && d.Err() == nil; i++ {
		var id certs.DeviceID
		d.Fixed(id[:], what+" device")
		seq := d.Uvarint(what + " sequence")
		switch {
		case d.Err() != nil:
		case id.IsZero():
			d.Fail("%s entry %d names the all-zero device", what, i)
		case i > 0 && bytes.Compare(prev[:], id[:]) >= 0:
			d.Fail("%s entry %d (%s) not after entry %d (%s)", what, i, id.Short(), i-1, prev.Short())
		case seq == 0:
			d.Fail("%s entry %d (%s) has sequence 0", what, i, id.Short())
		}
		v[id] = seq
		prev = id
	}
	return v
}
