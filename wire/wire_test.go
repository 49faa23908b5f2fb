package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"reflect"
	"testing"

	"github.com/drive-node/drive-node/certs"
	"github.com/drive-node/drive-node/content"
	"github.com/drive-node/drive-node/internal/vectors"
	"github.com/drive-node/drive-node/oplog"
	"github.com/drive-node/drive-node/vclock"
)

func dev(b byte) certs.DeviceID { var d certs.DeviceID; d[0] = b; return d }

func sampleOps(n int) *Ops {
	m := &Ops{}
	for i := 0; i < n; i++ {
		m.Ops = append(m.Ops, oplog.Op{
			Origin: dev(1), Seq: uint64(i + 1), Lamport: uint64(i + 7), Kind: oplog.KindWrite,
			Path: fmt.Sprintf("dir%02d/file%05d.txt", i%100, i), Hash: content.Sum([]byte{byte(i)}),
			Size: 4096, Mode: 0o644, MTime: 1700000000000000000, Parent: vclock.Vector{}.With(dev(2), 3),
		})
	}
	return m
}

func TestRoundTrip(t *testing.T) {
	for _, m := range []Message{
		&Hello{Version: ProtocolVersion, Name: "nas", Have: map[certs.DeviceID]uint64{dev(1): 5, dev(2): 1 << 40}},
		&Hello{Version: ProtocolVersion, Have: map[certs.DeviceID]uint64{}},
		sampleOps(3),
		&Ops{Ops: []oplog.Op{}},
		&Progress{Have: map[certs.DeviceID]uint64{dev(9): 1}},
		&ContentRequest{Hash: content.Sum([]byte("x")), Offset: 1 << 33},
		&ContentResponse{Found: true, Size: 12345},
		&ContentResponse{},
		&ContentBatchRequest{Hashes: []content.Hash{content.Sum([]byte("a")), content.Sum([]byte("b"))}},
		&ChunkListRequest{Hash: content.Sum([]byte("x"))},
		&ChunkListResponse{Found: true, Length: MaxChunkListBytes},
		&ChunkListResponse{Found: true},
		&ChunkListResponse{},
		&RangeRequest{Hash: content.Sum([]byte("x")), Offset: 1 << 33, Length: 1 << 20},
		&RangeRequest{Offset: 0, Length: 1 << 62},
		&Introduce{Members: []Member{{ID: dev(1), Name: "nas"}, {ID: dev(2)}}, Sig: []byte{1, 2, 3}},
		&Introduce{Members: []Member{}, Sig: []byte{1}},
		&Revoke{ID: dev(3), Sig: make([]byte, MaxMeshSig)},
	} {
		var buf bytes.Buffer
		if err := WriteFrame(&buf, m); err != nil {
			t.Fatalf("%s: %v", m.Type(), err)
		}
		got, err := ReadFrame(&buf)
		if err != nil {
			t.Fatalf("%s: %v", m.Type(), err)
		}
		if !reflect.DeepEqual(got, m) {
			t.Fatalf("%s: got %+v want %+v", m.Type(), got, m)
		}
		if buf.Len() != 0 {
			t.Fatalf("%s: %d bytes left", m.Type(), buf.Len())
		}
	}
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

func TestOversizedFrameRefusedBeforeReading(t *testing.T) {
	hdr := binary.BigEndian.AppendUint32(nil, MaxFrame+1)
	r := &countingReader{r: io.MultiReader(bytes.NewReader(hdr), bytes.NewReader(make([]byte, 1<<20)))}
	_, err := ReadFrame(r)
	if !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("got %v", err)
	}
	if r.n != 4 {
		t.Fatalf("read %d bytes of an oversized frame", r.n)
	}
	big := &Ops{Ops: make([]oplog.Op, 0)}
	for i := 0; len(big.Ops) < 3000; i++ {
		big.Ops = append(big.Ops, oplog.Op{Origin: dev(1), Seq: uint64(i + 1), Kind: oplog.KindWrite, Path: string(bytes.Repeat([]byte("p"), 4000))})
	}
	if err := WriteFrame(io.Discard, big); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("oversized write: %v", err)
	}
}

