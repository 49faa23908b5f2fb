package wire

import (
	"encoding/binary"

	"github.com/drive-node/drive-node/content"
	"github.com/drive-node/drive-node/internal/fields"
)

// ContentRequest opens a content stream: send the bytes whose hash is Hash,
// starting at Offset (non-zero to resume a cut transfer).
type ContentRequest struct {
	Hash   content.Hash
	Offset int64
}

// Type implements Message.
func (*ContentRequest) Type() Type { return TypeContentRequest }

// AppendBody implements Message.
func (m *ContentRequest) AppendBody(b []byte) ([]byte, error) {
	b = append(b, m.Hash[:]...)
	return binary.AppendUvarint(b, uint64(m.Offset)), nil
}

func (m *ContentRequest) decode(d *fields.Decoder) {
	d.Fixed(m.Hash[:], "hash")
	off := d.Uvarint("offset")
	if off > 1<<62 {
		d.Fail("offset %d", off)
	}
	m.Offset = int64(off)
}

// ContentResponse answers a ContentRequest. When Found, exactly Size-Offset
// raw bytes follow it on the stream, then the stream ends. In answer to a
// ContentBatchRequest it comes once per hash, each followed by Size bytes
// when Found.
type ContentResponse struct {
	Found bool
	Size  int64
}

// Type implements Message.
func (*ContentResponse) Type() Type { return TypeContentResponse }

// AppendBody implements Message.
func (m *ContentResponse) AppendBody(b []byte) ([]byte, error) {
	found := byte(0)
	if m.Found {
		found = 1
	}
	b = append(b, found)
	return binary.AppendUvarint(b, uint64(m.Size)), nil
}

func (m *ContentResponse) decode(d *fields.Decoder) {
	var f [1]byte
	d.Fixed(f[:], "found")
	if f[0] > 1 {
		d.Fail("found flag %d", f[0])
	}
	m.Found = f[0] == 1
	size := d.Uvarint("size")
	if size > 1<<62 {
		d.Fail("size %d", size)
	}
	m.Size = int64(size)
}
