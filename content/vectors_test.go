package content_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/drive-node/drive-node/content"
	"github.com/drive-node/drive-node/internal/vectors"
	"github.com/drive-node/drive-node/wire"
)

var update = flag.Bool("update", false, "write testdata/names.json from this build (then review the diff)")

// streamPattern is the content of most vectors, made here rather than
// stored: the SHA-256 of the 8-byte big-endian counter 0, 1, 2, …,
// concatenated and cut to n bytes.
func streamPattern(n int) []byte {
	b := make([]byte, 0, n+sha256.Size)
	for i := uint64(0); len(b) < n; i++ {
		s := sha256.Sum256(binary.BigEndian.AppendUint64(nil, i))
		b = append(b, s[:]...)
	}
	return b[:n]
}

// nameVectors is testdata/names.json.
type nameVectors struct {
	ProtocolVersion int         `json:"protocol_version"`
	About           string      `json:"about"`
	MinChunk        int         `json:"min_chunk"`
	NormalChunk     int         `json:"normal_chunk"`
	MaxChunk        int         `json:"max_chunk"`
	SmallMaskBits   int         `json:"small_mask_bits"`
	LargeMaskBits   int         `json:"large_mask_bits"`
	GearPrefix      vectors.Hex `json:"gear_prefix"`
	Gear            []string    `json:"gear_first_and_last"`
	ListPrefix      vectors.Hex `json:"list_prefix"`
	Contents        []nameCase  `json:"contents"`
}

type nameCase struct {
	Name    string      `json:"name"`
	Size    int         `json:"size"`
	Data    vectors.Hex `json:"data,omitempty"`
	Pattern string      `json:"pattern,omitempty"` // "stream" or "zeros"
	// Cuts are the chunk ends; List is the chunk list in full (small
	// cases) and ListSHA256 its SHA-256 (all cases with a list).
	Cuts       []int64     `json:"cuts"`
	List       vectors.Hex `json:"list,omitempty"`
	ListSHA256 vectors.Hex `json:"list_sha256,omitempty"`
	Hash       vectors.Hex `json:"hash"`
}

func (c nameCase) data() []byte {
	switch c.Pattern {
	case "stream":
		return streamPattern(c.Size)
	case "zeros":
		return make([]byte, c.Size)
	}
	return c.Data
}

// TestContentNameVectors checks testdata/names.json: each content's cuts,
// chunk list and name, by Sum, by a Hasher fed in odd-sized pieces and by
// File (which cuts a large file on every core); the cuts against the rule
// as docs/protocol.md states it, by a slow program of its own; and the
// name against the formula. Peers name content this way in ops and
// fetch chunks by these lists, so these tests fail on any change until
// the vectors and wire.ProtocolVersion change together.
func TestContentNameVectors(t *testing.T) {
	path := "testdata/names.json"
	if *update {
		writeNameVectors(t, path)
	}
	var v nameVectors
	vectors.Load(t, path, wire.ProtocolVersion, &v)
	if v.MinChunk != content.MinChunk || v.NormalChunk != content.NormalChunk || v.MaxChunk != content.MaxChunk {
		t.Fatalf("chunk sizes %d/%d/%d, the vectors say %d/%d/%d", content.MinChunk, content.NormalChunk, content.MaxChunk, v.MinChunk, v.NormalChunk, v.MaxChunk)
	}
	gear := gearTable(v.GearPrefix)
	if len(v.Gear) != 2 || v.Gear[0] != hexWord(gear[0]) || v.Gear[1] != hexWord(gear[255]) {
		t.Fatalf("gear table's first and last entries %s, %s; the vectors say %v", hexWord(gear[0]), hexWord(gear[255]), v.Gear)
	}
	for _, c := range v.Contents {
		data := c.data()
		if len(data) != c.Size {
			t.Fatalf("%s: %d bytes, want %d", c.Name, len(data), c.Size)
		}
		want := c.Hash.Hash(t)
		if got := content.Sum(data); got != want {
			t.Errorf("%s: Sum = %s, want %s", c.Name, got, want)
		}
		var list bytes.Buffer
		h := content.NewListHasher(&list)
		for p := data; len(p) > 0; {
			k := min(len(p), 100<<10+7)
			h.Write(p[:k])
			p = p[k:]
		}
		if got := h.Sum(); got != want {
			t.Errorf("%s: Hasher = %s, want %s", c.Name, got, want)
		}
		file := filepath.Join(t.TempDir(), "f")
		if err := os.WriteFile(file, data, 0o600); err != nil {
			t.Fatal(err)
		}
		var fileList bytes.Buffer
		f, _ := os.Open(file)
		got, n, err := content.OpenList(context.Background(), f, &fileList)
		f.Close()
		if err != nil || got != want || n != int64(c.Size) || !bytes.Equal(fileList.Bytes(), list.Bytes()) {
			t.Errorf("%s: OpenList = %s, %d, %v (list %d bytes); want %s, %d (list %d bytes)", c.Name, got, n, err, fileList.Len(), want, c.Size, list.Len())
		}
		if c.Size <= 4<<20 {
			if cuts := slowCuts(gear, v, data); !slices.Equal(cuts, c.Cuts) {
				t.Errorf("%s: the rule cuts at %v, the vectors say %v", c.Name, cuts, c.Cuts)
			}
		}
		checkName(t, c, v.ListPrefix, data, list.Bytes(), want)
	}
}

