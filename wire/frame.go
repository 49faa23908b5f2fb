// Package wire is drive-node's protocol between peers: every message's
// encoding lives here, so neither the engine nor the transport parses
// bytes.
//
// A frame is a 4-byte big-endian length, then a 1-byte message type, then
// the message body (length counts type and body). ReadFrame checks the
// length against MaxFrame before allocating, and ReadFrameLimit against a
// smaller limit, so a peer cannot make the reader allocate more than the
// limit per frame; within it the body's buffer grows only as bytes
// arrive, so a peer that declares a large frame and sends little makes
// the reader hold little.
//
// The control stream carries Hello (first, both ways), then Origins, Ops,
// Progress, StateDigest, DigestRequest, DigestResponse, Introduce and
// Revoke in any order (an
// origin's key before its ops). Each content
// stream carries one request and its answer: a ContentRequest, or a
// RangeRequest, and a ContentResponse followed by the raw bytes; a
// ContentBatchRequest and a ContentResponse with the bytes for each hash;
// or a ChunkListRequest and a ChunkListResponse followed by the list.
package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/drive-node/drive-node/internal/fields"
)

// ProtocolVersion is sent in Hello; peers with another version are
// refused with a clear error rather than misread. Version 2 names content
// over content.BlockSize by its block tree: a version 1 peer would find
// every such file's bytes "not matching its hash". Version 3 signs ops:
// each carries the Link of its origin's previous op and may carry a
// signature, and Origins frames introduce the keys that verify them.
// Version 4 adds chunk lists and range requests: a fetcher asks for a
// large content's chunk list (ChunkListRequest) and then for only the
// byte ranges it lacks (RangeRequest). Version 5 adds state digests: a
// peer announces the root of its recorded state (StateDigest) and answers
// requests to walk the tree (DigestRequest, DigestResponse). Version 6
// adds the mesh: a device vouches for its other mesh members (Introduce)
// and withdraws its trust in one (Revoke). Version 7 folds logs: a peer
// whose log lacks superseded ops says so (Fold) before sending the ops
// after them.
const ProtocolVersion = 7

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
	// TypeOrigins introduces the keys of origins whose ops follow.
	TypeOrigins Type = 7
	// TypeChunkListRequest asks for a content's chunk list.
	TypeChunkListRequest Type = 8
	// TypeChunkListResponse answers it, followed by the list.
	TypeChunkListResponse Type = 9
	// TypeRangeRequest asks for a byte range of a content.
	TypeRangeRequest Type = 10
	// TypeIntroduce vouches for the sender's other mesh members.
	TypeIntroduce Type = 11
	// TypeRevoke withdraws the sender's trust in a device.
	TypeRevoke Type = 12
	// TypeStateDigest announces the root of the sender's state digest.
	TypeStateDigest Type = 13
	// TypeDigestRequest asks for a directory's entries in that digest.
	TypeDigestRequest Type = 14
	// TypeDigestResponse answers it.
	TypeDigestResponse Type = 15
	// TypeFold says the sender's log lacks folded ops of an origin.
	TypeFold Type = 16
)

// String returns the message type's name, for errors and logs.
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
	case TypeOrigins:
		return "origins"
	case TypeChunkListRequest:
		return "chunk-list-request"
	case TypeChunkListResponse:
		return "chunk-list-response"
	case TypeRangeRequest:
		return "range-request"
	case TypeIntroduce:
		return "introduce"
	case TypeRevoke:
		return "revoke"
	case TypeStateDigest:
		return "state-digest"
	case TypeDigestRequest:
		return "digest-request"
	case TypeDigestResponse:
		return "digest-response"
	case TypeFold:
		return "fold"
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

// firstRead is how much of a frame's body the reader allocates before any
// of it arrives: every frame but a large Ops fits. Past it the buffer
// doubles each time it is full, never beyond the declared length.
const firstRead = 32 << 10

// ReadFrame reads one frame of at most MaxFrame bytes from r and decodes
// it: ReadFrameLimit(r, MaxFrame).
func ReadFrame(r io.Reader) (Message, error) { return ReadFrameLimit(r, MaxFrame) }

// ReadFrameLimit reads one frame from r and decodes it. A frame longer
// than limit (or MaxFrame, when that is lower) fails with
// ErrFrameTooLarge, naming the limit, after only its 4-byte length is
// read. The body's buffer is at most firstRead before any of the body
// arrives and at most twice what has arrived after, so a peer that
// declares a long frame and sends little makes the reader hold little.
// A body cut short fails wrapping r's error, io.ErrUnexpectedEOF when r
// ended; an r that ends before a frame starts gives io.EOF unwrapped.
func ReadFrameLimit(r io.Reader, limit int) (Message, error) {
	limit = min(limit, MaxFrame)
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if int64(n) > int64(limit) {
		return nil, fmt.Errorf("%w: %d bytes (limit %d)", ErrFrameTooLarge, n, limit)
	}
	if n == 0 {
		return nil, fmt.Errorf("%w: empty frame", ErrMalformed)
	}
	body, err := readBody(r, int(n))
	if err != nil {
		return nil, err
	}
	return Decode(Type(body[0]), body[1:])
}

// readBody reads exactly n bytes from r into a buffer that grows as they
// arrive, from firstRead by doubling.
func readBody(r io.Reader, n int) ([]byte, error) {
	body := make([]byte, min(n, firstRead))
	got := 0
	for {
		k, err := io.ReadFull(r, body[got:])
		got += k
		if err == io.EOF {
			err = io.ErrUnexpectedEOF // the frame had begun
		}
		if err != nil {
			return nil, fmt.Errorf("wire: truncated frame: %d of %d bytes: %w", got, n, err)
		}
		if got == n {
			return body, nil
		}
		grown := make([]byte, min(n, 2*len(body)))
		copy(grown, body)
		body = grown
	}
}

// Decode decodes a message body of type t.
func Decode(t Type, body []byte) (Message, error) {
	var m interface {
		Message
		decode(d *fields.Decoder)
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
	case TypeOrigins:
		m = &Origins{}
	case TypeChunkListRequest:
		m = &ChunkListRequest{}
	case TypeChunkListResponse:
		m = &ChunkListResponse{}
	case TypeRangeRequest:
		m = &RangeRequest{}
	case TypeIntroduce:
		m = &Introduce{}
	case TypeRevoke:
		m = &Revoke{}
	case TypeStateDigest:
		m = &StateDigest{}
	case TypeDigestRequest:
		m = &DigestRequest{}
	case TypeDigestResponse:
		m = &DigestResponse{}
	case TypeFold:
		m = &Fold{}
	default:
		return nil, fmt.Errorf("%w: unknown message type %d", ErrMalformed, t)
	}
	d := fields.NewDecoder(body, ErrMalformed)
	m.decode(d)
	if err := d.Finish(); err != nil {
		return nil, fmt.Errorf("%s: %w", t, err)
	}
	return m, nil
}
