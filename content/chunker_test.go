package content

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io"
	mrand "math/rand/v2"
	"slices"
	"testing"
)

// chunksOf cuts data in one pass.
func chunksOf(data []byte) []Chunk {
	var out []Chunk
	ch := newChunkHasher(func(c Chunk) { out = append(out, c) })
	ch.Write(data)
	ch.close()
	return out
}

func cutsOf(chunks []Chunk) []int64 {
	out := make([]int64, len(chunks))
	for i, c := range chunks {
		out[i] = c.End()
	}
	return out
}

func TestChunkSizes(t *testing.T) {
	data := make([]byte, 64<<20)
	rand.Read(data)
	chunks := chunksOf(data)
	var total int64
	for i, c := range chunks {
		if c.Offset != total {
			t.Fatalf("chunk %d starts at %d, want %d", i, c.Offset, total)
		}
		if c.Size > MaxChunk || (c.Size <= MinChunk && i != len(chunks)-1) {
			t.Fatalf("chunk %d is %d bytes", i, c.Size)
		}
		if c.Hash != Hash(sha256.Sum256(data[c.Offset:c.End()])) {
			t.Fatalf("chunk %d: hash is not its bytes' SHA-256", i)
		}
		total += c.Size
	}
	mean := total / int64(len(chunks))
	if total != int64(len(data)) || mean < NormalChunk || mean > NormalChunk+NormalChunk/2 {
		t.Fatalf("%d chunks over %d bytes, mean %d", len(chunks), total, mean)
	}
}

// TestNoCutsInRuns: a run of one byte value has the same gear hash all
// along; the table must make it no cut, or a file of zeros would be cut
// into MinChunk pieces (and a list ten times as long).
func TestNoCutsInRuns(t *testing.T) {
	for b := range 256 {
		var fp uint64
		for range 64 {
			fp = fp<<1 + gear[b]
		}
		if fp&largeMask == 0 {
			t.Errorf("a run of byte %#x cuts", b)
		}
	}
	chunks := chunksOf(make([]byte, 3*MaxChunk))
	if len(chunks) != 3 {
		t.Fatalf("zeros cut into %d chunks, want 3 of MaxChunk", len(chunks))
	}
}

// TestCutsStableUnderEdits: an insertion, a deletion or an overwrite
// changes only the chunks near it, and every cut past them is where it
// was (moved by the bytes inserted or deleted). A small edit changes one
// chunk, up to three when it makes or unmakes a cut. A larger one can, now and then,
// move a cut into the first MinChunk bytes of a chunk, where it is not
// looked for; the cuts then take a few chunks to fall back into step:
// never more than 4 MiB on these seeds, and two new chunks on average.
func TestCutsStableUnderEdits(t *testing.T) {
	const seeds = 20
	edits := []struct {
		name  string
		apply func(d []byte, at int, r *mrand.ChaCha8) []byte
		shift int64
		small bool
	}{
		{"insert 1 byte", func(d []byte, at int, _ *mrand.ChaCha8) []byte { return slices.Insert(d, at, 0x5a) }, 1, true},
		{"delete 1 byte", func(d []byte, at int, _ *mrand.ChaCha8) []byte { return slices.Delete(d, at, at+1) }, -1, true},
		{"overwrite 4 KiB", func(d []byte, at int, r *mrand.ChaCha8) []byte {
			r.Read(d[at : at+4096])
			return d
		}, 0, true},
		{"insert 100 bytes", func(d []byte, at int, _ *mrand.ChaCha8) []byte { return slices.Insert(d, at, make([]byte, 100)...) }, 100, false},
		{"delete 5000 bytes", func(d []byte, at int, _ *mrand.ChaCha8) []byte { return slices.Delete(d, at, at+5000) }, -5000, false},
	}
	for _, e := range edits {
		total := 0
		for seed := range seeds {
			r := mrand.NewChaCha8([32]byte{byte(seed), 1})
			data := make([]byte, 8<<20)
			r.Read(data)
			before := chunksOf(data)
			at := 3<<20 + seed*12347
			after := chunksOf(e.apply(slices.Clone(data), at, r))
			have := map[Hash]bool{}
			for _, c := range before {
				have[c.Hash] = true
			}
			newChunks := 0
			for _, c := range after {
				if !have[c.Hash] {
					newChunks++
				}
			}
			total += newChunks
			cuts := map[int64]bool{}
			for _, x := range cutsOf(after) {
				cuts[x] = true
			}
			settle := int64(4 << 20)
			if e.small {
				settle = MaxChunk
			}
			for _, x := range cutsOf(before) {
				if x > int64(at)+settle && !cuts[x+e.shift] {
					t.Errorf("%s, seed %d: the cut at %d moved", e.name, seed, x)
				}
				if x < int64(at) && !cuts[x] {
					t.Errorf("%s, seed %d: the cut at %d, before the edit, moved", e.name, seed, x)
				}
			}
			if e.small && newChunks > 3 {
				t.Errorf("%s, seed %d: %d new chunks, want at most 3", e.name, seed, newChunks)
			}
		}
		if mean := float64(total) / seeds; mean > 2 {
			t.Errorf("%s: %.1f new chunks on average, want at most 2", e.name, mean)
		}
	}
}

