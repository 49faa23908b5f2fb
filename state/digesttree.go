package state

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
)

// The state digest's tree, kept between computations so that one changed
// record costs a new digest the directories above it, not a sum of every
// record (seconds at a million). Two tables hold it (schema 12):
//
//   - digest_dirs: each directory's hash as last summed, keyed by parent
//     and name; the folder itself is the row ("", "").
//   - digest_dirty: the directories whose records changed since, one row
//     each, written by triggers on the files table, so that no write of
//     records can miss it. A row's mark grows with every further change,
//     and a computation removes a row only at the mark it read
//     (SaveDigestTree), so a change made while it ran keeps its directory
//     marked.
//
// A write of a record that is or was live marks its directory (Apply
// replaces rows whole, so one that changed only an mtime does too); a
// tombstone written or purged marks nothing, nor does an update in place
// that changes nothing a digest covers. What is
// kept in digest_dirs is correct for every directory that neither is
// marked nor holds, at any depth, a marked one; the folder's row exists
// only after a computation that summed every directory, so a database
// that has none (a new one, one made before schema 12) is summed whole
// once.

// DirtyDir is a directory whose records changed since the digest's tree
// was last saved, and the mark of its last change.
type DirtyDir struct {
	Path string
	Mark int64
}

// DigestDir is a directory's hash in the digest's tree.
type DigestDir struct {
	Path string
	Hash [32]byte
}

// DigestTreeUpdate is what one computation saves of the tree.
type DigestTreeUpdate struct {
	// Reset drops every saved directory first: the computation summed
	// the whole folder.
	Reset bool
	// Set are the directories summed; Drop those that are gone (or
	// empty, whose hash needs no row).
	Set  []DigestDir
	Drop []string
	// Done are the marks the computation started from: each row still
	// at its mark is removed.
	Done []DirtyDir
}

// splitDir returns the parent and the name of the directory p ("" and ""
// for the folder).
func splitDir(p string) (parent, name string) {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[:i], p[i+1:]
	}
	return "", p
}

// DirtyDirs returns the directories marked changed since the tree was
// last saved, with their marks: under and those below it ("" for all).
// A walk of one directory needs only the marks beneath it, however many
// a sync has left elsewhere.
func (db *DB) DirtyDirs(ctx context.Context, under string) ([]DirtyDir, error) {
	var out []DirtyDir
	err := db.read(ctx, func(tx *sql.Tx) error {
		var (
			rows *sql.Rows
			err  error
		)
		if under == "" {
			rows, err = tx.QueryContext(ctx, `SELECT dir, mark FROM digest_dirty`)
		} else {
			// Below under lie the paths from under+"/" up to under+"0"
			// ('0' follows '/').
			rows, err = tx.QueryContext(ctx, `SELECT dir, mark FROM digest_dirty WHERE dir = ? OR (dir > ? AND dir < ?)`,
				under, under+"/", under+"0")
		}
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var d DirtyDir
			if err := rows.Scan(&d.Path, &d.Mark); err != nil {
				return err
			}
			out = append(out, d)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("state: %s: read the changed directories under %q: %w", db.path, under, err)
	}
	return out, nil
}

// DigestDirOf returns the saved hash of the directory p ("" for the
// folder), and whether one is saved.
func (db *DB) DigestDirOf(ctx context.Context, p string) ([32]byte, bool, error) {
	var h [32]byte
	parent, name := splitDir(p)
	var raw []byte
	err := db.read(ctx, func(tx *sql.Tx) error {
		return tx.QueryRowContext(ctx, `SELECT hash FROM digest_dirs WHERE parent = ? AND name = ?`, parent, name).Scan(&raw)
	})
	switch {
	case err == sql.ErrNoRows:
		return h, false, nil
	case err != nil:
		return h, false, fmt.Errorf("state: %s: read the digest of %q: %w", db.path, p, err)
	case len(raw) != len(h):
		return h, false, fmt.Errorf("state: %s: the digest of %q has %d bytes", db.path, p, len(raw))
	}
	copy(h[:], raw)
	return h, true, nil
}

// DigestSubdirs returns the saved hashes of the directories directly in
// dir ("" for the folder), by name.
func (db *DB) DigestSubdirs(ctx context.Context, dir string) (map[string][32]byte, error) {
	out := map[string][32]byte{}
	err := db.read(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT name, hash FROM digest_dirs WHERE parent = ? AND name != ''`, dir)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var (
				name string
				raw  []byte
				h    [32]byte
			)
			if err := rows.Scan(&name, &raw); err != nil {
				return err
			}
			if len(raw) != len(h) {
				return fmt.Errorf("the digest of %q in %q has %d bytes", name, dir, len(raw))
			}
			copy(h[:], raw)
			out[name] = h
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("state: %s: read the digests in %q: %w", db.path, dir, err)
	}
	return out, nil
}

// SaveDigestTree saves what a computation summed, in one transaction.
func (db *DB) SaveDigestTree(ctx context.Context, u DigestTreeUpdate) error {
	err := db.writeTx(ctx, false, recordsTouched{}, func(tx *sql.Tx) error {
		if u.Reset {
			if _, err := tx.ExecContext(ctx, `DELETE FROM digest_dirs`); err != nil {
				return err
			}
		}
		// A whole folder's sum saves a row per directory: each statement
		// is parsed once.
		each := func(q string, n int, args func(i int) []any) error {
			if n == 0 {
				return nil
			}
			stmt, err := tx.PrepareContext(ctx, q)
			if err != nil {
				return err
			}
			defer stmt.Close()
			for i := range n {
				if _, err := stmt.ExecContext(ctx, args(i)...); err != nil {
					return err
				}
			}
			return nil
		}
		err := each(`DELETE FROM digest_dirs WHERE parent = ? AND name = ?`, len(u.Drop), func(i int) []any {
			parent, name := splitDir(u.Drop[i])
			return []any{parent, name}
		})
		if err != nil {
			return err
		}
		err = each(`INSERT OR REPLACE INTO digest_dirs (parent, name, hash) VALUES (?, ?, ?)`, len(u.Set), func(i int) []any {
			parent, name := splitDir(u.Set[i].Path)
			return []any{parent, name, u.Set[i].Hash[:]}
		})
		if err != nil {
			return err
		}
		return each(`DELETE FROM digest_dirty WHERE dir = ? AND mark = ?`, len(u.Done), func(i int) []any {
			return []any{u.Done[i].Path, u.Done[i].Mark}
		})
	})
	if err != nil {
		return fmt.Errorf("state: %s: save the digest's tree: %w", db.path, err)
	}
	return nil
}
