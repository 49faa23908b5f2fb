package state

import (
	"context"
	"database/sql"
	"fmt"
)

// LocalChange is a change made on a receive-only device that the device
// keeps to itself: the file differs from its record, which stays the
// mesh's version, and no op announces it.
type LocalChange struct {
	Path string
	// Kind is the change, as an op would name it ("write", "delete",
	// "rename", "mkdir", "rmdir").
	Kind string
	// At is when it was noted, in unix nanoseconds.
	At int64
}

// noteLocalChanges removes the local changes at undone, then stores
// changes stamped now, in tx.
func noteLocalChanges(ctx context.Context, tx *sql.Tx, undone []string, changes []LocalChange, now int64) error {
	for _, p := range undone {
		if _, err := tx.ExecContext(ctx, `DELETE FROM local_changes WHERE path = ?`, p); err != nil {
			return fmt.Errorf("forget the local change at %q: %w", p, err)
		}
	}
	for _, c := range changes {
		if _, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO local_changes (path, kind, at_ns) VALUES (?, ?, ?)`,
			c.Path, c.Kind, now); err != nil {
			return fmt.Errorf("note the local change at %q: %w", c.Path, err)
		}
	}
	return nil
}

// LocalChanges calls fn for each noted local change, in path order. fn
// must not use db.
func (db *DB) LocalChanges(ctx context.Context, fn func(LocalChange) error) error {
	err := db.read(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT path, kind, at_ns FROM local_changes ORDER BY path`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var c LocalChange
			if err := rows.Scan(&c.Path, &c.Kind, &c.At); err != nil {
				return err
			}
			if err := fn(c); err != nil {
				return err
			}
		}
		return rows.Err()
	})
	if err != nil {
		return fmt.Errorf("state: %s: list local changes: %w", db.path, err)
	}
	return nil
}

// ForgetLocalChanges drops every noted local change (a device that is no
// longer receive-only records its changes as ops instead).
func (db *DB) ForgetLocalChanges(ctx context.Context) error {
	if err := db.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM local_changes`)
		return err
	}); err != nil {
		return fmt.Errorf("state: %s: forget local changes: %w", db.path, err)
	}
	return nil
}
