package fields

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
)

var errTest = errors.New("test encoding malformed")

func TestDecoderReadsWhatWasWritten(t *testing.T) {
	var b []byte
	b = append(b, 7)
	b = append(b, "abcd"...)
	b = binary.AppendUvarint(b, 1<<40)
	b = binary.AppendVarint(b, -12345)
	b = binary.AppendUvarint(b, 3)
	b = append(b, "xyz"...)
	b = append(b, 0xff)

	d := NewDecoder(b, errTest)
	if got := d.Byte("byte"); got != 7 {
		t.Errorf("Byte = %d, want 7", got)
	}
	var four [4]byte
	d.Fixed(four[:], "fixed")
	if string(four[:]) != "abcd" {
		t.Errorf("Fixed = %q, want abcd", four)
	}
	if got := d.Uvarint("uvarint"); got != 1<<40 {
		t.Errorf("Uvarint = %d", got)
	}
	if got := d.Varint("varint"); got != -12345 {
		t.Errorf("Varint = %d", got)
	}
	s := d.Bytes("bytes", 3)
	if string(s) != "xyz" || cap(s) != 3 {
		t.Errorf("Bytes = %q (cap %d), want xyz with capacity 3", s, cap(s))
	}
	if d.Left() != 1 {
		t.Errorf("Left = %d, want 1", d.Left())
	}
	err := d.Finish()
	if !errors.Is(err, errTest) || !strings.Contains(err.Error(), "1 trailing bytes") {
		t.Errorf("Finish with a byte left = %v, want trailing bytes wrapping the encoding's error", err)
	}
}

func TestDecoderErrorsNameTheField(t *testing.T) {
	long := binary.AppendUvarint(nil, 10)
	long = append(long, "0123456789"...)
	cases := []struct {
		name  string
		input []byte
		read  func(d *Decoder)
		want  string
	}{
		{"empty byte", nil, func(d *Decoder) { d.Byte("kind") }, "truncated at kind"},
		{"short fixed", []byte{1, 2}, func(d *Decoder) { d.Fixed(make([]byte, 3), "hash") }, "truncated at hash"},
		{"cut varint", []byte{0x80}, func(d *Decoder) { d.Uvarint("seq") }, "bad varint at seq"},
		{"overlong varint", []byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01}, func(d *Decoder) { d.Varint("size") }, "bad varint at size"},
		{"padded uvarint", []byte{0x80, 0x00}, func(d *Decoder) { d.Uvarint("seq") }, "varint at seq in 2 bytes, longer than its shortest form"},
		{"padded varint", []byte{0x81, 0x80, 0x80, 0x00}, func(d *Decoder) { d.Varint("size") }, "varint at size in 4 bytes"},
		{"padded length", []byte{0x83, 0x00, 'a', 'b', 'c'}, func(d *Decoder) { d.Bytes("name", 100) }, "varint at name length in 2 bytes"},
		{"over the limit", long, func(d *Decoder) { d.String("path", 9) }, "path of 10 bytes (limit 9, 10 left)"},
		{"longer than the input", long[:5], func(d *Decoder) { d.Bytes("name", 100) }, "name of 10 bytes (limit 100, 4 left)"},
		{"length cut", nil, func(d *Decoder) { d.Bytes("name", 100) }, "bad varint at name length"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := NewDecoder(c.input, errTest)
			c.read(d)
			if err := d.Err(); !errors.Is(err, errTest) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want one wrapping %v that says %q", err, errTest, c.want)
			}
		})
	}
}

// TestVarintsAtTheirEdges: the shortest form of every width is read,
// the largest values included, and nothing is left over.
func TestVarintsAtTheirEdges(t *testing.T) {
	for _, u := range []uint64{0, 1, 127, 128, 1<<14 - 1, 1 << 14, 1<<63 - 1, 1 << 63, ^uint64(0)} {
		d := NewDecoder(binary.AppendUvarint(nil, u), errTest)
		if got := d.Uvarint("u"); got != u || d.Finish() != nil {
			t.Errorf("uvarint %d read as %d: %v", u, got, d.Err())
		}
	}
	for _, v := range []int64{0, -1, 1, -64, 64, -1 << 63, 1<<63 - 1} {
		d := NewDecoder(binary.AppendVarint(nil, v), errTest)
		if got := d.Varint("v"); got != v || d.Finish() != nil {
			t.Errorf("varint %d read as %d: %v", v, got, d.Err())
		}
	}
}

func TestDecoderKeepsTheFirstError(t *testing.T) {
	d := NewDecoder([]byte{5}, errTest)
	var two [2]byte
	d.Fixed(two[:], "origin")
	if got := d.Byte("kind"); got != 0 {
		t.Errorf("Byte after an error = %d, want 0 (nothing read)", got)
	}
	d.Fail("later problem")
	if d.Left() != 1 {
		t.Errorf("Left = %d after an error, want the byte unread", d.Left())
	}
	if err := d.Finish(); err == nil || !strings.Contains(err.Error(), "truncated at origin") || strings.Contains(err.Error(), "later") {
		t.Errorf("Finish = %v, want only the first error", err)
	}
}

func TestZeroDecoder(t *testing.T) {
	var d Decoder
	if err := d.Finish(); err != nil {
		t.Errorf("an empty input read whole: %v", err)
	}
	d.Byte("kind")
	if !errors.Is(d.Err(), ErrMalformed) {
		t.Errorf("zero Decoder's error %v does not wrap ErrMalformed", d.Err())
	}
}

// FuzzDecoder reads an arbitrary input as one of each field: whatever the
// bytes, the decoder neither panics nor hands out more than it was given,
// and an error comes with nothing read past it.
func FuzzDecoder(f *testing.F) {
	f.Add([]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 3, 'a', 'b', 'c'})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{})
	f.Add([]byte{0x80, 0x00, 0x81, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		d := NewDecoder(b, errTest)
		d.Byte("byte")
		var two [2]byte
		d.Fixed(two[:], "fixed")
		d.Uvarint("uvarint")
		d.Varint("varint")
		got := d.Bytes("bytes", 8)
		if len(got) > 8 || cap(got) != len(got) {
			t.Fatalf("Bytes returned %d bytes, capacity %d (limit 8)", len(got), cap(got))
		}
		if d.Left() > len(b) || d.Left() < 0 {
			t.Fatalf("Left = %d of %d", d.Left(), len(b))
		}
		if err := d.Finish(); err != nil && !errors.Is(err, errTest) {
			t.Fatalf("error %v does not wrap the encoding's error", err)
		}
		// A varint read is the shortest form: writing it back gives the
		// bytes it was read from.
		d = NewDecoder(b, errTest)
		if u := d.Uvarint("u"); d.Err() == nil {
			if n := len(b) - d.Left(); !bytes.Equal(binary.AppendUvarint(nil, u), b[:n]) {
				t.Fatalf("uvarint %d read from %x", u, b[:n])
			}
		}
		d = NewDecoder(b, errTest)
		if v := d.Varint("v"); d.Err() == nil {
			if n := len(b) - d.Left(); !bytes.Equal(binary.AppendVarint(nil, v), b[:n]) {
				t.Fatalf("varint %d read from %x", v, b[:n])
			}
		}
	})
}
