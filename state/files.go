package state

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/drive-node/drive-node/certs"
	"github.com/drive-node/drive-node/content"
	"github.com/drive-node/drive-node/vclock"
)

// File is the node's record of one path in the folder: what is (or, for a
// tombstone, was) there and which op put it there.
type File struct {
	// Path is slash-separated and relative to the folder root; it is the
	// record's key.
	Path string
	// Dir is true for a directory.
	Dir bool
	// Hash names the file's content; it is zero for directories and
	// tombstones.
	Hash content.Hash
	// Size is the content's length in bytes.
	Size int64
	// Mode holds the permission bits.
	Mode uint32
	// MTime is the modification time in unix nanoseconds.
	MTime int64
	// Inode is the file's inode number, 0 where the OS has none.
	Inode uint64
	// Version is the path's version vector.
	Version vclock.Vector
	// Lamport is the Lamport timestamp of the op that produced the record.
	Lamport uint64
	// Origin is the device whose op produced the record.
	Origin certs.DeviceID
	// Seq is that op's sequence number in Origin's log.
	Seq uint64
	// Deleted marks a tombstone: the path was deleted.
	Deleted bool
	// DeletedAt is when the tombstone was recorded, in unix nanoseconds; 0
	// for live records.
	DeletedAt int64
	// Heads are the ops whose versions of the path no other op has
	// superseded: one after ordered edits, several after concurrent ones.
	Heads []OpID
}

// OpID names an op: its origin device and sequence.
type OpID struct {
	Origin certs.DeviceID
	Seq    uint64
}

// Batch is a set of changes that DB.Apply stores atomically.
type Batch struct {
	// Files are inserted, or replace the record with the same Path. When
	// a path occurs more than once the last occurrence wins.
	Files []File
	// Applied raises the applied vector: for each origin, applied becomes
	// max(applied, seq). It is never lowered.
	Applied map[certs.DeviceID]uint64
	// Versions are contents the batch's changes replaced or removed and
	// that the version store now holds (see Version). A version already
	// recorded (same path, content and replacing op) is not added twice.
	Versions []Version
	// At is when the batch is recorded, in unix nanoseconds (0: now): the
	// time OpTimes gives the ops Applied raises the vector over.
	At int64
	// SetAside are ops the batch counts as handled without carrying them
	// out (see SetAside); one already set aside is replaced.
	SetAside []SetAside
	// Resumed are set-aside ops now carried out: they are set aside no
	// more.
	Resumed []OpID
	// LocalChanges are noted (see LocalChange), replacing what was noted
	// at their paths; Undone are paths whose local change is noted no
	// more.
	LocalChanges []LocalChange
	Undone       []string
}

const fileColumns = `path, dir, hash, size, mode, mtime_ns, inode, version, lamport, origin, seq, deleted, deleted_ns, heads`

// Apply stores b in one transaction: either every file and the raised
// applied vector are stored, or (on error) nothing is.
func (db *DB) Apply(ctx context.Context, b Batch) error {
	if len(b.Files) == 0 && len(b.Applied) == 0 && len(b.Versions) == 0 && len(b.SetAside) == 0 && len(b.Resumed) == 0 &&
		len(b.LocalChanges) == 0 && len(b.Undone) == 0 {
		return nil
	}
	for i := range b.Files {
		if b.Files[i].Path == "" {
			return fmt.Errorf("state: %s: apply: file %d of %d has an empty path", db.path, i, len(b.Files))
		}
	}
	now := time.Now().UnixNano()
	touched := recordsTouched{paths: make([]string, len(b.Files))}
	for i := range b.Files {
		touched.paths[i] = b.Files[i].Path
	}
	err := db.writeTx(ctx, false, touched, func(tx *sql.Tx) error {
		if err := storeFiles(ctx, tx, b.Files, now); err != nil {
			return err
		}
		at := b.At
		if at == 0 {
			at = now
		}
		for origin, seq := range b.Applied {
			prev, raised, err := raise(ctx, tx, "applied", "", nil, origin, seq)
			if err != nil {
				return err
			}
			if raised {
				if err := noteOpTimes(ctx, tx, origin, prev+1, seq, at); err != nil {
					return err
				}
			}
		}
		if err := setAside(ctx, tx, b.SetAside, now); err != nil {
			return err
		}
		if err := resume(ctx, tx, b.Resumed); err != nil {
			return err
		}
		if err := noteLocalChanges(ctx, tx, b.Undone, b.LocalChanges, now); err != nil {
			return err
		}
		return addVersions(ctx, tx, b.Versions)
	})
	if err != nil {
		return fmt.Errorf("state: %s: apply %d files: %w", db.path, len(b.Files), err)
	}
	if len(b.Files) > 0 || len(b.Applied) > 0 {
		db.filesGen.Add(1)
	}
	return nil
}

