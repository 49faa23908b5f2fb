package state

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/drive-node/drive-node/certs"
)

// SetMeta stores value under key in a small key/value table for daemon
// status (such as "paused" or "last_change"), replacing any earlier value.
func (db *DB) SetMeta(ctx context.Context, key, value string) error {
	return db.SetMetas(ctx, map[string]string{key: value})
}

// SetMetas stores every key of kv in one transaction: a reader sees all
// of them or none (status tells one run of the daemon from an earlier one
// by several keys together).
func (db *DB) SetMetas(ctx context.Context, kv map[string]string) error {
	return db.setMetas(ctx, false, kv)
}

// SetMetaSynced is SetMeta for a value the op log cannot rebuild: it is on
// disk when SetMetaSynced returns.
func (db *DB) SetMetaSynced(ctx context.Context, key, value string) error {
	return db.setMetas(ctx, true, map[string]string{key: value})
}

func (db *DB) setMetas(ctx context.Context, synced bool, kv map[string]string) error {
	err := db.writeTx(ctx, synced, everyRecord, func(tx *sql.Tx) error {
		for k, v := range kv {
			if _, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)`, k, v); err != nil {
				return fmt.Errorf("set %q: %w", k, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("state: %s: set meta: %w", db.path, err)
	}
	return nil
}

// Meta returns the value stored under key; ok is false if there is none.
func (db *DB) Meta(ctx context.Context, key string) (value string, ok bool, err error) {
	err = db.sql.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = ?`, key).Scan(&value)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return "", false, nil
	case err != nil:
		return "", false, fmt.Errorf("state: %s: read meta %q: %w", db.path, key, err)
	}
	return value, true, nil
}

// Stats summarises the file records.
type Stats struct {
	// Files counts live (not deleted) regular files.
	Files int
	// Dirs counts live directories.
	Dirs int
	// Tombstones counts deleted records still kept.
	Tombstones int
	// Bytes is the total size of the live files.
	Bytes int64
	// Ops is the sum of the applied vector: how many ops the records
	// reflect.
	Ops uint64
	// LastChange is when a record was last stored by Apply, in unix ns; 0
	// if there are no records.
	LastChange int64
	// Changes counts the writes of records since schema 11, by any
	// process: equal counts mean the records are as they were.
	Changes uint64
}

// Stats returns a summary of the records, read from one snapshot.
func (db *DB) Stats(ctx context.Context) (Stats, error) {
	var s Stats
	err := db.read(ctx, func(tx *sql.Tx) error {
		// Kept by triggers (schema 11): a count of the files table would
		// read every record.
		err := tx.QueryRowContext(ctx, `SELECT files, dirs, tombstones, bytes, last_change, changes FROM file_totals`).
			Scan(&s.Files, &s.Dirs, &s.Tombstones, &s.Bytes, &s.LastChange, &s.Changes)
		if err != nil {
			return err
		}
		applied, err := seqMap(ctx, tx, `SELECT origin, seq FROM applied`)
		if err != nil {
			return err
		}
		for _, seq := range applied {
			s.Ops += seq
		}
		return nil
	})
	if err != nil {
		return Stats{}, fmt.Errorf("state: %s: stats: %w", db.path, err)
	}
	return s, nil
}

// Conflict records a conflict copy: a file the daemon wrote beside
// OriginalPath to keep the losing side of concurrent changes.
type Conflict struct {
	// CopyPath is the conflict copy's path, the record's key.
	CopyPath string
	// OriginalPath is the path both sides changed.
	OriginalPath string
	// Winner is the origin whose version stayed at OriginalPath.
	Winner certs.DeviceID
	// Loser is the origin whose version went to CopyPath.
	Loser certs.DeviceID
	// CreatedAt is when the copy was made, in unix ns.
	CreatedAt int64
}

// RecordConflict stores c, replacing any record with the same CopyPath.
func (db *DB) RecordConflict(ctx context.Context, c Conflict) error {
	err := db.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO conflicts
			(copy_path, original_path, winner_origin, loser_origin, created_ns) VALUES (?, ?, ?, ?, ?)`,
			c.CopyPath, c.OriginalPath, c.Winner[:], c.Loser[:], c.CreatedAt)
		return err
	})
	if err != nil {
		return fmt.Errorf("state: %s: record conflict copy %q: %w", db.path, c.CopyPath, err)
	}
	return nil
}

// Conflicts returns the recorded conflict copies, oldest first (ties in
// byte order of CopyPath).
func (db *DB) Conflicts(ctx context.Context) ([]Conflict, error) {
	out, err := db.conflicts(ctx)
	if err != nil {
		return nil, fmt.Errorf("state: %s: list conflicts: %w", db.path, err)
	}
	return out, nil
}

func (db *DB) conflicts(ctx context.Context) ([]Conflict, error) {
	rows, err := db.sql.QueryContext(ctx, `SELECT copy_path, original_path, winner_origin, loser_origin, created_ns
		FROM conflicts ORDER BY created_ns, copy_path`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Conflict
	for rows.Next() {
		var (
			c             Conflict
			winner, loser []byte
		)
		if err := rows.Scan(&c.CopyPath, &c.OriginalPath, &winner, &loser, &c.CreatedAt); err != nil {
			return nil, err
		}
		if c.Winner, err = scanID(winner); err != nil {
			return nil, fmt.Errorf("conflict %q: winner: %w", c.CopyPath, err)
		}
		if c.Loser, err = scanID(loser); err != nil {
			return nil, fmt.Errorf("conflict %q: loser: %w", c.CopyPath, err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return out, rows.Close()
}
