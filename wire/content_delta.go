package wire

import (
	"encoding/binary"
	"fmt"

	"github.com/drive-node/drive-node/content"
	"github.com/drive-node/drive-node/internal/fields"
)

// MaxChunkListBytes bounds the chunk list a ChunkListResponse may
// announce. A fetcher refuses a list over its own, lower limit before
// reading any of it.
const MaxChunkListBytes int64 = 1 << 32

// maxContentOffset bounds offsets, lengths and sizes of content on the
// wire: 2^62, far past any file, and a sum of two still fits an int64.
const maxContentOffset = 1 << 62

// ChunkListRequest opens a content stream asking for the chunk list of
// the content named Hash: the list of its content-defined chunks, from
// which a fetcher works out which byte ranges it lacks.
type ChunkListRequest struct {
	Hash content.Hash
}

// Type implements Message.
func (*ChunkListRequest) Type() Type { return TypeChunkListRequest }

// AppendBody implements Message.
func (m *ChunkListRequest) AppendBody(b []byte) ([]byte, error) {
	return append(b, m.Hash[:]...), nil
}

func (m *ChunkListRequest) decode(d *fields.Decoder) {
	d.Fixed(m.Hash[:], "hash")
}

// ChunkListResponse answers a ChunkListRequest. Not Found: the server
// does not hold the content (Length is 0). Found with Length 0: it holds
// the content but has no chunk list for it (the content is one chunk, or
// named in an older way); fetch it whole. Found with Length above 0:
// exactly Length raw bytes of the chunk list follow on the stream, then
// the stream ends. Length is at most MaxChunkListBytes.
type ChunkListResponse struct {
	Found  bool
	Length int64
}

// Type implements Message.
func (*ChunkListResponse) Type() Type { return TypeChunkListResponse }

// AppendBody implements Message. It refuses what the decoder refuses: a
// Length over MaxChunkListBytes or below 0, or above 0 when not Found.
func (m *ChunkListResponse) AppendBody(b []byte) ([]byte, error) {
	if m.Length < 0 || m.Length > MaxChunkListBytes || (!m.Found && m.Length != 0) {
		return nil, fmt.Errorf("wire: chunk-list-response of %d bytes (found %v, limit %d)", m.Length, m.Found, MaxChunkListBytes)
	}
	found := byte(0)
	if m.Found {
		found = 1
	}
	b = append(b, found)
	return binary.AppendUvarint(b, uint64(m.Length)), nil
}

func (m *ChunkListResponse) decode(d *fields.Decoder) {
	var f [1]byte
	d.Fixed(f[:], "found")
	if f[0] > 1 {
		d.Fail("found flag %d", f[0])
	}
	m.Found = f[0] == 1
	n := d.Uvarint("length")
	if n > uint64(MaxChunkListBytes) {
		d.Fail("chunk list of %d bytes (limit %d)", n, uint64(MaxChunkListBytes))
	} else if !m.Found && n != 0 {
		d.Fail("chunk list of %d bytes, not found", n)
	}
	m.Length = int64(n)
}

// RangeRequest opens a content stream asking for the bytes [Offset,
// Offset+Length) of the content named Hash. It is answered by a
// ContentResponse whose Size is the content's whole size; when Found,
// exactly Length raw bytes follow, then the stream ends. A server whose
// content is shorter than Offset+Length answers not Found. Length is at
// least 1; Offset, Length and their sum are at most 2^62.
type RangeRequest struct {
	Hash   content.Hash
	Offset int64
	Length int64
}

// Type implements Message.
func (*RangeRequest) Type() Type { return TypeRangeRequest }

// AppendBody implements Message. It refuses what the decoder refuses.
func (m *RangeRequest) AppendBody(b []byte) ([]byte, error) {
	if !validRange(m.Offset, m.Length) {
		return nil, fmt.Errorf("wire: range-request of %d bytes at %d (want 1 or more, ending by 2^62)", m.Length, m.Offset)
	}
	b = append(b, m.Hash[:]...)
	b = binary.AppendUvarint(b, uint64(m.Offset))
	return binary.AppendUvarint(b, uint64(m.Length)), nil
}

// validRange reports whether a range of length bytes at offset may be
// asked for: at least one byte, ending by 2^62.
func validRange(offset, length int64) bool {
	return offset >= 0 && offset <= maxContentOffset && length > 0 && length <= maxContentOffset && offset+length <= maxContentOffset
}

func (m *RangeRequest) decode(d *fields.Decoder) {
	d.Fixed(m.Hash[:], "hash")
	off := d.Uvarint("offset")
	n := d.Uvarint("length")
	if d.Err() != nil {
		return
	}
	// Each is checked before the sum, which then cannot overflow.
	if off > maxContentOffset || n > maxContentOffset || !validRange(int64(off), int64(n)) {
		d.Fail("range of %d bytes at offset %d", n, off)
		return
	}
	m.Offset, m.Length = int64(off), int64(n)
}
