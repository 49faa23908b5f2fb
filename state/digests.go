package state

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/drive-node/drive-node/certs"
	"github.com/drive-node/drive-node/content"
	"github.com/drive-node/drive-node/vclock"
)

// LiveEntry is what a state digest reads of a live record: nothing that
// differs between devices holding the same state is in it.
type LiveEntry struct {
	Path string
	Dir  bool
	Hash content.Hash
	Mode uint32
}

// LiveEntries calls fn for every live record strictly under dir ("" for
// all), in byte order of Path, reading only the columns a digest covers:
// for 100,000 records a fraction of what Files costs. It stops at the
// first error fn returns and returns it unchanged.
func (db *DB) LiveEntries(ctx context.Context, dir string, fn func(LiveEntry) error) error {
	q, args := `SELECT path, dir, hash, mode FROM files WHERE deleted = 0 ORDER BY path`, []any{}
	if dir != "" {
		// As in FilesUnder: the range (dir+"/", dir+"0") is what dir holds.
		q, args = `SELECT path, dir, hash, mode FROM files WHERE path > ? AND path < ? AND deleted = 0 ORDER BY path`, []any{dir + "/", dir + "0"}
	}
	err := db.read(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, q, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var (
				e    LiveEntry
				hash []byte
				mode int64
			)
			if err := rows.Scan(&e.Path, &e.Dir, &hash, &mode); err != nil {
				return err
			}
			if e.Hash, err = scanHash(hash); err != nil {
				return fmt.Errorf("record %q: %w", e.Path, err)
			}
			e.Mode = uint32(mode)
			if err := fn(e); err != nil {
				return errCallback{err}
			}
		}
		return rows.Err()
	})
	return db.listErr(err, fmt.Sprintf("list live records under %q", dir))
}

// FilesGeneration advances after every transaction of this process that
// changes file records or the applied vector (Apply, Reset): a state
// digest computed at one generation holds until the next. Other
// processes never write those.
func (db *DB) FilesGeneration() uint64 { return db.filesGen.Load() }

// PeerDigest is the last state digest a peer announced.
type PeerDigest struct {
	Peer certs.DeviceID
	// Root is the digest's root; Files the live records it covers.
	Root  [32]byte
	Files uint64
	// Applied is the peer's applied vector the digest reflects.
	Applied map[certs.DeviceID]uint64
	// At is when it arrived, in unix nanoseconds.
	At int64
}

// SetPeerDigest records what p announced, replacing what the peer
// announced before. The peer must be paired (ErrNotPaired otherwise).
func (db *DB) SetPeerDigest(ctx context.Context, p PeerDigest) error {
	err := db.write(ctx, func(tx *sql.Tx) error {
		var one int
		if err := tx.QueryRowContext(ctx, `SELECT 1 FROM peers WHERE id = ?`, p.Peer[:]).Scan(&one); err != nil {
			if err == sql.ErrNoRows {
				return ErrNotPaired
			}
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO peer_digests (peer, root, files, applied, at_ns) VALUES (?, ?, ?, ?, ?)`,
			p.Peer[:], p.Root[:], u64(p.Files), encodeSeqs(p.Applied), p.At)
		return err
	})
	if err != nil {
		return fmt.Errorf("state: %s: record the state digest of %s: %w", db.path, p.Peer, err)
	}
	return nil
}

// PeerDigests returns the last digest each paired peer announced; a peer
// that announced none is absent. The map is never nil.
func (db *DB) PeerDigests(ctx context.Context) (map[certs.DeviceID]PeerDigest, error) {
	out := map[certs.DeviceID]PeerDigest{}
	err := db.read(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT peer, root, files, applied, at_ns FROM peer_digests`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var (
				p             PeerDigest
				peer, root, a []byte
				files         int64
			)
			if err := rows.Scan(&peer, &root, &files, &a, &p.At); err != nil {
				return err
			}
			if p.Peer, err = scanID(peer); err != nil {
				return err
			}
			if len(root) != len(p.Root) {
				return fmt.Errorf("peer %s: a root of %d bytes", p.Peer, len(root))
			}
			copy(p.Root[:], root)
			p.Files = fromU64(files)
			if p.Applied, err = decodeSeqs(a); err != nil {
				return fmt.Errorf("peer %s: %w", p.Peer, err)
			}
			out[p.Peer] = p
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("state: %s: read peer digests: %w", db.path, err)
	}
	return out, nil
}

// encodeSeqs stores a per-origin sequence map as a vector (in device
// order, so equal maps store alike).
func encodeSeqs(m map[certs.DeviceID]uint64) []byte {
	var v vclock.Vector
	for d, seq := range m {
		if seq > 0 {
			v = v.With(d, seq)
		}
	}
	return encodeVector(v)
}

// decodeSeqs reverses encodeSeqs; the map is never nil.
func decodeSeqs(b []byte) (map[certs.DeviceID]uint64, error) {
	v, err := decodeVector(b)
	if err != nil {
		return nil, err
	}
	out := make(map[certs.DeviceID]uint64, len(v))
	for _, e := range v {
		out[e.Device] = e.Counter
	}
	return out, nil
}