// filesPerInsert is how many records one INSERT statement stores: each
// statement run costs some 10 µs besides its rows (database/sql, the
// driver, SQLite's bind and reset), most of a record's cost when a
// received file is recorded. 64 rows take 960 of SQLite's 32,766
// parameters.
const filesPerInsert = 64

// storeFiles inserts files, or replaces the records at their paths, in
// order: of two with one path, the later stays.
func storeFiles(ctx context.Context, tx *sql.Tx, files []File, now int64) error {
	const row = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
	var stmt *sql.Stmt
	defer func() {
		if stmt != nil {
			stmt.Close()
		}
	}()
	prepared := 0 // rows stmt takes
	args := make([]any, 0, 15*min(len(files), filesPerInsert))
	for len(files) > 0 {
		group := files[:min(len(files), filesPerInsert)]
		files = files[len(group):]
		if len(group) != prepared {
			if stmt != nil {
				stmt.Close()
			}
			var err error
			stmt, err = tx.PrepareContext(ctx, `INSERT OR REPLACE INTO files (`+fileColumns+`, updated_ns) VALUES `+
				strings.Repeat(row+", ", len(group)-1)+row)
			if err != nil {
				return err
			}
			prepared = len(group)
		}
		args = args[:0]
		for i := range group {
			f := &group[i]
			args = append(args, f.Path, boolInt(f.Dir), hashArg(f.Hash), f.Size, int64(f.Mode),
				f.MTime, u64(f.Inode), encodeVector(f.Version), u64(f.Lamport), f.Origin[:], u64(f.Seq),
				boolInt(f.Deleted), f.DeletedAt, encodeHeads(f.Heads), now)
		}
		if _, err := stmt.ExecContext(ctx, args...); err != nil {
			if len(group) == 1 {
				return fmt.Errorf("store %q: %w", group[0].Path, err)
			}
			// A failed statement stores none of its rows: stored one by
			// one, the error names the record that fails (the caller
			// rolls the transaction back either way).
			for i := range group {
				if oneErr := storeFiles(ctx, tx, group[i:i+1], now); oneErr != nil {
					return oneErr
				}
			}
			return fmt.Errorf("store %d records from %q to %q: %w", len(group), group[0].Path, group[len(group)-1].Path, err)
		}
	}
	return nil
}

// raise sets table's seq for origin (and, if keyCol is set, keyCol = key)
// to max(stored, seq), comparing as unsigned. It returns the stored seq it
// found and whether it raised it.
func raise(ctx context.Context, tx *sql.Tx, table, keyCol string, key []byte, origin certs.DeviceID, seq uint64) (prev uint64, raised bool, err error) {
	if seq == 0 {
		return 0, false, nil // absent means 0 already
	}
	where, args := "origin = ?", []any{origin[:]}
	cols, vals := "origin, seq", "?, ?"
	if keyCol != "" {
		where, args = keyCol+" = ? AND origin = ?", []any{key, origin[:]}
		cols, vals = keyCol+", origin, seq", "?, ?, ?"
	}
	var cur int64
	err = tx.QueryRowContext(ctx, "SELECT seq FROM "+table+" WHERE "+where, args...).Scan(&cur)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return 0, false, fmt.Errorf("read %s for %s: %w", table, origin, err)
	case fromU64(cur) >= seq:
		return fromU64(cur), false, nil
	}
	if _, err := tx.ExecContext(ctx, "INSERT OR REPLACE INTO "+table+" ("+cols+") VALUES ("+vals+")",
		append(args, u64(seq))...); err != nil {
		return 0, false, fmt.Errorf("raise %s for %s to %d: %w", table, origin, seq, err)
	}
	return fromU64(cur), true, nil
}

// scanner is a *sql.Row or *sql.Rows.
type scanner interface{ Scan(dest ...any) error }

