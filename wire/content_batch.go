package wire

import (
	"encoding/binary"
	"fmt"

	"github.com/drive-node/drive-node/content"
	"github.com/drive-node/drive-node/internal/fields"
)

// MaxBatch bounds the hashes of one ContentBatchRequest, so a request is
// small and a peer's answer to one is bounded by what it chooses to serve.
const MaxBatch = 256

// MaxContentRequestFrame is the longest frame a well-formed content
// request can be, 8,195 bytes: a ContentBatchRequest of MaxBatch hashes,
// which is its type byte, MaxBatch as a varint (two bytes: up to 16,383)
// and the hashes. The other requests are far shorter: a ContentRequest
// (type, hash, an offset of at most ten bytes), a ChunkListRequest (type,
// hash) and a RangeRequest (type, hash, offset and length of at most
// nine bytes each, as neither passes 2^62), 51 bytes at most. A server reads content requests with
// ReadFrameLimit(r, MaxContentRequestFrame), so a peer cannot make it
// hold more than that per content stream.
const MaxContentRequestFrame = 1 + 2 + MaxBatch*len(content.Hash{})

// ContentBatchRequest opens a content stream for several whole contents,
// usually small files: one stream and one round trip instead of one per
// file. The server answers each hash in order with a ContentResponse,
// followed, when Found, by exactly Size raw bytes; then the stream ends.
// A server that cannot send a content it announced ends the stream early;
// the receiver asks for the rest again, one by one.
type ContentBatchRequest struct {
	Hashes []content.Hash
}

// Type implements Message.
func (*ContentBatchRequest) Type() Type { return TypeContentBatchRequest }

// AppendBody implements Message. A request holds 1 to MaxBatch hashes.
func (m *ContentBatchRequest) AppendBody(b []byte) ([]byte, error) {
	if len(m.Hashes) == 0 || len(m.Hashes) > MaxBatch {
		return nil, fmt.Errorf("wire: content batch of %d hashes (want 1 to %d)", len(m.Hashes), MaxBatch)
	}
	b = binary.AppendUvarint(b, uint64(len(m.Hashes)))
	for _, h := range m.Hashes {
		b = append(b, h[:]...)
	}
	return b, nil
}

func (m *ContentBatchRequest) decode(d *fields.Decoder) {
	n := d.Uvarint("hash count")
	if d.Err() != nil {
		return
	}
	if n == 0 || n > MaxBatch || n*uint64(len(content.Hash{})) > uint64(d.Left()) {
		d.Fail("content batch of %d hashes (limit %d, %d bytes left)", n, MaxBatch, d.Left())
		return
	}
	m.Hashes = make([]content.Hash, n)
	for i := range m.Hashes {
		d.Fixed(m.Hashes[i][:], "hash")
	}
}
