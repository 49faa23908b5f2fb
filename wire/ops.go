package wire

import (
	"encoding/binary"
	"fmt"

	"github.com/drive-node/drive-node/certs"
	"github.com/drive-node/drive-node/content"
	"github.com/drive-node/drive-node/internal/fields"
	"github.com/drive-node/drive-node/oplog"
)

// minOpBytes is the fewest bytes one op takes in an Ops body, so a body
// with k bytes left holds at most k/minOpBytes ops: the decoder refuses a
// larger count before allocating for it (a decoded op takes several
// times its shortest encoding). The shortest op is a legacy write (no
// Prev, no Sig) with every other field zero: a one-byte length prefix, then oplog's encoding with
// every varint one byte and every string and the version empty —
// encoding version and kind, origin, seq and lamport, path and new-path
// lengths, hash, size, mode and mtime, version length. TestMinOpBytes
// holds it to the encoding.
const minOpBytes = 1 + 2 + len(certs.DeviceID{}) + 2 + 2 + len(content.Hash{}) + 3 + 1

// Ops carries ops the receiver lacks, each origin's in sequence order.
type Ops struct {
	Ops []oplog.Op
}

// Type implements Message.
func (*Ops) Type() Type { return TypeOps }

// AppendBody implements Message.
func (m *Ops) AppendBody(b []byte) ([]byte, error) {
	b = binary.AppendUvarint(b, uint64(len(m.Ops)))
	var tmp []byte
	for _, op := range m.Ops {
		var err error
		tmp, err = op.AppendBinary(tmp[:0])
		if err != nil {
			return b, fmt.Errorf("wire: encode %s: %w", op, err)
		}
		b = appendBytes(b, tmp)
	}
	return b, nil
}

func (m *Ops) decode(d *fields.Decoder) {
	n := d.Uvarint("op count")
	if d.Err() != nil {
		return
	}
	if most := uint64(d.Left() / minOpBytes); n > most {
		d.Fail("op count %d: the %d bytes left hold at most %d ops", n, d.Left(), most)
		return
	}
	m.Ops = make([]oplog.Op, 0, n)
	for i := uint64(0); i < n && d.Err() == nil; i++ {
		raw := d.Bytes("op", oplog.MaxOpSize)
		if d.Err() != nil {
			return
		}
		var op oplog.Op
		if err := op.UnmarshalBinary(raw); err != nil {
			d.Fail("op %d: %v", i, err)
			return
		}
		m.Ops = append(m.Ops, op)
	}
}

// OpsBatch is an Ops message built op by op for a sender: each op is
// encoded as it is added, and a batch never grows past what one frame
// takes, by count (MaxOps) or by bytes (MaxFrame). A count alone does not
// do: ops of up to oplog.MaxOpSize bytes, 2,000 to a frame, could make a
// frame of 140 MiB, which the sender cannot write and would fail on at
// every connection. Its zero value is an empty batch bounded by bytes
// only.
type OpsBatch struct {
	// MaxOps bounds the ops in one frame; 0 bounds them by bytes only.
	MaxOps int
	n      int    // ops in body
	body   []byte // their encodings, each after its length
	held   bool   // tmp is an op that did not fit: the next batch's first
	tmp    []byte
}

// Add encodes op into the batch and reports whether the batch is to be
// sent now, before anything more is added: it holds MaxOps ops, or op
// would have taken it past that or past MaxFrame bytes and is held,
// encoded, for the next batch (Reset starts it). An op Validate refuses
// fails with its error and is not added.
func (b *OpsBatch) Add(op oplog.Op) (full bool, err error) {
	if b.held {
		return true, fmt.Errorf("wire: op %s added to a full batch", op)
	}
	b.tmp, err = op.AppendBinary(b.tmp[:0])
	if err != nil {
		return false, fmt.Errorf("wire: encode %s: %w", op, err)
	}
	if b.n > 0 && (b.countFull() || b.frameWith(len(b.tmp)) > MaxFrame) {
		b.held = true
		return true, nil
	}
	b.body = appendBytes(b.body, b.tmp)
	b.n++
	return b.countFull(), nil
}

// frameWith returns the length of the batch's frame (type and body) with
// one more op of size bytes.
func (b *OpsBatch) frameWith(size int) int {
	var v [binary.MaxVarintLen64]byte
	count := binary.PutUvarint(v[:], uint64(b.n+1))
	prefix := binary.PutUvarint(v[:], uint64(size))
	return 1 + count + len(b.body) + prefix + size
}

func (b *OpsBatch) countFull() bool { return b.MaxOps > 0 && b.n >= b.MaxOps }

// Len returns the number of ops the batch sends.
func (b *OpsBatch) Len() int { return b.n }

// Reset empties the batch once it is sent; an op Add held back becomes
// its first.
func (b *OpsBatch) Reset() {
	b.body, b.n = b.body[:0], 0
	if b.held {
		b.body, b.n, b.held = appendBytes(b.body, b.tmp), 1, false
	}
}

// Type implements Message.
func (*OpsBatch) Type() Type { return TypeOps }

// AppendBody implements Message: the body of an Ops of the batch's ops.
func (b *OpsBatch) AppendBody(dst []byte) ([]byte, error) {
	dst = binary.AppendUvarint(dst, uint64(b.n))
	return append(dst, b.body...), nil
}

// Progress tells the peer how far the sender now has every origin's log,
// after it persisted ops the peer sent.
type Progress struct {
	Have map[certs.DeviceID]uint64
}

// Type implements Message.
func (*Progress) Type() Type { return TypeProgress }

// AppendBody implements Message.
func (m *Progress) AppendBody(b []byte) ([]byte, error) {
	return appendVector(b, m.Have, "progress's have")
}

func (m *Progress) decode(d *fields.Decoder) { m.Have = readVector(d, "have") }