func TestMalformed(t *testing.T) {
	frame := func(typ Type, body []byte) []byte {
		b := binary.BigEndian.AppendUint32(nil, uint32(len(body)+1))
		return append(append(b, byte(typ)), body...)
	}
	for name, b := range map[string][]byte{
		"unknown type":           frame(99, nil),
		"empty frame":            {0, 0, 0, 0},
		"hello trailing":         frame(TypeHello, []byte{1, 0, 0, 7}),
		"hello vector":           frame(TypeHello, []byte{1, 0, 200}),
		"ops count":              frame(TypeOps, []byte{0xff, 0xff, 0x03}),
		"ops bad op":             frame(TypeOps, []byte{1, 2, 9, 9}),
		"content flag":           frame(TypeContentResponse, []byte{2, 0}),
		"short hash":             frame(TypeContentRequest, []byte{1, 2, 3}),
		"empty batch":            frame(TypeContentBatchRequest, []byte{0}),
		"batch too long":         frame(TypeContentBatchRequest, binary.AppendUvarint(nil, MaxBatch+1)),
		"batch short":            frame(TypeContentBatchRequest, append([]byte{2}, make([]byte, 40)...)),
		"chunk list short hash":  frame(TypeChunkListRequest, make([]byte, 31)),
		"chunk list flag":        frame(TypeChunkListResponse, []byte{2, 0}),
		"chunk list not found":   frame(TypeChunkListResponse, []byte{0, 1}),
		"chunk list too long":    frame(TypeChunkListResponse, binary.AppendUvarint([]byte{1}, uint64(MaxChunkListBytes)+1)),
		"range of no bytes":      frame(TypeRangeRequest, append(make([]byte, 32), 5, 0)),
		"range offset over 2^62": frame(TypeRangeRequest, binary.AppendUvarint(binary.AppendUvarint(make([]byte, 32), 1<<62+1), 1)),
		"range length over 2^62": frame(TypeRangeRequest, binary.AppendUvarint(append(make([]byte, 32), 0), 1<<62+1)),
		"range ending past 2^62": frame(TypeRangeRequest, binary.AppendUvarint(binary.AppendUvarint(make([]byte, 32), 1<<61+1), 1<<61)),
		"range length missing":   frame(TypeRangeRequest, append(make([]byte, 32), 5)),
		"range-request trailing": frame(TypeRangeRequest, append(make([]byte, 32), 5, 1, 0)),
	} {
		if _, err := ReadFrame(bytes.NewReader(b)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: got %v, want ErrMalformed", name, err)
		}
	}
	if _, err := ReadFrame(bytes.NewReader([]byte{0, 0, 0, 9, 1})); err == nil || errors.Is(err, ErrMalformed) {
		t.Errorf("truncated frame: %v", err)
	}
}

// FuzzReadFrame: whatever the bytes, the reader does not panic, fails
// with one of its errors, and takes only what the encoder writes: a frame
// read encodes back to exactly its bytes, so no message has two
// encodings (varints in their shortest form, vectors sorted, each device
// once, ops as oplog writes them).
func FuzzReadFrame(f *testing.F) {
	for _, m := range []Message{
		sampleOps(2),
		&Hello{Version: 1, Name: "x", Have: map[certs.DeviceID]uint64{dev(1): 1}},
		&Hello{Version: ProtocolVersion, Name: "nas", Have: map[certs.DeviceID]uint64{dev(1): 1 << 40, dev(2): 5, dev(3): 1}},
		&Progress{Have: map[certs.DeviceID]uint64{dev(9): 300}},
		&ContentRequest{Hash: content.Sum([]byte("x")), Offset: 1 << 33},
		&ContentResponse{Found: true, Size: 12345},
		&ContentBatchRequest{Hashes: []content.Hash{content.Sum(nil)}},
		&ChunkListRequest{Hash: content.Sum([]byte("x"))},
		&ChunkListResponse{Found: true, Length: 4096},
		&ChunkListResponse{Found: true},
		&RangeRequest{Hash: content.Sum([]byte("x")), Offset: 1 << 33, Length: 1 << 20},
		&StateDigest{Root: [32]byte{1}, Files: 3, Applied: map[certs.DeviceID]uint64{dev(1): 7}},
		&DigestRequest{ID: 9, Dir: "a/b", After: "c"},
		&DigestResponse{ID: 9, More: true, Entries: []DigestEntry{{Name: "c", Kind: DigestFile}, {Name: "d", Kind: DigestDir}}},
		&DigestResponse{ID: 1, Status: DigestBusy},
		&Introduce{Members: []Member{{ID: dev(1), Name: "nas"}, {ID: dev(2)}}, Sig: []byte{0x30, 1, 2}},
		&Introduce{Sig: []byte{1}},
		&Revoke{ID: dev(3), Sig: []byte{0x30, 4, 5}},
	} {
		var buf bytes.Buffer
		WriteFrame(&buf, m)
		f.Add(buf.Bytes())
	}
	// The frames the vectors refuse, each one check away from a good one.
	var v struct {
		Refused []struct {
			Frame vectors.Hex `json:"frame"`
		} `json:"refused"`
	}
	vectors.Load(f, "testdata/frames.json", ProtocolVersion, &v)
	for _, r := range v.Refused {
		if len(r.Frame) < 1<<10 {
			f.Add([]byte(r.Frame))
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ReadFrame(bytes.NewReader(b))
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrFrameTooLarge) && !errors.Is(err, io.ErrUnexpectedEOF) && err != io.EOF {
				t.Fatalf("error %v is none of the reader's", err)
			}
			return
		}
		var out bytes.Buffer
		if err := WriteFrame(&out, m); err != nil {
			t.Fatalf("decoded %s does not encode: %v", m.Type(), err)
		}
		n := int(binary.BigEndian.Uint32(b)) + 4
		if !bytes.Equal(out.Bytes(), b[:n]) {
			t.Fatalf("%s read from\n%x\nencodes to\n%x", m.Type(), b[:n], out.Bytes())
		}
	})
}

// BenchmarkEncodeOps encodes a frame of 1,000 ops, the unit of catch-up.
func BenchmarkEncodeOps(b *testing.B) {
	m := sampleOps(1000)
	var buf bytes.Buffer
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		buf.Reset()
		if err := WriteFrame(&buf, m); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(buf.Len()))
	b.ReportMetric(float64(b.N*1000)/b.Elapsed().Seconds(), "ops/s")
}

// BenchmarkDecodeOps decodes a frame of 1,000 ops.
func BenchmarkDecodeOps(b *testing.B) {
	var buf bytes.Buffer
	WriteFrame(&buf, sampleOps(1000))
	frame := buf.Bytes()
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := ReadFrame(bytes.NewReader(frame)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*1000)/b.Elapsed().Seconds(), "ops/s")
}
