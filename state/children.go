package state

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/drive-node/drive-node/content"
)

// Child is what a look at the folder compares with a live record: the
// columns of a record the watcher's test reads.
type Child struct {
	Name  string // the last element of the record's path
	Dir   bool
	Hash  content.Hash
	Size  int64
	Mode  uint32
	MTime int64
	Inode uint64
	// Implied marks a directory that has no record of its own but holds
	// records: only Name and Dir are set.
	Implied bool
}

// childColumns are the columns Children reads.
const childColumns = `path, dir, hash, size, mode, mtime_ns, inode`

// childrenPage is how many rows one query of Children reads.
const childrenPage = 512

// Children calls fn for every live record directly in the directory dir
// ("" for the folder), in byte order of name, from one snapshot. It
// reads the direct children and one row of each subdirectory's
// contents, never the whole subtree: a walk of the folder that asks for
// every directory's children reads each record about once, where the
// range FilesUnder reads would be read again for every directory above
// it. It stops at the first error fn returns and returns it unchanged.
func (db *DB) Children(ctx context.Context, dir string, fn func(Child) error) error {
	prefix := ""
	if dir = strings.TrimRight(dir, "/"); dir != "" {
		prefix = dir + "/"
	}
	err := db.read(ctx, func(tx *sql.Tx) error {
		// from is where the next query starts (inclusive); the range ends
		// before prefix's successor, dir+"0" ('0' follows '/').
		from, inclusive, dirs := prefix, false, map[string]bool{}
		for {
			n, next, err := db.childrenFrom(ctx, tx, dir, prefix, from, inclusive, dirs, fn)
			if err != nil || n == 0 {
				return err
			}
			from, inclusive = next, true
		}
	})
	return db.listErr(err, fmt.Sprintf("list the records in %q", dir))
}

// childrenFrom reads up to childrenPage rows of the range from from and
// passes the direct children among them to fn. It returns how many rows
// it read and where the next query starts: after the last row, or, at a
// row inside a subdirectory, past that subdirectory's subtree. dirs holds
// the directories passed so far, carried from page to page: one holding
// records is Implied unless it was passed (its record comes before its
// contents, but siblings such as "a.txt" may come between).
func (db *DB) childrenFrom(ctx context.Context, tx *sql.Tx, dir, prefix, from string, inclusive bool, dirs map[string]bool, fn func(Child) error) (int, string, error) {
	if !inclusive {
		from += "\x00" // no path holds a NUL: ">" from is ">=" this
	}
	var (
		rows *sql.Rows
		err  error
	)
	switch {
	case db.children == nil && dir == "": // an older schema, opened by a migration test
		rows, err = tx.QueryContext(ctx, `SELECT `+childColumns+` FROM files WHERE path >= ? AND deleted = 0 ORDER BY path LIMIT ?`, from, childrenPage)
	case db.children == nil:
		rows, err = tx.QueryContext(ctx, `SELECT `+childColumns+` FROM files WHERE path >= ? AND path < ? AND deleted = 0 ORDER BY path LIMIT ?`, from, dir+"0", childrenPage)
	case dir == "":
		rows, err = tx.StmtContext(ctx, db.childrenOfRoot).QueryContext(ctx, from, childrenPage)
	default:
		rows, err = tx.StmtContext(ctx, db.children).QueryContext(ctx, from, dir+"0", childrenPage)
	}
	if err != nil {
		return 0, "", err
	}
	defer rows.Close()
	n := 0
	var next string
	// Declared once, not per row: Scan's pointers make them escape, and
	// a scan of the folder reads every record through here. The hash is
	// the driver's buffer (RawBytes), valid only until the next Next,
	// Scan or Close: scanHash copies it before anything else runs.
	var (
		p                      string
		isDir                  bool
		hash                   sql.RawBytes
		size, mode, mtime, ino int64
	)
	for rows.Next() {
		n++
		if err := rows.Scan(&p, &isDir, &hash, &size, &mode, &mtime, &ino); err != nil {
			return 0, "", err
		}
		name := strings.TrimPrefix(p, prefix)
		if i := strings.IndexByte(name, '/'); i >= 0 {
			// Inside the subdirectory name[:i]: skip its subtree, whose
			// paths all lie below prefix+name[:i]+"0".
			sub := name[:i]
			if err := rows.Close(); err != nil {
				return 0, "", err
			}
			if !dirs[sub] {
				if err := fn(Child{Name: sub, Dir: true, Implied: true}); err != nil {
					return 0, "", errCallback{err}
				}
			}
			return n, prefix + sub + "0", nil
		}
		h, err := scanHash(hash)
		if err != nil {
			return 0, "", fmt.Errorf("record %q: %w", p, err)
		}
		c := Child{Name: name, Dir: isDir, Hash: h, Size: size, Mode: uint32(mode), MTime: mtime, Inode: uint64(ino)}
		if c.Dir {
			dirs[name] = true
		}
		if err := fn(c); err != nil {
			return 0, "", errCallback{err}
		}
		next = p
	}
	if err := rows.Err(); err != nil {
		return 0, "", err
	}
	if n < childrenPage {
		return 0, "", nil // the range is done
	}
	// The page ended on a direct child: go on after it. A path that
	// starts with it and continues (a sibling "a.txt" after "a") sorts
	// after it, so ">" of it is right; only the first query uses ">".
	return n, next + "\x00", nil
}
