package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/drive-node/drive-node/certs"
	"github.com/drive-node/drive-node/oplog"
	"github.com/drive-node/drive-node/vclock"
)

// bigOp is a rename of two MaxPathLen paths: about 8 KiB encoded.
func bigOp(seq uint64) oplog.Op {
	return oplog.Op{Origin: dev(1), Seq: seq, Lamport: seq, Kind: oplog.KindRename,
		Path: strings.Repeat("a", oplog.MaxPathLen), NewPath: strings.Repeat("b", oplog.MaxPathLen), Mode: 0o644}
}

// sendAll puts ops through an OpsBatch the way a sender does, writing a
// frame each time the batch says it is full and once at the end, and
// returns the frames written.
func sendAll(t *testing.T, b *OpsBatch, ops []oplog.Op) [][]byte {
	t.Helper()
	var frames [][]byte
	flush := func() {
		var buf bytes.Buffer
		if err := WriteFrame(&buf, b); err != nil {
			t.Fatalf("frame %d of %d ops: %v", len(frames), b.Len(), err)
		}
		frames = append(frames, buf.Bytes())
		b.Reset()
	}
	for _, op := range ops {
		full, err := b.Add(op)
		if err != nil {
			t.Fatal(err)
		}
		if full {
			flush()
		}
	}
	if b.Len() > 0 {
		flush()
	}
	return frames
}

// TestOpsBatchKeepsFramesWithinMaxFrame: 2,000 ops of 8 KiB make 16 MiB,
// twice what a frame may hold, so the one Ops frame a count-only sender
// writes is refused, and the sender fails on it at every connection. A
// batch splits them into frames that each hold as many as fit, in order.
func TestOpsBatchKeepsFramesWithinMaxFrame(t *testing.T) {
	ops := make([]oplog.Op, 2000)
	for i := range ops {
		ops[i] = bigOp(uint64(i + 1))
	}
	if err := WriteFrame(&bytes.Buffer{}, &Ops{Ops: ops}); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("2,000 ops of 8 KiB in one frame: %v, want ErrFrameTooLarge", err)
	}
	frames := sendAll(t, &OpsBatch{MaxOps: 2000}, ops)
	if len(frames) < 2 {
		t.Fatalf("%d frames", len(frames))
	}
	var got []oplog.Op
	for i, f := range frames {
		m, err := ReadFrame(bytes.NewReader(f))
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		got = append(got, m.(*Ops).Ops...)
		// Split only when the next op would not have fitted.
		if next := len(got); i < len(frames)-1 {
			enc, _ := ops[next].MarshalBinary()
			if room := MaxFrame - (len(f) - 4); room >= len(enc)+binary.MaxVarintLen64*2 {
				t.Errorf("frame %d ends with %d bytes to spare, and the next op takes %d", i, room, len(enc))
			}
		}
	}
	if !reflect.DeepEqual(got, ops) {
		t.Fatalf("%d ops came through, want the %d sent in order", len(got), len(ops))
	}
}

// TestOpsBatchCountsOps: MaxOps bounds each frame as well; an op that
// would go past it starts the next frame.
func TestOpsBatchCountsOps(t *testing.T) {
	ops := sampleOps(7).Ops
	var sizes []int
	for _, f := range sendAll(t, &OpsBatch{MaxOps: 3}, ops) {
		m, err := ReadFrame(bytes.NewReader(f))
		if err != nil {
			t.Fatal(err)
		}
		sizes = append(sizes, len(m.(*Ops).Ops))
	}
	if !reflect.DeepEqual(sizes, []int{3, 3, 1}) {
		t.Fatalf("frames of %v ops, want 3, 3, 1", sizes)
	}
	// A batch that holds an op back takes nothing more until Reset.
	b := &OpsBatch{}
	b.Add(ops[0])
	b.held = true
	if _, err := b.Add(ops[1]); err == nil {
		t.Fatal("an op was added to a full batch")
	}
}

// TestOpsBatchRefusesWhatNoPeerTakes: an op the log would refuse is not
// encoded either; the batch is left as it was.
func TestOpsBatchRefusesWhatNoPeerTakes(t *testing.T) {
	b := &OpsBatch{}
	if _, err := b.Add(sampleOps(1).Ops[0]); err != nil {
		t.Fatal(err)
	}
	wide := bigOp(2)
	for i := 0; i <= oplog.MaxParents; i++ {
		var d certs.DeviceID
		binary.BigEndian.PutUint32(d[:], uint32(i+1))
		wide.Parent = append(wide.Parent, vclock.Entry{Device: d, Counter: 1})
	}
	if _, err := b.Add(wide); !errors.Is(err, oplog.ErrInvalid) {
		t.Fatalf("an op over MaxParents: %v, want oplog.ErrInvalid", err)
	}
	if b.Len() != 1 {
		t.Fatalf("batch holds %d ops after a refused one, want 1", b.Len())
	}
}

