package content

import (
	"bufio"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
)

// Chunk is one chunk of a content: where it starts, how long it is and
// the SHA-256 of its bytes.
type Chunk struct {
	Offset int64
	Size   int64
	Hash   Hash
}

// End is the offset just past the chunk.
func (c Chunk) End() int64 { return c.Offset + c.Size }

// The chunk list of a content of two or more chunks is, for each chunk in
// order, its size as a uvarint and its SHA-256: at most maxEntry bytes a
// chunk. The content's name is then the SHA-512/256 of listPrefix
// followed by the list. A content of one chunk (every content of at most
// MinChunk bytes) has no list and is named by its SHA-256, as before
// chunking; the different function and prefix keep a list's name from
// ever being the SHA-256 of some content.
const listPrefix = "drive-node chunk list v1\x00"

// maxEntry is the longest encoding of one chunk in a list.
const maxEntry = 3 + Size

// MaxListBytes bounds the chunk list of a content of size bytes: what a
// receiver accepts from a peer before it has checked the list.
func MaxListBytes(size int64) int64 { return (size/MinChunk + 1) * maxEntry }

// appendEntry appends c's list entry to b.
func appendEntry(b []byte, c Chunk) []byte {
	b = binary.AppendUvarint(b, uint64(c.Size))
	return append(b, c.Hash[:]...)
}

// ErrBadList is wrapped by errors of chunk lists that cannot be one this
// scheme makes.
var ErrBadList = errors.New("malformed chunk list")

// ListReader reads a chunk list entry by entry, in constant memory, and
// names it as it goes. It refuses what no chunker makes: a size that is
// zero, over MaxChunk or not written in its shortest form, a list of one
// chunk, a list that ends mid-entry.
type ListReader struct {
	r    *bufio.Reader
	root hash.Hash
	next int64 // offset of the next chunk
	n    int
}

// NewListReader returns a ListReader of the list r holds, from its start.
func NewListReader(r io.Reader) *ListReader {
	root := sha512.New512_256()
	io.WriteString(root, listPrefix)
	return &ListReader{r: bufio.NewReaderSize(r, 32<<10), root: root}
}

// Next returns the next chunk, or io.EOF after the last.
func (lr *ListReader) Next() (Chunk, error) {
	size, width, err := lr.uvarint()
	if errors.Is(err, io.EOF) && width == 0 {
		if lr.n == 1 {
			return Chunk{}, fmt.Errorf("%w: one chunk (such content has no list)", ErrBadList)
		}
		return Chunk{}, io.EOF
	}
	if err != nil {
		return Chunk{}, fmt.Errorf("%w: chunk %d: %w", ErrBadList, lr.n, noEOF(err))
	}
	if size == 0 || size > MaxChunk {
		return Chunk{}, fmt.Errorf("%w: chunk %d is %d bytes", ErrBadList, lr.n, size)
	}
	c := Chunk{Offset: lr.next, Size: int64(size)}
	if _, err := io.ReadFull(lr.r, c.Hash[:]); err != nil {
		return Chunk{}, fmt.Errorf("%w: chunk %d: %w", ErrBadList, lr.n, noEOF(err))
	}
	var enc [maxEntry]byte
	e := appendEntry(enc[:0], c)
	if len(e)-Size != width {
		return Chunk{}, fmt.Errorf("%w: chunk %d: size not in its shortest form", ErrBadList, lr.n)
	}
	lr.root.Write(e)
	lr.next += c.Size
	lr.n++
	return c, nil
}

// uvarint reads a uvarint of at most 3 bytes (MaxChunk needs 3) and
// reports how many bytes it took.
func (lr *ListReader) uvarint() (uint64, int, error) {
	var v uint64
	for width := 0; width < 3; width++ {
		b, err := lr.r.ReadByte()
		if err != nil {
			return 0, width, err
		}
		v |= uint64(b&0x7f) << (7 * width)
		if b < 0x80 {
			return v, width + 1, nil
		}
	}
	return 0, 3, fmt.Errorf("size longer than 3 bytes")
}

// Name is the name of the list read so far; after Next has returned
// io.EOF, the content's name.
func (lr *ListReader) Name() Hash { return sumOf(lr.root) }

// Size is the sum of the sizes of the chunks read so far.
func (lr *ListReader) Size() int64 { return lr.next }

func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// lister takes a content's chunks in order and yields its name, writing
// its list to an optional writer. A list is only started, and only
// written, when a second chunk comes.
type lister struct {
	w     io.Writer // nil: no list wanted
	root  hash.Hash
	first Chunk
	n     int
	buf   []byte
	err   error // the first error writing to w
}

func (l *lister) add(c Chunk) {
	switch l.n {
	case 0:
		l.first = c
	case 1:
		l.root = sha512.New512_256()
		io.WriteString(l.root, listPrefix)
		l.put(l.first)
		l.put(c)
	default:
		l.put(c)
	}
	l.n++
}

func (l *lister) put(c Chunk) {
	l.buf = appendEntry(l.buf[:0], c)
	l.root.Write(l.buf)
	if l.w != nil && l.err == nil {
		_, l.err = l.w.Write(l.buf)
	}
}

// name returns the content's name once every chunk has been added.
func (l *lister) name() Hash {
	switch l.n {
	case 0:
		return EmptyHash
	case 1:
		return l.first.Hash
	}
	return sumOf(l.root)
}

// chunkHasher cuts a stream into chunks and hashes each: the whole of a
// content's naming done in one pass.
type chunkHasher struct {
	cut   cutter
	sha   hash.Hash
	start int64 // offset of the current chunk
	n     int64 // bytes of the current chunk
	emit  func(Chunk)
}

func newChunkHasher(emit func(Chunk)) *chunkHasher {
	return &chunkHasher{sha: sha256.New(), emit: emit}
}

func (ch *chunkHasher) Write(p []byte) (int, error) {
	total := len(p)
	for len(p) > 0 {
		k, cut := ch.cut.next(p)
		ch.sha.Write(p[:k])
		ch.n += int64(k)
		p = p[k:]
		if cut {
			ch.close()
		}
	}
	return total, nil
}

// close ends the current chunk, if it has any bytes.
func (ch *chunkHasher) close() {
	if ch.n == 0 {
		return
	}
	c := Chunk{Offset: ch.start, Size: ch.n}
	ch.sha.Sum(c.Hash[:0])
	ch.sha.Reset()
	ch.start += ch.n
	ch.n = 0
	ch.emit(c)
}
