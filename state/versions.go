package state

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/drive-node/drive-node/certs"
	"github.com/drive-node/drive-node/content"
)

// Version is one content the version store holds for a path: what was at
// Path before this device replaced or removed it, and which op did that.
// The store holds each content once, whatever number of versions name it.
type Version struct {
	// ID numbers the version in this database; 0 for one not yet stored.
	ID    int64
	Path  string
	Hash  content.Hash
	Size  int64
	Mode  uint32
	MTime int64
	// Kept is when the content went into the store, in unix nanoseconds.
	Kept int64
	// By is the op that replaced or removed the content.
	By OpID
}

const versionColumns = `id, path, hash, size, mode, mtime_ns, kept_ns, by_origin, by_seq`

// addVersions stores vs in tx; one that is already stored is left as it is.
func addVersions(ctx context.Context, tx *sql.Tx, vs []Version) error {
	if len(vs) == 0 {
		return nil
	}
	stmt, err := tx.PrepareContext(ctx, `INSERT OR IGNORE INTO versions (path, hash, size, mode, mtime_ns, kept_ns, by_origin, by_seq)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return err
	}
	defer stmt.Close()
	for _, v := range vs {
		if v.Hash.IsZero() || v.Path == "" {
			return fmt.Errorf("version of %q: no path or content", v.Path)
		}
		if _, err := stmt.ExecContext(ctx, v.Path, v.Hash[:], v.Size, int64(v.Mode), v.MTime, v.Kept,
			v.By.Origin[:], u64(v.By.Seq)); err != nil {
			return fmt.Errorf("store version of %q: %w", v.Path, err)
		}
	}
	return nil
}

// AddVersions stores vs in one transaction (see Batch.Versions).
func (db *DB) AddVersions(ctx context.Context, vs []Version) error {
	if err := db.write(ctx, func(tx *sql.Tx) error { return addVersions(ctx, tx, vs) }); err != nil {
		return fmt.Errorf("state: %s: add %d versions: %w", db.path, len(vs), err)
	}
	return nil
}

func scanVersion(s scanner) (Version, error) {
	var (
		v            Version
		hash, origin []byte
		mode, seq    int64
	)
	if err := s.Scan(&v.ID, &v.Path, &hash, &v.Size, &mode, &v.MTime, &v.Kept, &origin, &seq); err != nil {
		return v, err
	}
	var err error
	if v.Hash, err = scanHash(hash); err != nil {
		return v, fmt.Errorf("version %d of %q: %w", v.ID, v.Path, err)
	}
	if v.By.Origin, err = scanID(origin); err != nil {
		return v, fmt.Errorf("version %d of %q: %w", v.ID, v.Path, err)
	}
	v.Mode, v.By.Seq = uint32(mode), fromU64(seq)
	return v, nil
}

func (db *DB) versions(ctx context.Context, doing, query string, args ...any) ([]Version, error) {
	rows, err := db.sql.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("state: %s: %s: %w", db.path, doing, err)
	}
	defer rows.Close()
	var out []Version
	for rows.Next() {
		v, err := scanVersion(rows)
		if err != nil {
			return nil, fmt.Errorf("state: %s: %s: %w", db.path, doing, err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("state: %s: %s: %w", db.path, doing, err)
	}
	return out, nil
}

// Versions returns the stored versions of path and, when under is set, of
// every path below it ("" with under is the whole folder), oldest first.
func (db *DB) Versions(ctx context.Context, path string, under bool) ([]Version, error) {
	path = strings.TrimRight(path, "/")
	q := `SELECT ` + versionColumns + ` FROM versions WHERE path = ?`
	args := []any{path}
	switch {
	case under && path == "":
		q, args = `SELECT `+versionColumns+` FROM versions`, nil
	case under:
		q += ` OR (path > ? AND path < ?)`
		args = append(args, path+"/", path+"0")
	}
	return db.versions(ctx, fmt.Sprintf("list versions of %q", path), q+` ORDER BY kept_ns, id`, args...)
}

// KeepsVersionFor reports whether the store keeps a version of path
// that the op by replaced, or, unless h is zero, one whose content is h:
// what Versions would list, asked with one indexed look.
func (db *DB) KeepsVersionFor(ctx context.Context, path string, by OpID, h content.Hash) (bool, error) {
	if db.keepsVersion == nil { // an older schema, opened by a migration test
		return false, fmt.Errorf("state: %s: find versions of %q: schema not migrated", db.path, path)
	}
	var one int
	err := db.keepsVersion.QueryRowContext(ctx, path, by.Origin[:], u64(by.Seq), hashArg(h)).Scan(&one)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("state: %s: find versions of %q: %w", db.path, path, err)
	}
	return true, nil
}

// VersionsByHash returns the stored versions whose content is h.
func (db *DB) VersionsByHash(ctx context.Context, h content.Hash) ([]Version, error) {
	return db.versions(ctx, "find versions of "+h.Short(), `SELECT `+versionColumns+` FROM versions WHERE hash = ? ORDER BY id`, h[:])
}

// AllVersions returns every stored version, oldest first.
func (db *DB) AllVersions(ctx context.Context) ([]Version, error) {
	return db.Versions(ctx, "", true)
}

// DropVersions deletes the versions with the given IDs in one transaction
// and returns the contents that no remaining version names: those the
// store may let go of.
func (db *DB) DropVersions(ctx context.Context, ids []int64) ([]content.Hash, error) {
	var freed []content.Hash
	err := db.write(ctx, func(tx *sql.Tx) error {
		seen := map[content.Hash]bool{}
		for _, id := range ids {
			var hash []byte
			err := tx.QueryRowContext(ctx, `DELETE FROM versions WHERE id = ? RETURNING hash`, id).Scan(&hash)
			if errors.Is(err, sql.ErrNoRows) {
				continue
			}
			if err != nil {
				return fmt.Errorf("drop version %d: %w", id, err)
			}
			h, err := scanHash(hash)
			if err != nil {
				return err
			}
			seen[h] = true
		}
		for h := range seen {
			var left int
			if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM versions WHERE hash = ?`, h[:]).Scan(&left); err != nil {
				return err
			}
			if left == 0 {
				freed = append(freed, h)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("state: %s: drop %d versions: %w", db.path, len(ids), err)
	}
	return freed, nil
}