// checkName checks a vector's list and name against the formula, without
// package content: one chunk is named by its SHA-256; more by the
// SHA-512/256 of the prefix and the list, each entry the chunk's size as
// a uvarint and its SHA-256.
func checkName(t *testing.T, c nameCase, prefix, data, list []byte, want content.Hash) {
	t.Helper()
	if len(c.Cuts) <= 1 {
		if len(list) != 0 || sha256.Sum256(data) != want {
			t.Errorf("%s: one chunk not named by its SHA-256, or has a list", c.Name)
		}
		return
	}
	var built []byte
	start := int64(0)
	for _, end := range c.Cuts {
		built = binary.AppendUvarint(built, uint64(end-start))
		s := sha256.Sum256(data[start:end])
		built = append(built, s[:]...)
		start = end
	}
	if !bytes.Equal(built, list) {
		t.Errorf("%s: the list is not the chunks' sizes and SHA-256s", c.Name)
	}
	if c.List != nil && !bytes.Equal(c.List, list) {
		t.Errorf("%s: the list is not the one in the vectors", c.Name)
	}
	if s := sha256.Sum256(list); !bytes.Equal(s[:], c.ListSHA256) {
		t.Errorf("%s: the list's SHA-256 is %x, the vectors say %x", c.Name, s, []byte(c.ListSHA256))
	}
	if sha512.Sum512_256(append(bytes.Clone(prefix), list...)) != want {
		t.Errorf("%s: not SHA-512/256 of the prefix and the list", c.Name)
	}
}

// gearTable derives the gear table as docs/protocol.md says.
func gearTable(prefix []byte) [256]uint64 {
	var g [256]uint64
	for b := range g {
		s := sha256.Sum256(append(bytes.Clone(prefix), byte(b)))
		g[b] = binary.BigEndian.Uint64(s[:8])
	}
	return g
}

func hexWord(x uint64) string { return hex.EncodeToString(binary.BigEndian.AppendUint64(nil, x)) }

// slowCuts cuts data by the rule, word for word: the gear hash at each
// position computed afresh over the 64 bytes that end there.
func slowCuts(gear [256]uint64, v nameVectors, data []byte) []int64 {
	top := func(bits int) uint64 { return ^uint64(0) << (64 - bits) }
	fpAt := func(i int) uint64 {
		var fp uint64
		for j := max(0, i-63); j <= i; j++ {
			fp = fp<<1 + gear[data[j]]
		}
		return fp
	}
	var cuts []int64
	start := 0
	for start < len(data) {
		end := len(data)
		for i := start; i < len(data); i++ {
			n := i - start + 1
			if n == v.MaxChunk {
				end = i + 1
				break
			}
			if n <= v.MinChunk {
				continue
			}
			mask := top(v.LargeMaskBits)
			if n <= v.NormalChunk {
				mask = top(v.SmallMaskBits)
			}
			if fpAt(i)&mask == 0 {
				end = i + 1
				break
			}
		}
		cuts = append(cuts, int64(end))
		start = end
	}
	return cuts
}

// writeNameVectors writes the vector file from this build; run with
// -update after a deliberate change, and review the diff.
func writeNameVectors(t *testing.T, path string) {
	v := nameVectors{
		ProtocolVersion: wire.ProtocolVersion,
		About: "Known answers for content names (docs/protocol.md, \"Content names\"). Content is data (hex), or size bytes of a pattern: " +
			"\"stream\" is SHA-256 of the 8-byte big-endian counter 0, 1, 2, … concatenated; \"zeros\" is zero bytes. " +
			"cuts are the offsets where chunks end; list is the chunk list (each chunk's size as a uvarint, then its SHA-256); " +
			"hash is the name: the SHA-256 of a content of one chunk, else SHA-512/256 of list_prefix and the list.",
		MinChunk: content.MinChunk, NormalChunk: content.NormalChunk, MaxChunk: content.MaxChunk,
		SmallMaskBits: 18, LargeMaskBits: 15,
		GearPrefix: vectors.Hex("drive-node gear v1\x00"),
		ListPrefix: vectors.Hex("drive-node chunk list v1\x00"),
	}
	g := gearTable(v.GearPrefix)
	v.Gear = []string{hexWord(g[0]), hexWord(g[255])}
	cases := []nameCase{
		{Name: "empty", Data: vectors.Hex{}},
		{Name: "short", Data: vectors.Hex("hello, world\n")},
		{Name: "MinChunk bytes: one chunk, plain SHA-256", Pattern: "stream", Size: content.MinChunk},
		{Name: "MinChunk and one byte: still one chunk", Pattern: "stream", Size: content.MinChunk + 1},
		{Name: "1 MiB: a few chunks, list in full", Pattern: "stream", Size: 1 << 20},
		{Name: "zeros: MaxChunk chunks and a tail of one byte", Pattern: "zeros", Size: 3*content.MaxChunk + 1},
		{Name: "40 MiB: cut on every core", Pattern: "stream", Size: 40 << 20},
	}
	for i := range cases {
		c := &cases[i]
		data := c.data()
		c.Size = len(data)
		var list bytes.Buffer
		h := content.NewListHasher(&list)
		h.Write(data)
		sum := h.Sum()
		c.Hash = sum[:]
		lr := content.NewListReader(bytes.NewReader(list.Bytes()))
		for {
			ch, err := lr.Next()
			if err != nil {
				break
			}
			c.Cuts = append(c.Cuts, ch.End())
		}
		if list.Len() == 0 {
			c.Cuts = []int64{int64(len(data))}
			if len(data) == 0 {
				c.Cuts = nil
			}
		} else {
			s := sha256.Sum256(list.Bytes())
			c.ListSHA256 = s[:]
			if c.Size <= 4<<20 {
				c.List = list.Bytes()
			}
		}
		if c.Pattern != "" {
			c.Data = nil
		}
	}
	v.Contents = cases
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
}