func scanFile(s scanner) (File, error) {
	var (
		f                     File
		hash, version, origin []byte
		heads                 []byte
		mode                  int64
		inode, lamport, seq   int64
	)
	if err := s.Scan(&f.Path, &f.Dir, &hash, &f.Size, &mode, &f.MTime, &inode, &version, &lamport, &origin,
		&seq, &f.Deleted, &f.DeletedAt, &heads); err != nil {
		return f, err
	}
	var err error
	if f.Hash, err = scanHash(hash); err != nil {
		return f, fmt.Errorf("record %q: %w", f.Path, err)
	}
	if f.Version, err = decodeVector(version); err != nil {
		return f, fmt.Errorf("record %q: %w", f.Path, err)
	}
	if f.Origin, err = scanID(origin); err != nil {
		return f, fmt.Errorf("record %q: origin: %w", f.Path, err)
	}
	if f.Heads, err = decodeHeads(heads); err != nil {
		return f, fmt.Errorf("record %q: %w", f.Path, err)
	}
	f.Mode, f.Inode, f.Lamport, f.Seq = uint32(mode), fromU64(inode), fromU64(lamport), fromU64(seq)
	return f, nil
}

// File returns the record of path, tombstones included; ok is false if
// there is none.
func (db *DB) File(ctx context.Context, path string) (f File, ok bool, err error) {
	if db.fileByPath == nil { // an older schema, opened by a migration test
		return File{}, false, fmt.Errorf("state: %s: read %q: schema not migrated", db.path, path)
	}
	f, ok, hit, gen := db.cache.get(path)
	if hit {
		return f, ok, nil
	}
	f, err = scanFile(db.fileByPath.QueryRowContext(ctx, path))
	switch {
	case errors.Is(err, sql.ErrNoRows):
		db.cache.put(path, File{}, false, gen)
		return File{}, false, nil
	case err != nil:
		return File{}, false, fmt.Errorf("state: %s: read %q: %w", db.path, path, err)
	}
	db.cache.put(path, f, true, gen)
	return f, true, nil
}

// Files calls fn for every record, tombstones included, in byte order of
// Path. It stops at the first error fn returns and returns that error
// unchanged. The records come from one snapshot; fn may call other DB
// methods, including writes, which the snapshot does not see.
func (db *DB) Files(ctx context.Context, fn func(File) error) error {
	err := db.each(ctx, fn, `SELECT `+fileColumns+` FROM files ORDER BY path`)
	return db.listErr(err, "list files")
}

// FilesUnder calls fn, like Files, for every live (not deleted) record
// strictly under the directory dir, in byte order of Path: dir "a" yields
// "a/x" and "a/x/y" but not "a" itself, nor "ab" or "A/x". dir "" yields
// every live record. Trailing slashes on dir are ignored.
func (db *DB) FilesUnder(ctx context.Context, dir string, fn func(File) error) error {
	dir = strings.TrimRight(dir, "/")
	var err error
	if dir == "" {
		err = db.each(ctx, fn, `SELECT `+fileColumns+` FROM files WHERE deleted = 0 ORDER BY path`)
	} else {
		// The paths with prefix dir+"/" are exactly those in the range
		// (dir+"/", dir+"0"), '0' being the byte after '/'. Unlike LIKE
		// this needs no escaping, is case-sensitive and uses the primary
		// key index.
		err = db.each(ctx, fn, `SELECT `+fileColumns+` FROM files
			WHERE path > ? AND path < ? AND deleted = 0 ORDER BY path`, dir+"/", dir+"0")
	}
	return db.listErr(err, fmt.Sprintf("list files under %q", dir))
}

// FilesByHash returns the live records whose content has hash h, in byte
// order of Path. The zero hash matches nothing.
func (db *DB) FilesByHash(ctx context.Context, h content.Hash) ([]File, error) {
	var out []File
	if h.IsZero() {
		return out, nil
	}
	if db.filesByHash == nil { // an older schema, opened by a migration test
		return nil, fmt.Errorf("state: %s: find files with hash %s: schema not migrated", db.path, h.Short())
	}
	rows, err := db.filesByHash.QueryContext(ctx, h[:])
	if err == nil {
		err = eachRow(rows, func(f File) error { out = append(out, f); return nil })
	}
	if err != nil {
		return nil, fmt.Errorf("state: %s: find files with hash %s: %w", db.path, h.Short(), err)
	}
	return out, nil
}

