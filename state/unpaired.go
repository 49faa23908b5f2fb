package state

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/drive-node/drive-node/certs"
)

// MaxUnpairedSeen bounds the devices NoteUnpaired keeps: the newest.
const MaxUnpairedSeen = 100

// UnpairedDevice is a device that tried to connect without being paired.
type UnpairedDevice struct {
	ID certs.DeviceID
	// Address is where it last came from (host:port), "" if unknown.
	Address string
	// At is when it last tried, in unix ns.
	At int64
}

// NoteUnpaired records that the device id, not paired, tried to connect
// from addr at at (unix ns). Only the MaxUnpairedSeen most recent devices
// are kept, so a flood of new keys cannot grow the database; a device
// paired since is not recorded.
func (db *DB) NoteUnpaired(ctx context.Context, id certs.DeviceID, addr string, at int64) error {
	err := db.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO unpaired_seen (id, address, at_ns)
			SELECT ?, ?, ? WHERE NOT EXISTS (SELECT 1 FROM peers WHERE id = ?)
			ON CONFLICT (id) DO UPDATE SET address = excluded.address, at_ns = excluded.at_ns`,
			id[:], addr, at, id[:]); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM unpaired_seen WHERE id NOT IN
			(SELECT id FROM unpaired_seen ORDER BY at_ns DESC, id LIMIT ?)`, MaxUnpairedSeen)
		return err
	})
	if err != nil {
		return fmt.Errorf("state: %s: note unpaired device %s: %w", db.path, id, err)
	}
	return nil
}

// UnpairedSeen returns the devices that tried to connect without being
// paired, the most recent first. A database older than schema 8 has none.
func (db *DB) UnpairedSeen(ctx context.Context) ([]UnpairedDevice, error) {
	if v, err := db.SchemaVersion(ctx); err == nil && v < 8 {
		return nil, nil
	}
	rows, err := db.sql.QueryContext(ctx, `SELECT id, address, at_ns FROM unpaired_seen
		WHERE id NOT IN (SELECT id FROM peers) ORDER BY at_ns DESC, id`)
	if err != nil {
		return nil, fmt.Errorf("state: %s: list unpaired devices: %w", db.path, err)
	}
	defer rows.Close()
	var out []UnpairedDevice
	for rows.Next() {
		var (
			d  UnpairedDevice
			id []byte
		)
		if err := rows.Scan(&id, &d.Address, &d.At); err != nil {
			return nil, fmt.Errorf("state: %s: list unpaired devices: %w", db.path, err)
		}
		if d.ID, err = scanID(id); err != nil {
			return nil, fmt.Errorf("state: %s: list unpaired devices: %w", db.path, err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("state: %s: list unpaired devices: %w", db.path, err)
	}
	return out, nil
}
