package state

import (
	"encoding/binary"
	"fmt"

	"github.com/drive-node/drive-node/certs"
	"github.com/drive-node/drive-node/content"
	"github.com/drive-node/drive-node/vclock"
)

// vectorEntrySize is the encoded size of one vclock.Entry: the 32-byte
// device ID followed by the counter as 8 bytes big-endian.
const vectorEntrySize = len(certs.DeviceID{}) + 8

// encodeVector encodes v as its entries back to back, in v's order. The
// empty vector encodes as zero bytes.
func encodeVector(v vclock.Vector) []byte {
	b := make([]byte, 0, len(v)*vectorEntrySize)
	for _, e := range v {
		b = append(b, e.Device[:]...)
		b = binary.BigEndian.AppendUint64(b, e.Counter)
	}
	return b
}

// decodeVector reverses encodeVector; zero bytes decode as a nil vector.
func decodeVector(b []byte) (vclock.Vector, error) {
	if len(b)%vectorEntrySize != 0 {
		return nil, fmt.Errorf("version vector of %d bytes is not a multiple of %d", len(b), vectorEntrySize)
	}
	if len(b) == 0 {
		return nil, nil
	}
	v := make(vclock.Vector, len(b)/vectorEntrySize)
	for i := range v {
		e := b[i*vectorEntrySize:]
		copy(v[i].Device[:], e)
		v[i].Counter = binary.BigEndian.Uint64(e[len(certs.DeviceID{}):])
	}
	return v, nil
}

// hashArg is h as stored: NULL for the zero hash.
func hashArg(h content.Hash) any {
	if h.IsZero() {
		return nil
	}
	return h[:]
}

// scanHash reverses hashArg.
func scanHash(b []byte) (content.Hash, error) {
	var h content.Hash
	if len(b) == 0 {
		return h, nil
	}
	if len(b) != len(h) {
		return h, fmt.Errorf("hash of %d bytes, want %d", len(b), len(h))
	}
	copy(h[:], b)
	return h, nil
}

// scanID converts a stored device ID.
func scanID(b []byte) (certs.DeviceID, error) {
	var id certs.DeviceID
	if len(b) != len(id) {
		return id, fmt.Errorf("device ID of %d bytes, want %d", len(b), len(id))
	}
	copy(id[:], b)
	return id, nil
}

// u64 stores an unsigned value as its int64 bit pattern (SQLite integers
// are signed); fromU64 reverses it.
func u64(u uint64) int64 { return int64(u) }

func fromU64(i int64) uint64 { return uint64(i) }

// boolInt stores a bool as 0 or 1.
func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// opIDSize is the encoded size of an OpID: device ID then sequence.
const opIDSize = len(certs.DeviceID{}) + 8

// encodeHeads encodes op IDs back to back.
func encodeHeads(ids []OpID) []byte {
	b := make([]byte, 0, len(ids)*opIDSize)
	for _, id := range ids {
		b = append(b, id.Origin[:]...)
		b = binary.BigEndian.AppendUint64(b, id.Seq)
	}
	return b
}

// decodeHeads reverses encodeHeads.
func decodeHeads(b []byte) ([]OpID, error) {
	if len(b)%opIDSize != 0 {
		return nil, fmt.Errorf("heads of %d bytes are not a multiple of %d", len(b), opIDSize)
	}
	if len(b) == 0 {
		return nil, nil
	}
	ids := make([]OpID, len(b)/opIDSize)
	for i := range ids {
		e := b[i*opIDSize:]
		copy(ids[i].Origin[:], e)
		ids[i].Seq = binary.BigEndian.Uint64(e[len(certs.DeviceID{}):])
	}
	return ids, nil
}