// ContentFile is where a live file with some content lies, as its record
// says: enough to open it and check that it is still what was recorded.
type ContentFile struct {
	Path  string
	Size  int64
	MTime int64 // unix nanoseconds, as stored
}

// ContentFiles lists the live files whose content is h, in byte order of
// Path. It is FilesByHash reading three columns, all that finding a
// content here needs: it runs for every content a peer asks for.
func (db *DB) ContentFiles(ctx context.Context, h content.Hash) ([]ContentFile, error) {
	if h.IsZero() {
		return nil, nil
	}
	if db.contentFiles == nil { // an older schema, opened by a migration test
		return nil, fmt.Errorf("state: %s: find files with content %s: schema not migrated", db.path, h.Short())
	}
	rows, err := db.contentFiles.QueryContext(ctx, h[:])
	if err != nil {
		return nil, fmt.Errorf("state: %s: find files with content %s: %w", db.path, h.Short(), err)
	}
	defer rows.Close()
	var out []ContentFile
	for rows.Next() {
		var f ContentFile
		if err := rows.Scan(&f.Path, &f.Size, &f.MTime); err != nil {
			return nil, fmt.Errorf("state: %s: find files with content %s: %w", db.path, h.Short(), err)
		}
		out = append(out, f)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("state: %s: find files with content %s: %w", db.path, h.Short(), err)
	}
	return out, nil
}

// errCallback marks an error returned by a caller's callback, to be passed
// on unwrapped.
type errCallback struct{ err error }

func (e errCallback) Error() string { return e.err.Error() }

// listErr returns a callback's error unchanged and wraps any other.
func (db *DB) listErr(err error, doing string) error {
	var cb errCallback
	switch {
	case err == nil:
		return nil
	case errors.As(err, &cb):
		return cb.err
	}
	return fmt.Errorf("state: %s: %s: %w", db.path, doing, err)
}

// each runs query and calls fn for each file row. An error from fn is
// returned as errCallback so that the caller's wrapping can be skipped.
func (db *DB) each(ctx context.Context, fn func(File) error, query string, args ...any) error {
	rows, err := db.sql.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	return eachRow(rows, fn)
}

// eachRow calls fn for each file row of rows and closes them.
func eachRow(rows *sql.Rows, fn func(File) error) error {
	defer rows.Close()
	for rows.Next() {
		f, err := scanFile(rows)
		if err != nil {
			return err
		}
		if err := fn(f); err != nil {
			return errCallback{err}
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	return rows.Close()
}

// Applied returns how far into each origin's op log the records reflect:
// the highest sequence number applied per origin. Origins with nothing
// applied are absent. The map is never nil.
func (db *DB) Applied(ctx context.Context) (map[certs.DeviceID]uint64, error) {
	out, err := seqMap(ctx, db.sql, `SELECT origin, seq FROM applied`)
	if err != nil {
		return nil, fmt.Errorf("state: %s: read applied vector: %w", db.path, err)
	}
	return out, nil
}

// queryer is a *sql.DB or *sql.Tx.
type queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// seqMap reads (origin, seq) rows into a map.
func seqMap(ctx context.Context, q queryer, query string, args ...any) (map[certs.DeviceID]uint64, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[certs.DeviceID]uint64{}
	for rows.Next() {
		var (
			b   []byte
			seq int64
		)
		if err := rows.Scan(&b, &seq); err != nil {
			return nil, err
		}
		id, err := scanID(b)
		if err != nil {
			return nil, err
		}
		out[id] = fromU64(seq)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return out, rows.Close()
}

// Reset deletes every file record and the applied vector, in one
// transaction, so the state can be rebuilt from the op log. Peers, peer
// progress, meta and conflicts are kept.
func (db *DB) Reset(ctx context.Context) error {
	err := db.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM files`); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM applied`)
		return err
	})
	db.filesGen.Add(1) // whether or not it committed
	if err != nil {
		return fmt.Errorf("state: %s: reset: %w", db.path, err)
	}
	return nil
}

// PurgeTombstones deletes the tombstones recorded before olderThan (unix
// ns, DeletedAt < olderThan) and returns how many it deleted.
func (db *DB) PurgeTombstones(ctx context.Context, olderThan int64) (int, error) {
	var n int64
	err := db.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM files WHERE deleted = 1 AND deleted_ns < ?`, olderThan)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("state: %s: purge tombstones: %w", db.path, err)
	}
	return int(n), nil
}
