// Package digest hashes a folder's recorded state into a Merkle tree over
// path components, so that two devices can tell in one message whether
// they hold the same state, and find where they differ in a few round
// trips. It is pure: values in, values out, no IO.
//
// What it guarantees:
//
//   - A leaf covers only what converges between devices: the path, its
//     kind (file or directory) and, for a file, its content name and its
//     permission bits as the engine syncs them (Mode). Modification
//     times, inode numbers and anything else a device keeps for itself
//     are not inputs at all, so they cannot change a root.
//   - A directory's hash covers its children's names, kinds and hashes,
//     in byte order of name; the root is the hash of the folder itself (a
//     directory with the path ""). Equal inputs give equal roots whatever
//     order the entries come in; a directory that holds entries is in the
//     tree whether or not it has a record of its own.
//   - Every hash is SHA-256 over a tagged, length-prefixed encoding
//     (docs/protocol.md, "State digests"), so no two different trees of
//     valid names encode alike.
package digest

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"slices"
	"strings"
)

// Hash is a node's hash in the tree: a SHA-256.
type Hash [32]byte

// String returns the hash in hex.
func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// Short returns the first 6 bytes in hex, as status prints a state.
func (h Hash) Short() string { return hex.EncodeToString(h[:6]) }

// IsZero reports whether h is all zero (no digest).
func (h Hash) IsZero() bool { return h == Hash{} }

// Kind is what a path holds. Its values are those the wire carries.
type Kind uint8

// Kinds. Symlink is reserved: symlinks are neither synced nor recorded,
// so no entry has it yet.
const (
	File    Kind = 1
	Dir     Kind = 2
	Symlink Kind = 3
)

// String names the kind for people.
func (k Kind) String() string {
	switch k {
	case File:
		return "file"
	case Dir:
		return "directory"
	case Symlink:
		return "symlink"
	}
	return "absent"
}

// Entry is one live record as the digest reads it.
type Entry struct {
	// Path is slash-separated and relative to the folder, never "".
	Path string
	Kind Kind
	// Content names a file's content; ignored for a directory.
	Content [32]byte
	// Mode is the record's permission bits; see SyncedMode.
	Mode uint32
}

// Child is one entry of a directory: its name, kind and hash.
type Child struct {
	Name string
	Kind Kind
	Hash Hash
}

// Tags that start every hashed encoding, so a file's hash is never a
// directory's.
const (
	fileTag = "drive-node state file v1\x00"
	dirTag  = "drive-node state dir v1\x00"
)

// SyncedMode is the part of a file's mode every device records alike
// once converged: the permission bits without the group and other write
// bits (a received file never gets them), 0644 for a record with none.
// A directory's mode is not in the digest: a directory made to hold a
// received file takes the device's umask.
func SyncedMode(m uint32) uint32 {
	m &= 0o777 &^ 0o022
	if m == 0 {
		return 0o644
	}
	return m
}

// FileHash is the leaf hash of a file with content c and mode m:
// SHA-256(fileTag ‖ c ‖ SyncedMode(m) as 2 bytes big-endian).
func FileHash(c [32]byte, m uint32) Hash {
	var b [len(fileTag) + 32 + 2]byte
	copy(b[:], fileTag)
	copy(b[len(fileTag):], c[:])
	binary.BigEndian.PutUint16(b[len(fileTag)+32:], uint16(SyncedMode(m)))
	return sha256.Sum256(b[:])
}

// DirHash is the hash of a directory with children (in byte order of
// name): SHA-256(dirTag ‖ for each child: uvarint(len name) ‖ name ‖ kind
// ‖ hash).
func DirHash(children []Child) Hash {
	h := sha256.New()
	h.Write([]byte(dirTag))
	var b []byte
	for _, c := range children {
		b = binary.AppendUvarint(b[:0], uint64(len(c.Name)))
		b = append(b, c.Name...)
		b = append(b, byte(c.Kind))
		b = append(b, c.Hash[:]...)
		h.Write(b)
	}
	var out Hash
	h.Sum(out[:0])
	return out
}

