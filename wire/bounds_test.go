package wire

import (
	"bytes"
	"encoding/binary"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/drive-node/drive-node/certs"
	"github.com/drive-node/drive-node/oplog"
)

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
