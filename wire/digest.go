package wire

import (
	"encoding/binary"
	"fmt"
	"strings"

	"github.com/drive-node/drive-node/certs"
	"github.com/drive-node/drive-node/internal/fields"
)

// Bounds of the state digest messages, checked by encoders and decoders
// alike.
const (
	// MaxDigestPath bounds the directory a DigestRequest names.
	MaxDigestPath = 4096
	// MaxDigestName bounds one name in a DigestResponse, and a request's
	// After.
	MaxDigestName = 1024
	// MaxDigestChildren bounds the entries of one DigestResponse: a
	// larger directory is listed in pages (More, After). With names at
	// MaxDigestName a response stays near 1 MiB, well within MaxFrame.
	MaxDigestChildren = 1024
)

// Kinds of a DigestEntry (the digest's leaf kinds).
const (
	DigestFile    uint8 = 1
	DigestDir     uint8 = 2
	DigestSymlink uint8 = 3
)

// StateDigest tells the peer the root of the sender's state digest: the
// hash of the Merkle tree over the sender's recorded state, Files the
// live records it covers, and Applied the ops those records reflect (per
// origin, the highest sequence applied). Sent on the control stream
// after the sender's state settles, and once at the start of a session.
type StateDigest struct {
	Root    [32]byte
	Files   uint64
	Applied map[certs.DeviceID]uint64
}

// Type implements Message.
func (*StateDigest) Type() Type { return TypeStateDigest }

// AppendBody implements Message.
func (m *StateDigest) AppendBody(b []byte) ([]byte, error) {
	b = append(b, m.Root[:]...)
	b = binary.AppendUvarint(b, m.Files)
	return appendVector(b, m.Applied, "state digest's applied")
}

func (m *StateDigest) decode(d *fields.Decoder) {
	d.Fixed(m.Root[:], "root")
	m.Files = d.Uvarint("files")
	m.Applied = readVector(d, "applied")
}

// DigestRequest asks the peer for the children of the directory Dir
// ("" for the folder's root) in its state digest: the entries whose names
// sort after After (bytewise; "" for the first page). ID is the
// requester's, echoed in the response.
type DigestRequest struct {
	ID    uint64
	Dir   string
	After string
}

// Type implements Message.
func (*DigestRequest) Type() Type { return TypeDigestRequest }

// AppendBody implements Message.
func (m *DigestRequest) AppendBody(b []byte) ([]byte, error) {
	if len(m.Dir) > MaxDigestPath || len(m.After) > MaxDigestName {
		return b, fmt.Errorf("wire: digest request for a path of %d bytes after a name of %d (limits %d, %d)", len(m.Dir), len(m.After), MaxDigestPath, MaxDigestName)
	}
	b = binary.AppendUvarint(b, m.ID)
	b = appendBytes(b, []byte(m.Dir))
	return appendBytes(b, []byte(m.After)), nil
}

func (m *DigestRequest) decode(d *fields.Decoder) {
	m.ID = d.Uvarint("id")
	m.Dir = d.String("directory", MaxDigestPath)
	m.After = d.String("after", MaxDigestName)
}

// DigestStatus says whether a DigestResponse lists a directory.
type DigestStatus uint8

// Digest response statuses.
const (
	// DigestListed: Entries are the directory's children (a page of them
	// when More).
	DigestListed DigestStatus = 0
	// DigestNoDir: the responder holds no directory at that path.
	DigestNoDir DigestStatus = 1
	// DigestBusy: the responder has too many requests in hand; ask again
	// later.
	DigestBusy DigestStatus = 2
)

// DigestEntry is one child in a DigestResponse: its name (one path
// component), kind (DigestFile, DigestDir, DigestSymlink) and hash.
type DigestEntry struct {
	Name string
	Kind uint8
	Hash [32]byte
}

// DigestResponse answers the DigestRequest with the same ID. When Status
// is DigestListed, Entries are the directory's children after the
// request's After, in increasing byte order of name, at most
// MaxDigestChildren; More says that more follow (ask again with After
// the last name). Otherwise Entries is empty and More false.
type DigestResponse struct {
	ID      uint64
	Status  DigestStatus
	More    bool
	Entries []DigestEntry
}

// minDigestEntry is the fewest bytes an entry takes: a name of one byte
// with its length, the kind and the hash.
const minDigestEntry = 1 + 1 + 1 + 32

// Type implements Message.
func (*DigestResponse) Type() Type { return TypeDigestResponse }

// AppendBody implements Message. It refuses what the decoder refuses.
func (m *DigestResponse) AppendBody(b []byte) ([]byte, error) {
	if err := m.check(); err != nil {
		return b, fmt.Errorf("wire: digest response: %w", err)
	}
	b = binary.AppendUvarint(b, m.ID)
	more := byte(0)
	if m.More {
		more = 1
	}
	b = append(b, byte(m.Status), more)
	b = binary.AppendUvarint(b, uint64(len(m.Entries)))
	for _, e := range m.Entries {
		b = appendBytes(b, []byte(e.Name))
		b = append(b, e.Kind)
		b = append(b, e.Hash[:]...)
	}
	return b, nil
}

// check returns what is wrong with m, or nil.
func (m *DigestResponse) check() error {
	switch {
	case m.Status > DigestBusy:
		return fmt.Errorf("status %d", m.Status)
	case m.Status != DigestListed && (len(m.Entries) > 0 || m.More):
		return fmt.Errorf("status %d with %d entries", m.Status, len(m.Entries))
	case len(m.Entries) > MaxDigestChildren:
		return fmt.Errorf("%d entries (limit %d)", len(m.Entries), MaxDigestChildren)
	}
	for i, e := range m.Entries {
		switch {
		case e.Name == "" || len(e.Name) > MaxDigestName || strings.ContainsRune(e.Name, '/'):
			return fmt.Errorf("entry %d: a name of %d bytes (1 to %d, no '/')", i, len(e.Name), MaxDigestName)
		case e.Name == "." || e.Name == "..":
			return fmt.Errorf("entry %d: the name %q", i, e.Name)
		case e.Kind < DigestFile || e.Kind > DigestSymlink:
			return fmt.Errorf("entry %d: kind %d", i, e.Kind)
		case i > 0 && m.Entries[i-1].Name >= e.Name:
			return fmt.Errorf("entry %d: names out of order", i)
		}
	}
	return nil
}

func (m *DigestResponse) decode(d *fields.Decoder) {
	m.ID = d.Uvarint("id")
	st := d.Byte("status")
	more := d.Byte("more")
	n := d.Uvarint("entry count")
	if d.Err() != nil {
		return
	}
	if more > 1 {
		d.Fail("more flag %d", more)
		return
	}
	if n > MaxDigestChildren || n > uint64(d.Left()/minDigestEntry) {
		d.Fail("%d entries do not fit in %d bytes (limit %d)", n, d.Left(), MaxDigestChildren)
		return
	}
	m.Status, m.More = DigestStatus(st), more == 1
	m.Entries = make([]DigestEntry, 0, n)
	for i := uint64(0); i < n && d.Err() == nil; i++ {
		var e DigestEntry
		e.Name = d.String("name", MaxDigestName)
		e.Kind = d.Byte("kind")
		d.Fixed(e.Hash[:], "hash")
		m.Entries = append(m.Entries, e)
	}
	if d.Err() != nil {
		return
	}
	if err := m.check(); err != nil {
		d.Fail("%v", err)
	}
	if len(m.Entries) == 0 {
		m.Entries = nil
	}
}
