// Package vectors reads the known-answer vectors kept in the testdata
// directories beside the packages whose encodings they pin (wire, oplog,
// certs, content), for those packages' tests. docs/protocol.md describes
// the encodings; the vectors are the same description in bytes.
//
// Every vector file records the protocol version it was written for, and
// Load fails a test when that is not wire.ProtocolVersion: a change to
// any encoding fails the vector tests until the vectors and the protocol
// version change together.
package vectors

import (
	"encoding/hex"
	"encoding/json"
	"os"
	"strconv"
	"testing"

	"github.com/drive-node/drive-node/certs"
	"github.com/drive-node/drive-node/content"
	"github.com/drive-node/drive-node/oplog"
	"github.com/drive-node/drive-node/vclock"
)

// Load reads the JSON vector file at path into v, after checking that
// the file's "protocol_version" is version (the caller passes
// wire.ProtocolVersion).
func Load(t testing.TB, path string, version int, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var head struct {
		ProtocolVersion int `json:"protocol_version"`
	}
	if err := json.Unmarshal(b, &head); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if head.ProtocolVersion != version {
		t.Fatalf("%s records protocol version %d, but wire.ProtocolVersion is %d: "+
			"the vectors and the protocol version change together", path, head.ProtocolVersion, version)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// Hex is bytes written in a vector file as lower-case hex.
type Hex []byte

// MarshalText implements encoding.TextMarshaler.
func (h Hex) MarshalText() ([]byte, error) { return []byte(hex.EncodeToString(h)), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (h *Hex) UnmarshalText(b []byte) error {
	out, err := hex.DecodeString(string(b))
	*h = out
	return err
}

// Device returns h as a device ID; it must be 32 bytes.
func (h Hex) Device(t testing.TB) certs.DeviceID {
	t.Helper()
	var d certs.DeviceID
	fixed(t, d[:], h)
	return d
}

// Hash returns h as a content hash; it must be 32 bytes.
func (h Hex) Hash(t testing.TB) content.Hash {
	t.Helper()
	var c content.Hash
	fixed(t, c[:], h)
	return c
}

func fixed(t testing.TB, dst []byte, h Hex) {
	t.Helper()
	if len(h) != len(dst) {
		t.Fatalf("vector %x: %d bytes, want %d", []byte(h), len(h), len(dst))
	}
	copy(dst, h)
}

// Entry is one device's counter in a version vector.
type Entry struct {
	Device Hex    `json:"device"`
	Seq    uint64 `json:"seq"`
}

// Op is an op as a vector file writes it: its fields by name, the kind
// by its name ("write", …) and the mode in octal.
type Op struct {
	Origin  Hex     `json:"origin"`
	Seq     uint64  `json:"seq"`
	Lamport uint64  `json:"lamport"`
	Kind    string  `json:"kind"`
	Path    string  `json:"path"`
	NewPath string  `json:"new_path"`
	Hash    Hex     `json:"hash"`
	Size    int64   `json:"size"`
	Mode    string  `json:"mode"`
	MTime   int64   `json:"mtime"`
	Parent  []Entry `json:"parent"`
	// Prev and Sig are absent from a legacy op (encoding 1).
	Prev   Hex  `json:"prev,omitempty"`
	Sig    Hex  `json:"sig,omitempty"`
	Legacy bool `json:"legacy,omitempty"`
}

// kinds are the op kinds by name, for Op.
var kinds = map[string]oplog.Kind{}

func init() {
	for k := oplog.KindWrite; k <= oplog.KindRmdir; k++ {
		kinds[k.String()] = k
	}
}

// ToOp returns the op o describes.
func (o Op) ToOp(t testing.TB) oplog.Op {
	t.Helper()
	kind, ok := kinds[o.Kind]
	if !ok {
		t.Fatalf("vector op kind %q", o.Kind)
	}
	mode, err := strconv.ParseUint(o.Mode, 8, 32)
	if err != nil {
		t.Fatalf("vector op mode %q: %v", o.Mode, err)
	}
	op := oplog.Op{
		Origin: o.Origin.Device(t), Seq: o.Seq, Lamport: o.Lamport, Kind: kind,
		Path: o.Path, NewPath: o.NewPath, Hash: o.Hash.Hash(t),
		Size: o.Size, Mode: uint32(mode), MTime: o.MTime, Legacy: o.Legacy,
	}
	if len(o.Prev) > 0 {
		fixed(t, op.Prev[:], o.Prev)
	}
	if len(o.Sig) > 0 {
		op.Sig = append([]byte(nil), o.Sig...)
	}
	for _, e := range o.Parent {
		op.Parent = append(op.Parent, vclock.Entry{Device: e.Device.Device(t), Counter: e.Seq})
	}
	return op
}