// Compare orders paths as the tree walks them: component by component,
// each in byte order, a directory right before what it holds ("a",
// "a/x", "a.txt"). It is byte order with '/' taken as the lowest byte.
func Compare(a, b string) int {
	n := min(len(a), len(b))
	for i := 0; i < n; i++ {
		x, y := a[i], b[i]
		if x == y {
			continue
		}
		if x == '/' {
			return -1
		}
		if y == '/' {
			return 1
		}
		return cmp.Compare(x, y)
	}
	return cmp.Compare(len(a), len(b))
}

// Sort puts entries in the order Children and Root take.
func Sort(entries []Entry) {
	slices.SortFunc(entries, func(a, b Entry) int { return Compare(a.Path, b.Path) })
}

// frame is a directory being summed: its path and the children found so
// far, which arrive in name order.
type frame struct {
	path     string
	children []Child
}

// Children returns the children of the directory dir ("" for the root)
// and dir's hash, from entries: every live record strictly under dir, in
// the order Sort gives (a record outside dir is skipped). A directory
// with no record of its own that holds entries is a child of kind Dir.
func Children(entries []Entry, dir string) ([]Child, Hash) {
	prefix := ""
	if dir != "" {
		prefix = dir + "/"
	}
	stack := []frame{{path: dir}}
	// pop closes the innermost directory and makes it its parent's
	// child.
	pop := func() {
		top := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		parent := &stack[len(stack)-1]
		parent.children = append(parent.children, Child{Name: base(top.path), Kind: Dir, Hash: DirHash(top.children)})
	}
	for _, e := range entries {
		if !strings.HasPrefix(e.Path, prefix) || len(e.Path) == len(prefix) {
			continue
		}
		// Close the directories e is not in.
		for len(stack) > 1 && !within(e.Path, stack[len(stack)-1].path) {
			pop()
		}
		// Open the directories between the innermost open one and e.
		parent := stack[len(stack)-1].path
		rest := e.Path[len(parent):]
		if parent != "" {
			rest = rest[1:]
		}
		for {
			i := strings.IndexByte(rest, '/')
			if i < 0 {
				break
			}
			p := e.Path[:len(e.Path)-len(rest)+i]
			stack = append(stack, frame{path: p})
			rest = rest[i+1:]
		}
		if e.Kind == Dir {
			stack = append(stack, frame{path: e.Path})
			continue
		}
		top := &stack[len(stack)-1]
		top.children = append(top.children, Child{Name: rest, Kind: e.Kind, Hash: FileHash(e.Content, e.Mode)})
	}
	for len(stack) > 1 {
		pop()
	}
	return stack[0].children, DirHash(stack[0].children)
}

// Root is the hash of the whole tree: Children(entries, "")'s hash.
func Root(entries []Entry) Hash {
	_, h := Children(entries, "")
	return h
}

// within reports whether p is strictly under dir ("" holds everything).
func within(p, dir string) bool {
	return dir == "" || len(p) > len(dir) && p[len(dir)] == '/' && strings.HasPrefix(p, dir)
}

func base(p string) string { return p[strings.LastIndexByte(p, '/')+1:] }

// Difference is a name whose entry differs between two listings of one
// directory; a Kind of 0 means that side has no such entry.
type Difference struct {
	Name         string
	Ours, Theirs Kind
	// Descend is true when both sides hold a directory there: the
	// difference is somewhere inside it.
	Descend bool
}

// Diff compares two listings of one directory, each in byte order of
// name as Children returns them, and returns the names that differ, in
// that order.
func Diff(ours, theirs []Child) []Difference {
	var out []Difference
	i, j := 0, 0
	for i < len(ours) || j < len(theirs) {
		var c int
		switch {
		case i == len(ours):
			c = 1
		case j == len(theirs):
			c = -1
		default:
			c = strings.Compare(ours[i].Name, theirs[j].Name)
		}
		switch {
		case c < 0:
			out = append(out, Difference{Name: ours[i].Name, Ours: ours[i].Kind})
			i++
		case c > 0:
			out = append(out, Difference{Name: theirs[j].Name, Theirs: theirs[j].Kind})
			j++
		default:
			o, t := ours[i], theirs[j]
			if o.Kind != t.Kind || !bytes.Equal(o.Hash[:], t.Hash[:]) {
				out = append(out, Difference{Name: o.Name, Ours: o.Kind, Theirs: t.Kind, Descend: o.Kind == Dir && t.Kind == Dir})
			}
			i++
			j++
		}
	}
	return out
}
