package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/drive-node/drive-node/content"
)

// TestReadFrameAllocatesAsBytesArrive reads a frame that declares
// MaxFrame bytes and sends four, then ends or goes silent until a read
// deadline: the reader fails saying how much arrived and has allocated
// far less than the declared length.
func TestReadFrameAllocatesAsBytesArrive(t *testing.T) {
	for _, end := range []error{io.ErrUnexpectedEOF, os.ErrDeadlineExceeded} {
		after := iotest.ErrReader(end)
		if end == io.ErrUnexpectedEOF {
			after = bytes.NewReader(nil)
		}
		r := io.MultiReader(bytes.NewReader(binary.BigEndian.AppendUint32(nil, MaxFrame)),
			bytes.NewReader([]byte{byte(TypeOps), 1, 2, 3}), after)
		var err error
		n := allocated(func() { _, err = ReadFrame(r) })
		if n > MaxFrame/16 {
			t.Errorf("%v: allocated %d bytes for 4 of a declared %d", end, n, MaxFrame)
		}
		if !errors.Is(err, end) || !strings.Contains(err.Error(), fmt.Sprintf("4 of %d bytes", MaxFrame)) {
			t.Errorf("got %v, want a truncated frame of 4 of %d bytes wrapping %v", err, MaxFrame, end)
		}
	}
}

// TestReadFrameGrowsToLargeFrame reads a frame many times firstRead long,
// one byte a read, whole.
func TestReadFrameGrowsToLargeFrame(t *testing.T) {
	m := sampleOps(3000)
	var buf bytes.Buffer
	if err := WriteFrame(&buf, m); err != nil {
		t.Fatal(err)
	}
	if buf.Len() < 8*firstRead {
		t.Fatalf("frame of %d bytes is not large", buf.Len())
	}
	got, err := ReadFrame(iotest.OneByteReader(&buf))
	if err != nil || !reflect.DeepEqual(got, m) {
		t.Fatalf("large frame read one byte at a time: %v", err)
	}
}

// TestReadFrameLimit refuses a frame over the caller's limit after its
// length alone, with an error naming the limit; a limit over MaxFrame is
// MaxFrame.
func TestReadFrameLimit(t *testing.T) {
	for _, c := range []struct{ limit, want int }{{MaxContentRequestFrame, MaxContentRequestFrame}, {MaxFrame + 1, MaxFrame}} {
		r := &countingReader{r: io.MultiReader(bytes.NewReader(binary.BigEndian.AppendUint32(nil, uint32(c.want+1))),
			bytes.NewReader(make([]byte, c.want+1)))}
		_, err := ReadFrameLimit(r, c.limit)
		if !errors.Is(err, ErrFrameTooLarge) || !strings.Contains(err.Error(), fmt.Sprintf("(limit %d)", c.want)) {
			t.Errorf("limit %d: got %v, want ErrFrameTooLarge naming limit %d", c.limit, err, c.want)
		}
		if r.n != 4 {
			t.Errorf("limit %d: read %d bytes of an oversized frame", c.limit, r.n)
		}
	}
}

// TestMaxContentRequestFrame: the largest content request is exactly
// MaxContentRequestFrame long and reads within it.
func TestMaxContentRequestFrame(t *testing.T) {
	for _, m := range []Message{
		&ContentBatchRequest{Hashes: make([]content.Hash, MaxBatch)},
		&ContentRequest{Offset: 1 << 62},
		&ChunkListRequest{},
		&RangeRequest{Offset: 1<<62 - 1, Length: 1},
		&RangeRequest{Offset: 1, Length: 1<<62 - 1},
		&RangeRequest{Offset: 1 << 61, Length: 1 << 61},
	} {
		var buf bytes.Buffer
		if err := WriteFrame(&buf, m); err != nil {
			t.Fatal(err)
		}
		if n := buf.Len() - 4; n > MaxContentRequestFrame || (m.Type() == TypeContentBatchRequest && n != MaxContentRequestFrame) {
			t.Errorf("%s frame of %d bytes, MaxContentRequestFrame is %d", m.Type(), n, MaxContentRequestFrame)
		}
		if _, err := ReadFrameLimit(&buf, MaxContentRequestFrame); err != nil {
			t.Errorf("%s: %v", m.Type(), err)
		}
	}
}