// TestHelloNameCutAtRuneBoundary: a name over maxName bytes is cut
// before the rune the limit falls in, so the peer gets UTF-8; a name that
// fits is sent whole.
func TestHelloNameCutAtRuneBoundary(t *testing.T) {
	a := func(n int) string { return strings.Repeat("a", n) }
	for _, c := range []struct{ name, want string }{
		{a(255) + "é", a(255)},
		{a(254) + "😀", a(254)},
		{a(253) + "😀", a(253)},
		{a(252) + "😀", a(252) + "😀"},
		{a(256) + "é", a(256)},
		{a(254) + "é", a(254) + "é"},
		{a(300), a(256)},
		{strings.Repeat("é", 200), strings.Repeat("é", 128)},
	} {
		var buf bytes.Buffer
		if err := WriteFrame(&buf, &Hello{Version: ProtocolVersion, Name: c.name}); err != nil {
			t.Fatal(err)
		}
		m, err := ReadFrame(&buf)
		if err != nil {
			t.Fatal(err)
		}
		if got := m.(*Hello).Name; got != c.want || !utf8.ValidString(got) {
			t.Errorf("name of %d bytes sent as %d bytes (valid UTF-8 %v), want %d", len(c.name), len(got), utf8.ValidString(got), len(c.want))
		}
	}
}

// TestLargestVectorsFit: a Hello or Progress listing MaxOrigins origins,
// every sequence at its longest, fits a frame and reads back; one origin
// more is refused by the encoder, as the log refuses to hold it.
func TestLargestVectorsFit(t *testing.T) {
	have := make(map[certs.DeviceID]uint64, oplog.MaxOrigins+1)
	for i := 0; i < oplog.MaxOrigins; i++ {
		var d certs.DeviceID
		binary.BigEndian.PutUint32(d[:], uint32(i+1))
		have[d] = ^uint64(0)
	}
	for _, m := range []Message{&Hello{Version: ProtocolVersion, Name: strings.Repeat("n", maxName), Have: have}, &Progress{Have: have}} {
		var buf bytes.Buffer
		if err := WriteFrame(&buf, m); err != nil {
			t.Fatalf("%s of %d origins: %v", m.Type(), len(have), err)
		}
		got, err := ReadFrame(&buf)
		if err != nil || !reflect.DeepEqual(got, m) {
			t.Fatalf("%s of %d origins read back: %v", m.Type(), len(have), err)
		}
	}
	have[certs.DeviceID{0xff}] = 1
	if err := WriteFrame(&bytes.Buffer{}, &Progress{Have: have}); err == nil {
		t.Fatalf("a progress of %d origins was encoded", len(have))
	}
	// An Ops frame of one largest op, with the longest count and length
	// varints, fits a frame many times over.
	if most := 1 + 2*binary.MaxVarintLen64 + oplog.MaxOpSize; most > MaxFrame {
		t.Fatalf("an op of MaxOpSize bytes takes a frame of %d, over MaxFrame", most)
	}
}

// TestVectorEncoding: what appendVector writes is what readVector takes:
// an origin at sequence 0 says nothing and is left out; the all-zero
// device names none and is refused.
func TestVectorEncoding(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteFrame(&buf, &Progress{Have: map[certs.DeviceID]uint64{dev(1): 0, dev(2): 5}}); err != nil {
		t.Fatal(err)
	}
	m, err := ReadFrame(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if got := m.(*Progress).Have; !reflect.DeepEqual(got, map[certs.DeviceID]uint64{dev(2): 5}) {
		t.Fatalf("read back %v", got)
	}
	if err := WriteFrame(&buf, &Hello{Have: map[certs.DeviceID]uint64{{}: 1}}); err == nil || !strings.Contains(err.Error(), "all-zero device") {
		t.Fatalf("a vector naming the zero device: %v", err)
	}
}

// TestLargestDigestResponseFits: a response of MaxDigestChildren entries
// with names of MaxDigestName bytes is a frame a reader takes, and one
// entry more is refused by the encoder.
func TestLargestDigestResponseFits(t *testing.T) {
	m := &DigestResponse{ID: 1 << 63, More: true}
	for i := range MaxDigestChildren {
		name := fmt.Sprintf("%04d", i) + strings.Repeat("n", MaxDigestName-4)
		m.Entries = append(m.Entries, DigestEntry{Name: name, Kind: DigestFile})
	}
	var buf bytes.Buffer
	if err := WriteFrame(&buf, m); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadFrame(&buf); err != nil {
		t.Fatalf("the largest digest response does not read back: %v", err)
	}
	m.Entries = append(m.Entries, DigestEntry{Name: "zzzz", Kind: DigestFile})
	if err := WriteFrame(&buf, m); err == nil {
		t.Fatal("a digest response over MaxDigestChildren was written")
	}
}

// TestDigestNamesDotAndDotDotRefused: a walk answer cannot name an entry
// "." or "..", which would read as paths that climb.
func TestDigestNamesDotAndDotDotRefused(t *testing.T) {
	for _, name := range []string{".", ".."} {
		var buf bytes.Buffer
		m := &DigestResponse{ID: 1, Entries: []DigestEntry{{Name: name, Kind: DigestDir}}}
		if err := WriteFrame(&buf, m); err == nil {
			t.Errorf("a digest response naming %q was written", name)
		}
	}
}
