package wire_test

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"testing"

	"github.com/drive-node/drive-node/certs"
	"github.com/drive-node/drive-node/content"
	"github.com/drive-node/drive-node/internal/vectors"
	"github.com/drive-node/drive-node/oplog"
	"github.com/drive-node/drive-node/wire"
)

// frameVectors is wire/testdata/frames.json: every message type's frame
// byte for byte (docs/protocol.md). These tests fail on any change to an
// encoding until the vectors and wire.ProtocolVersion change together:
// a peer of another build must read these bytes as these messages.
type frameVectors struct {
	Frames []struct {
		Name    string      `json:"name"`
		Frame   vectors.Hex `json:"frame"`
		Message message     `json:"message"`
	} `json:"frames"`
	Refused []struct {
		Name  string      `json:"name"`
		Frame vectors.Hex `json:"frame"`
		Limit int         `json:"limit"`
		Error string      `json:"error"`
	} `json:"refused"`
}

// message is a message as the vector file writes it: the fields its type
// has.
type message struct {
	Type    string          `json:"type"`
	Version uint32          `json:"version"`
	Name    string          `json:"name"`
	Have    []vectors.Entry `json:"have"`
	Ops     []vectors.Op    `json:"ops"`
	Hash    vectors.Hex     `json:"hash"`
	Offset  int64           `json:"offset"`
	Found   bool            `json:"found"`
	Size    int64           `json:"size"`
	Length  int64           `json:"length"`
	Hashes  []vectors.Hex   `json:"hashes"`
	Keys    []vectors.Hex   `json:"keys"`
	Root    vectors.Hex     `json:"root"`
	Files   uint64          `json:"files"`
	Applied []vectors.Entry `json:"applied"`
	ID      uint64          `json:"id"`
	Dir     string          `json:"dir"`
	After   string          `json:"after"`
	Status  uint8           `json:"status"`
	More    bool            `json:"more"`
	Members []struct {
		ID   vectors.Hex `json:"id"`
		Name string      `json:"name"`
	} `json:"members"`
	Sig     vectors.Hex `json:"sig"`
	Device  vectors.Hex `json:"device"`
	Through uint64      `json:"through"`
	Entries []struct {
		Name string      `json:"name"`
		Kind uint8       `json:"kind"`
		Hash vectors.Hex `json:"hash"`
	} `json:"entries"`
}

// toMessage returns the message m describes.
func (m message) toMessage(t *testing.T) wire.Message {
	t.Helper()
	vector := func(entries []vectors.Entry) map[certs.DeviceID]uint64 {
		v := make(map[certs.DeviceID]uint64, len(entries))
		for _, e := range entries {
			v[e.Device.Device(t)] = e.Seq
		}
		return v
	}
	have := func() map[certs.DeviceID]uint64 { return vector(m.Have) }
	switch m.Type {
	case wire.TypeHello.String():
		return &wire.Hello{Version: m.Version, Name: m.Name, Have: have()}
	case wire.TypeOps.String():
		ops := make([]oplog.Op, 0, len(m.Ops))
		for _, o := range m.Ops {
			ops = append(ops, o.ToOp(t))
		}
		return &wire.Ops{Ops: ops}
	case wire.TypeProgress.String():
		return &wire.Progress{Have: have()}
	case wire.TypeContentRequest.String():
		return &wire.ContentRequest{Hash: m.Hash.Hash(t), Offset: m.Offset}
	case wire.TypeContentResponse.String():
		return &wire.ContentResponse{Found: m.Found, Size: m.Size}
	case wire.TypeContentBatchRequest.String():
		hs := make([]content.Hash, len(m.Hashes))
		for i, h := range m.Hashes {
			hs[i] = h.Hash(t)
		}
		return &wire.ContentBatchRequest{Hashes: hs}
	case wire.TypeOrigins.String():
		keys := make([][]byte, len(m.Keys))
		for i, k := range m.Keys {
			keys[i] = k
		}
		return &wire.Origins{Keys: keys}
	case wire.TypeChunkListRequest.String():
		return &wire.ChunkListRequest{Hash: m.Hash.Hash(t)}
	case wire.TypeChunkListResponse.String():
		return &wire.ChunkListResponse{Found: m.Found, Length: m.Length}
	case wire.TypeRangeRequest.String():
		return &wire.RangeRequest{Hash: m.Hash.Hash(t), Offset: m.Offset, Length: m.Length}
	case wire.TypeStateDigest.String():
		return &wire.StateDigest{Root: [32]byte(m.Root.Hash(t)), Files: m.Files, Applied: vector(m.Applied)}
	case wire.TypeDigestRequest.String():
		return &wire.DigestRequest{ID: m.ID, Dir: m.Dir, After: m.After}
	case wire.TypeIntroduce.String():
		members := make([]wire.Member, 0, len(m.Members))
		for _, mb := range m.Members {
			members = append(members, wire.Member{ID: mb.ID.Device(t), Name: mb.Name})
		}
		return &wire.Introduce{Members: members, Sig: m.Sig}
	case wire.TypeRevoke.String():
		return &wire.Revoke{ID: m.Device.Device(t), Sig: m.Sig}
	case wire.TypeFold.String():
		return &wire.Fold{Origin: m.Device.Device(t), Through: m.Through}
	case wire.TypeDigestResponse.String():
		r := &wire.DigestResponse{ID: m.ID, Status: wire.DigestStatus(m.Status), More: m.More}
		for _, e := range m.Entries {
			r.Entries = append(r.Entries, wire.DigestEntry{Name: e.Name, Kind: e.Kind, Hash: [32]byte(e.Hash.Hash(t))})
		}
		return r
	}
	t.Fatalf("vector message type %q", m.Type)
	return nil
}