// TestParallelIsOnePass: cutting on every core finds exactly the chunks of
// one pass, also where the workers cannot agree within the overlap (runs
// of one byte value, which cut only at MaxChunk from wherever a chunk
// starts) and at every size around a segment's edge.
func TestParallelIsOnePass(t *testing.T) {
	rnd := make([]byte, 3*segmentSize+777)
	rand.Read(rnd)
	zeros := make([]byte, 3*segmentSize+777)
	copy(zeros, rnd[:MinChunk+12345]) // an odd start: zeros after it cut off the grid
	mixed := slices.Clone(rnd)
	r := mrand.New(mrand.NewPCG(3, 4))
	for range 40 { // holes of zeros, as in a disk image
		off := r.IntN(len(mixed) - 3<<20)
		clear(mixed[off : off+r.IntN(3<<20)])
	}
	periodic := make([]byte, 2*segmentSize+5)
	for i := range periodic {
		periodic[i] = byte(i % 7)
	}
	cases := map[string][]byte{"random": rnd, "zeros": zeros, "mixed": mixed, "periodic": periodic,
		"one segment": rnd[:segmentSize], "segment and a byte": rnd[:segmentSize+1]}
	for name, data := range cases {
		var one, par bytes.Buffer
		want, _, err := ListReaderOf(context.Background(), bytes.NewReader(data), &one)
		if err != nil {
			t.Fatal(err)
		}
		got, err := parallel(context.Background(), bytes.NewReader(data), int64(len(data)), &par)
		if err != nil {
			t.Fatal(err)
		}
		if got != want || !bytes.Equal(one.Bytes(), par.Bytes()) {
			t.Errorf("%s: parallel names %v (list %d bytes), one pass %v (list %d bytes)", name, got.Short(), par.Len(), want.Short(), one.Len())
		}
	}
}

func TestListReader(t *testing.T) {
	data := make([]byte, 3<<20)
	rand.Read(data)
	var list bytes.Buffer
	name, _, err := ListReaderOf(context.Background(), bytes.NewReader(data), &list)
	if err != nil {
		t.Fatal(err)
	}
	want := chunksOf(data)
	lr := NewListReader(bytes.NewReader(list.Bytes()))
	var got []Chunk
	for {
		c, err := lr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, c)
	}
	if !slices.Equal(got, want) || lr.Name() != name || lr.Size() != int64(len(data)) {
		t.Fatalf("read back %d chunks, name %v, size %d; want %d, %v, %d", len(got), lr.Name().Short(), lr.Size(), len(want), name.Short(), len(data))
	}
	if len(list.Bytes()) > int(MaxListBytes(int64(len(data)))) {
		t.Fatalf("list of %d bytes over its bound %d", list.Len(), MaxListBytes(int64(len(data))))
	}
	entry := func(size []byte) []byte { return append(size, make([]byte, Size)...) }
	bad := map[string][]byte{
		"size zero":             slices.Concat(entry([]byte{0}), entry([]byte{1})),
		"size over MaxChunk":    slices.Concat(entry([]byte{0x81, 0x80, 0x20}), entry([]byte{1})),
		"size not shortest":     slices.Concat(entry([]byte{0x81, 0x00}), entry([]byte{1})),
		"size over three bytes": slices.Concat(entry([]byte{0x81, 0x80, 0x80, 0x00}), entry([]byte{1})),
		"one chunk":             entry([]byte{1}),
		"cut mid-hash":          slices.Concat(entry([]byte{1}), []byte{1, 2, 3}),
		"cut mid-size":          slices.Concat(entry([]byte{1}), entry([]byte{1}), []byte{0x81}),
	}
	for name, b := range bad {
		lr := NewListReader(bytes.NewReader(b))
		var err error
		for err == nil {
			_, err = lr.Next()
		}
		if !errors.Is(err, ErrBadList) {
			t.Errorf("%s: %v, want ErrBadList", name, err)
		}
	}
}
