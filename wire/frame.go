// Package wire is drive-node's protocol between peers: every message's
// encoding lives here, so neither the engine nor the transport parses
// bytes.
//
// A frame is a 4-byte big-endian length, then a 1-byte message type, then
// the message body (length counts type and body). ReadFrame checks the
// length against MaxFrame before allocating, so a peer cannot make the
// reader allocate more than MaxFrame per frame.
//
// The control stream carries Hello (first, both ways), then Ops and
// Progress in any order. Each content stream carries one ContentRequest
// and its ContentResponse followed by the raw bytes.
package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// ProtocolVersion is sent in Hello; peers with another version are
// refused with a clear error rather than misread. Version 2 names content
// over content.BlockSize by its block tree: a version 1 peer would find
// every such file's bytes "not matching its hash".
const ProtocolVersion = 2

// MaxFrame is the largest frame accepted: ample for a batch of ops, small
// enough that a hostile peer cannot exhaust memory.
const MaxFrame = 8 << 20

// Type identifies a message.
type Type uint8

// Message types.
const (
	TypeHello           Type = 1
	TypeOps             Type = 2
	TypeProgress        Type = 3
	TypeContentRequest  Type = 4
	TypeContentResponse Type = 5
	// TypeContentBatchRequest asks for several contents on one stream.
	TypeContentBatchRequest Type = 6
)

func (t Type) String() string {
	switch t {
	case TypeHello:
		return "hello"
	case TypeOps:
		return "ops"
	case TypeProgress:
		return "progress"
	case TypeContentRequest:
		return "content-request"
	case TypeContentResponse:
		return "content-response"
	case TypeContentBatchRequest:
		return "content-batch-request"
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// Errors wrapped by decoding and framing failures.
var (
	ErrFrameTooLarge = errors.New("wire: frame larger than limit")
	ErrMalformed     = errors.New("wire: malformed message")
)

// Message is implemented by every message type.
type Message interface {
	// Type returns the message's type byte.
	Type() Type
	// AppendBody appends the encoded body to b.
	AppendBody(b []byte) ([]byte, error)
}

// WriteFrame encodes m as one frame and writes it to w in one Write.
func WriteFrame(w io.Writer, m Message) error {
	b := make([]byte, 5, 64)
	b[4] = byte(m.Type())
	b, err := m.AppendBody(b)
	if err != nil {
		return err
	}
	if len(b)-4 > MaxFrame {
		return fmt.Errorf("%w: %s of %d bytes (limit %d)", ErrFrameTooLarge, m.Type(), len(b)-4, MaxFrame)
	}
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	_, err = w.Write(b)
	return err
}

// ReadFrame reads one frame from r and decodes it. A frame over MaxFrame
// fails with ErrFrameTooLarge before any body is read or allocated.
func ReadFrame(r io.Reader) (Message, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:4]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:4])
	if n > MaxFrame {
		return nil, fmt.Errorf("%w: %d bytes (limit %d)", ErrFrameTooLarge, n, MaxFrame)
	}
	if n == 0 {
		return nil, fmt.Errorf("%w: empty frame", ErrMalformed)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, fmt.Errorf("wire: truncated frame: %w", err)
	}
	return Decode(Type(body[0]), body[1:])
}

// Decode decodes a message body of type t.
func Decode(t Type, body []byte) (Message, error) {
	var m interface {
		Message
		decode(d *decoder)
	}
	switch t {
	case TypeHello:
		m = &Hello{}
	case TypeOps:
		m = &Ops{}
	case TypeProgress:
		m = &Progress{}
	case TypeContentRequest:
		m = &ContentRequest{}
	case TypeContentResponse:
		m = &ContentResponse{}
	case TypeContentBatchRequest:
		m = &ContentBatchRequest{}
	default:
		return nil, fmt.Errorf("%w: unknown message type %d", ErrMalformed, t)
	}
	d := &decoder{b: body}
	m.decode(d)
	if d.err == nil && len(d.b) != 0 {
		d.fail("%d trailing bytes", len(d.b))
	}
	if d.err != nil {
		return nil, fmt.Errorf("%s: %w", t, d.err)
	}
	return m, nil
}
