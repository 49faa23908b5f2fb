package state

import (
	"context"
	"database/sql"
	"fmt"
)

// SetAside is a received op that this device counts as handled without
// carrying it out, for a reason that may go away (a rule that ignores its
// path, a role that applies no peer's changes): the op stays in the log,
// and is carried out once the reason is gone. Status lists what is set
// aside.
type SetAside struct {
	Op      OpID
	Path    string
	NewPath string // a rename's target; empty otherwise
	// Why is the reason, in a word the node chooses ("ignored",
	// "send-only").
	Why string
	// At is when the op was set aside, in unix nanoseconds (the batch's
	// time of storing).
	At int64
}

// setAside stores ops in tx, stamped now.
func setAside(ctx context.Context, tx *sql.Tx, ops []SetAside, now int64) error {
	if len(ops) == 0 {
		return nil
	}
	stmt, err := tx.PrepareContext(ctx, `INSERT OR REPLACE INTO set_aside (origin, seq, path, new_path, why, at_ns)
		VALUES (?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return err
	}
	defer stmt.Close()
	for _, s := range ops {
		if _, err := stmt.ExecContext(ctx, s.Op.Origin[:], u64(s.Op.Seq), s.Path, s.NewPath, s.Why, now); err != nil {
			return fmt.Errorf("set aside %s#%d (%q): %w", s.Op.Origin.Short(), s.Op.Seq, s.Path, err)
		}
	}
	return nil
}

// resume removes ops from the set-aside ops in tx.
func resume(ctx context.Context, tx *sql.Tx, ops []OpID) error {
	for _, id := range ops {
		if _, err := tx.ExecContext(ctx, `DELETE FROM set_aside WHERE origin = ? AND seq = ?`, id.Origin[:], u64(id.Seq)); err != nil {
			return fmt.Errorf("resume %s#%d: %w", id.Origin.Short(), id.Seq, err)
		}
	}
	return nil
}

// SetAsideOps calls fn for each set-aside op, for why (every reason when
// why is empty), in order of origin and sequence. fn must not use db.
func (db *DB) SetAsideOps(ctx context.Context, why string, fn func(SetAside) error) error {
	q, args := `SELECT origin, seq, path, new_path, why, at_ns FROM set_aside`, []any{}
	if why != "" {
		q, args = q+` WHERE why = ?`, append(args, why)
	}
	err := db.read(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, q+` ORDER BY origin, seq`, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var (
				s      SetAside
				origin []byte
				seq    int64
			)
			if err := rows.Scan(&origin, &seq, &s.Path, &s.NewPath, &s.Why, &s.At); err != nil {
				return err
			}
			if s.Op.Origin, err = scanID(origin); err != nil {
				return err
			}
			s.Op.Seq = fromU64(seq)
			if err := fn(s); err != nil {
				return err
			}
		}
		return rows.Err()
	})
	if err != nil {
		return fmt.Errorf("state: %s: list set-aside ops: %w", db.path, err)
	}
	return nil
}

// SetAsideCounts returns how many ops are set aside, by reason.
func (db *DB) SetAsideCounts(ctx context.Context) (map[string]int, error) {
	out := map[string]int{}
	err := db.read(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT why, count(*) FROM set_aside GROUP BY why`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var why string
			var n int
			if err := rows.Scan(&why, &n); err != nil {
				return err
			}
			out[why] = n
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("state: %s: count set-aside ops: %w", db.path, err)
	}
	return out, nil
}

// SetAsideAt reports whether an op set aside names path (as its path or
// a rename's target).
func (db *DB) SetAsideAt(ctx context.Context, path string) (bool, error) {
	var found bool
	err := db.read(ctx, func(tx *sql.Tx) error {
		return tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM set_aside WHERE path = ?1)
			OR EXISTS (SELECT 1 FROM set_aside WHERE new_path = ?1 AND new_path != '')`, path).Scan(&found)
	})
	if err != nil {
		return false, fmt.Errorf("state: %s: look for set-aside ops at %q: %w", db.path, path, err)
	}
	return found, nil
}