// VersionStats counts the stored versions, the distinct contents they
// name and those contents' bytes (each counted once).
type VersionStats struct {
	Versions, Contents int
	Bytes              int64
}

// VersionStats summarises the version store's records.
func (db *DB) VersionStats(ctx context.Context) (VersionStats, error) {
	var s VersionStats
	err := db.sql.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM versions), count(*), coalesce(sum(size), 0)
		FROM (SELECT hash, max(size) AS size FROM versions GROUP BY hash)`).Scan(&s.Versions, &s.Contents, &s.Bytes)
	if err != nil {
		return s, fmt.Errorf("state: %s: count versions: %w", db.path, err)
	}
	return s, nil
}

// HasVersionContent reports whether a stored version names content h.
func (db *DB) HasVersionContent(ctx context.Context, h content.Hash) (bool, error) {
	var one int
	err := db.sql.QueryRowContext(ctx, `SELECT 1 FROM versions WHERE hash = ? LIMIT 1`, h[:]).Scan(&one)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("state: %s: find version content %s: %w", db.path, h.Short(), err)
	}
	return true, nil
}

// noteOpTimes records that origin's ops first to last are recorded at at.
func noteOpTimes(ctx context.Context, tx *sql.Tx, origin certs.DeviceID, first, last uint64, at int64) error {
	if _, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO op_times (origin, first, last, at_ns) VALUES (?, ?, ?, ?)`,
		origin[:], u64(first), u64(last), at); err != nil {
		return fmt.Errorf("note when ops of %s were recorded: %w", origin, err)
	}
	return nil
}

// OpTimes is a run of one origin's ops, First to Last, recorded here at
// At (unix nanoseconds).
type OpTimes struct {
	Origin      certs.DeviceID
	First, Last uint64
	At          int64
}

// RecordedTimes returns when each run of ops was recorded here, by origin
// and then sequence. Ops recorded before schema 5 have no time.
func (db *DB) RecordedTimes(ctx context.Context) ([]OpTimes, error) {
	rows, err := db.sql.QueryContext(ctx, `SELECT origin, first, last, at_ns FROM op_times ORDER BY origin, first`)
	if err != nil {
		return nil, fmt.Errorf("state: %s: read op times: %w", db.path, err)
	}
	defer rows.Close()
	var out []OpTimes
	for rows.Next() {
		var (
			t           OpTimes
			origin      []byte
			first, last int64
		)
		if err := rows.Scan(&origin, &first, &last, &t.At); err != nil {
			return nil, fmt.Errorf("state: %s: read op times: %w", db.path, err)
		}
		if t.Origin, err = scanID(origin); err != nil {
			return nil, fmt.Errorf("state: %s: read op times: %w", db.path, err)
		}
		t.First, t.Last = fromU64(first), fromU64(last)
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("state: %s: read op times: %w", db.path, err)
	}
	return out, nil
}
