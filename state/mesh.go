package state

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/drive-node/drive-node/certs"
)

// PairedBy is how a device was paired.
type PairedBy uint8

// How a device was paired. A device paired by code or by introduction is
// a mesh member: it vouches for this device's other mesh members and is
// vouched for to them; a device paired by hand is not.
const (
	// PairedByHand: `drive-node pair ID`, or before the schema recorded
	// how (version 10).
	PairedByHand PairedBy = 0
	// PairedByCode: `drive-node invite` and `drive-node join`.
	PairedByCode PairedBy = 1
	// PairedByIntroduction: a mesh member's introduction.
	PairedByIntroduction PairedBy = 2
)

// Mesh reports whether a device paired this way is a mesh member.
func (b PairedBy) Mesh() bool { return b == PairedByCode || b == PairedByIntroduction }

// String names b as `drive-node peers` shows it.
func (b PairedBy) String() string {
	switch b {
	case PairedByHand:
		return "hand"
	case PairedByCode:
		return "code"
	case PairedByIntroduction:
		return "introduction"
	}
	return fmt.Sprintf("paired-by(%d)", uint8(b))
}

// Bounds on what mesh members can make this database hold.
const (
	// MaxIntroducedBy bounds the devices paired on one member's
	// introductions: past it, its introductions pair no more.
	MaxIntroducedBy = 1024
	// MaxRevoked bounds the revocations kept that other devices made;
	// past it the oldest are forgotten. This device's own are all kept.
	MaxRevoked = 4096
)

// ErrNotMeshMember is wrapped by the errors of PairIntroduced and
// RevokeIntroduced when the device speaking is not a mesh member here.
var ErrNotMeshMember = errors.New("device is not a mesh member")

// Introduced is a device named in an introduction.
type Introduced struct {
	ID   certs.DeviceID
	Name string
}

// PairIntroduced pairs, as PairedByIntroduction, each device of devices
// that is neither paired nor revoked here, on the word of the mesh member
// by (a device by itself revoked counts as not revoked: its later
// introduction withdraws its revocation), and keeps by's signed statement (stmt, sig) that paired them. It
// returns the devices it paired, on disk when it returns. It fails
// wrapping ErrNotMeshMember if by is not a mesh member; it pairs at most
// MaxIntroducedBy devices on by's word in all, the rest are left out.
func (db *DB) PairIntroduced(ctx context.Context, by certs.DeviceID, devices []Introduced, stmt, sig []byte) ([]certs.DeviceID, error) {
	if stmt == nil {
		stmt = []byte{}
	}
	if sig == nil {
		sig = []byte{}
	}
	var added []certs.DeviceID
	err := db.writeSynced(ctx, func(tx *sql.Tx) error {
		added = nil
		if err := requireMember(ctx, tx, by); err != nil {
			return err
		}
		var count int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM peers JOIN introductions ON introductions.id = peers.introduction
			WHERE introductions.introducer = ?`, by[:]).Scan(&count); err != nil {
			return err
		}
		var intro int64
		now := time.Now().UnixNano()
		for _, d := range devices {
			if count >= MaxIntroducedBy {
				break
			}
			var one int
			err := tx.QueryRowContext(ctx, `SELECT 1 FROM peers WHERE id = ? UNION ALL SELECT 1 FROM revoked WHERE id = ? AND by <> ?`,
				d.ID[:], d.ID[:], by[:]).Scan(&one)
			if err == nil {
				continue
			}
			if !errors.Is(err, sql.ErrNoRows) {
				return err
			}
			if intro == 0 {
				res, err := tx.ExecContext(ctx, `INSERT INTO introductions (introducer, statement, sig, at_ns) VALUES (?, ?, ?, ?)`,
					by[:], stmt, sig, now)
				if err != nil {
					return err
				}
				if intro, err = res.LastInsertId(); err != nil {
					return err
				}
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO peers (id, name, paired_ns, paired_by, introduction) VALUES (?, ?, ?, ?, ?)`,
				d.ID[:], d.Name, now, PairedByIntroduction, intro); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `DELETE FROM revoked WHERE id = ?`, d.ID[:]); err != nil {
				return err
			}
			added = append(added, d.ID)
			count++
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("state: %s: introduction from %s: %w", db.path, by, err)
	}
	return added, nil
}

// Introduction returns the signed statement whose introduction paired
// id, and the device that made it; ok is false unless id is paired by
// introduction.
func (db *DB) Introduction(ctx context.Context, id certs.DeviceID) (by certs.DeviceID, stmt, sig []byte, ok bool, err error) {
	var b []byte
	err = db.sql.QueryRowContext(ctx, `SELECT introductions.introducer, introductions.statement, introductions.sig
		FROM peers JOIN introductions ON introductions.id = peers.introduction WHERE peers.id = ?`, id[:]).Scan(&b, &stmt, &sig)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return by, nil, nil, false, nil
	case err != nil:
		return by, nil, nil, false, fmt.Errorf("state: %s: introduction of %s: %w", db.path, id, err)
	}
	if by, err = scanID(b); err != nil {
		return by, nil, nil, false, fmt.Errorf("state: %s: introduction of %s: %w", db.path, id, err)
	}
	return by, stmt, sig, true, nil
}

