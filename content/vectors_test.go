package content_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"os"
	"path/filepath"
	"testing"

	"github.com/drive-node/drive-node/content"
	"github.com/drive-node/drive-node/internal/vectors"
	"github.com/drive-node/drive-node/wire"
)

// counterPattern is the content of the large vectors, made here rather
// than stored: byte i is i mod 251.
func counterPattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i % 251)
	}
	return b
}

// TestContentNameVectors checks content/testdata/names.json: each
// content's name, by Sum, by a Hasher fed in odd-sized pieces and by File
// (which hashes a large file's blocks in parallel), and the tree formula
// itself from the listed leaves. Peers name content this way in ops and
// content requests, so these tests fail on any change to the naming until
// the vectors and wire.ProtocolVersion change together (docs/protocol.md).
func TestContentNameVectors(t *testing.T) {
	var v struct {
		BlockSize  int         `json:"block_size"`
		TreePrefix vectors.Hex `json:"tree_prefix"`
		Contents   []struct {
			Name    string        `json:"name"`
			Size    int           `json:"size"`
			Data    vectors.Hex   `json:"data"`
			Pattern bool          `json:"counter_pattern"`
			Leaves  []vectors.Hex `json:"leaves"`
			Hash    vectors.Hex   `json:"hash"`
		} `json:"contents"`
	}
	vectors.Load(t, "testdata/names.json", wire.ProtocolVersion, &v)
	if v.BlockSize != content.BlockSize {
		t.Fatalf("block size %d, want %d", content.BlockSize, v.BlockSize)
	}
	sizes := map[int]bool{}
	for _, c := range v.Contents {
		data := []byte(c.Data)
		if c.Pattern {
			data = counterPattern(c.Size)
		}
		if len(data) != c.Size {
			t.Fatalf("%s: %d bytes, want %d", c.Name, len(data), c.Size)
		}
		sizes[c.Size] = true
		want := c.Hash.Hash(t)
		if got := content.Sum(data); got != want {
			t.Errorf("%s: Sum = %s, want %s", c.Name, got, want)
		}
		h := content.NewHasher()
		for p := data; len(p) > 0; {
			k := min(len(p), 1<<20+7)
			h.Write(p[:k])
			p = p[k:]
		}
		if got := h.Sum(); got != want {
			t.Errorf("%s: Hasher = %s, want %s", c.Name, got, want)
		}
		if c.Size > content.BlockSize {
			path := filepath.Join(t.TempDir(), "f")
			if err := os.WriteFile(path, data, 0o600); err != nil {
				t.Fatal(err)
			}
			if got, n, err := content.File(context.Background(), path); err != nil || got != want || n != int64(c.Size) {
				t.Errorf("%s: File = %s, %d, %v; want %s, %d", c.Name, got, n, err, want, c.Size)
			}
		}
		checkTree(t, c.Name, data, v.TreePrefix, c.Leaves, want)
	}
	for _, n := range []int{0, content.BlockSize, content.BlockSize + 1} {
		if !sizes[n] {
			t.Errorf("no vector of %d bytes", n)
		}
	}
}

// checkTree checks a vector's name against the formula, without package
// content: SHA-256 up to a block; above, SHA-512/256 of the prefix and
// the leaves, each leaf the SHA-256 of one block.
func checkTree(t *testing.T, name string, data, prefix []byte, leaves []vectors.Hex, want content.Hash) {
	t.Helper()
	if len(data) <= content.BlockSize {
		if len(leaves) != 0 || sha256.Sum256(data) != want {
			t.Errorf("%s: not the SHA-256 of its bytes, or lists leaves", name)
		}
		return
	}
	in := bytes.Clone(prefix)
	for i := 0; i*content.BlockSize < len(data); i++ {
		leaf := sha256.Sum256(data[i*content.BlockSize : min((i+1)*content.BlockSize, len(data))])
		if i >= len(leaves) || !bytes.Equal(leaf[:], leaves[i]) {
			t.Errorf("%s: leaf %d is %x, not as listed", name, i, leaf)
		}
		in = append(in, leaf[:]...)
	}
	if len(leaves)*content.BlockSize < len(data) || (len(leaves)-1)*content.BlockSize >= len(data) {
		t.Errorf("%s: %d leaves listed for %d bytes", name, len(leaves), len(data))
	}
	if sha512.Sum512_256(in) != want {
		t.Errorf("%s: not SHA-512/256 of the prefix and its leaves", name)
	}
}