func loadFrames(t *testing.T) frameVectors {
	var v frameVectors
	vectors.Load(t, "testdata/frames.json", wire.ProtocolVersion, &v)
	return v
}

// TestFrameVectors checks both directions: the values encode to exactly
// the frame's bytes, and the bytes decode to exactly the values.
func TestFrameVectors(t *testing.T) {
	v := loadFrames(t)
	types := map[wire.Type]bool{}
	for _, c := range v.Frames {
		want := c.Message.toMessage(t)
		types[want.Type()] = true
		var buf bytes.Buffer
		if err := wire.WriteFrame(&buf, want); err != nil {
			t.Errorf("%s: encode: %v", c.Name, err)
		} else if !bytes.Equal(buf.Bytes(), c.Frame) {
			t.Errorf("%s: encodes to\n%x\nwant\n%x", c.Name, buf.Bytes(), []byte(c.Frame))
		}
		r := bytes.NewReader(c.Frame)
		got, err := wire.ReadFrame(r)
		if err != nil {
			t.Errorf("%s: decode: %v", c.Name, err)
			continue
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: decodes to\n%+v\nwant\n%+v", c.Name, got, want)
		}
		if r.Len() != 0 {
			t.Errorf("%s: %d bytes left after the frame", c.Name, r.Len())
		}
	}
	for typ := wire.TypeHello; typ <= wire.TypeFold; typ++ {
		if !types[typ] {
			t.Errorf("no vector for %s", typ)
		}
	}
}

// TestRefusedFrameVectors checks that every refused frame fails to read,
// for the reason the vector gives.
func TestRefusedFrameVectors(t *testing.T) {
	reasons := map[string]error{
		"malformed": wire.ErrMalformed,
		"too-large": wire.ErrFrameTooLarge,
		"truncated": io.ErrUnexpectedEOF,
	}
	for _, c := range loadFrames(t).Refused {
		want, ok := reasons[c.Error]
		if !ok {
			t.Fatalf("%s: vector error %q", c.Name, c.Error)
		}
		limit := wire.MaxFrame
		if c.Limit != 0 {
			limit = c.Limit
		}
		m, err := wire.ReadFrameLimit(bytes.NewReader(c.Frame), limit)
		if !errors.Is(err, want) {
			t.Errorf("%s: read %v, %v; want an error wrapping %v", c.Name, m, err, want)
		}
	}
}