// RevokeIntroduced carries out the mesh member by's signed revocation
// (stmt, sig) of id: if id was paired by introduction it is unpaired
// (unpaired is true), and unless it is paired otherwise it is recorded as
// revoked, so no later introduction pairs it. A device paired here by
// hand or by code stays paired. On disk when it returns; fails wrapping
// ErrNotMeshMember if by is not a mesh member.
func (db *DB) RevokeIntroduced(ctx context.Context, by, id certs.DeviceID, stmt, sig []byte) (unpaired bool, err error) {
	err = db.writeSynced(ctx, func(tx *sql.Tx) error {
		unpaired = false
		if err := requireMember(ctx, tx, by); err != nil {
			return err
		}
		var how PairedBy
		err := tx.QueryRowContext(ctx, `SELECT paired_by FROM peers WHERE id = ?`, id[:]).Scan(&how)
		switch {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return err
		case how != PairedByIntroduction:
			return nil
		default:
			if _, err := tx.ExecContext(ctx, `DELETE FROM peers WHERE id = ?`, id[:]); err != nil {
				return err
			}
			unpaired = true
		}
		if err := revoke(ctx, tx, id, by, stmt, sig); err != nil {
			return err
		}
		return dropUnusedIntroductions(ctx, tx)
	})
	if err != nil {
		return false, fmt.Errorf("state: %s: revocation of %s by %s: %w", db.path, id, by, err)
	}
	return unpaired, nil
}

// IsRevoked reports whether id is recorded as revoked: unpaired here, or
// revoked by a mesh member, and not paired explicitly since.
func (db *DB) IsRevoked(ctx context.Context, id certs.DeviceID) (bool, error) {
	ok, err := db.holds(ctx, `SELECT 1 FROM revoked WHERE id = ?`, id)
	if err != nil {
		return false, fmt.Errorf("state: %s: look up revocation of %s: %w", db.path, id, err)
	}
	return ok, nil
}

// Revocations returns the devices this device unpaired (and has not
// paired again), the most recent first, at most limit.
func (db *DB) Revocations(ctx context.Context, limit int) ([]certs.DeviceID, error) {
	rows, err := db.sql.QueryContext(ctx, `SELECT id FROM revoked WHERE by = x'' ORDER BY at_ns DESC, id LIMIT ?`, limit)
	if err != nil {
		return nil, fmt.Errorf("state: %s: list revocations: %w", db.path, err)
	}
	defer rows.Close()
	var out []certs.DeviceID
	for rows.Next() {
		var b []byte
		if err := rows.Scan(&b); err != nil {
			return nil, fmt.Errorf("state: %s: list revocations: %w", db.path, err)
		}
		id, err := scanID(b)
		if err != nil {
			return nil, fmt.Errorf("state: %s: list revocations: %w", db.path, err)
		}
		out = append(out, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("state: %s: list revocations: %w", db.path, err)
	}
	return out, nil
}

// requireMember fails wrapping ErrNotMeshMember unless id is paired as a
// mesh member.
func requireMember(ctx context.Context, tx *sql.Tx, id certs.DeviceID) error {
	var how PairedBy
	err := tx.QueryRowContext(ctx, `SELECT paired_by FROM peers WHERE id = ?`, id[:]).Scan(&how)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("%s: %w: %w", id.Short(), ErrNotMeshMember, ErrNotPaired)
	case err != nil:
		return err
	case !how.Mesh():
		return fmt.Errorf("%s is paired by %s: %w", id.Short(), how, ErrNotMeshMember)
	}
	return nil
}

// revoke records id as revoked by by (zero: this device), keeping the
// MaxRevoked newest of other devices' revocations. This device's own
// revocation is not replaced by another's.
func revoke(ctx context.Context, tx *sql.Tx, id, by certs.DeviceID, stmt, sig []byte) error {
	byCol := by[:]
	if by.IsZero() {
		byCol = []byte{}
	}
	if stmt == nil {
		stmt = []byte{}
	}
	if sig == nil {
		sig = []byte{}
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO revoked (id, by, statement, sig, at_ns) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET by = excluded.by, statement = excluded.statement, sig = excluded.sig, at_ns = excluded.at_ns
		WHERE revoked.by <> x'' OR excluded.by = x''`,
		id[:], byCol, stmt, sig, time.Now().UnixNano()); err != nil {
		return err
	}
	_, err := tx.ExecContext(ctx, `DELETE FROM revoked WHERE by <> x'' AND id NOT IN
		(SELECT id FROM revoked WHERE by <> x'' ORDER BY at_ns DESC, id LIMIT ?)`, MaxRevoked)
	return err
}

// dropUnusedIntroductions deletes the introductions that no longer pair
// any device.
func dropUnusedIntroductions(ctx context.Context, tx *sql.Tx) error {
	_, err := tx.ExecContext(ctx, `DELETE FROM introductions WHERE id NOT IN
		(SELECT introduction FROM peers WHERE introduction IS NOT NULL)`)
	return err
}
