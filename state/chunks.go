package state

import (
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/drive-node/drive-node/content"
)

// ChunkSource is a place where a chunk may be had on this device: at
// Offset in a content it holds (in a recorded file, the version store or
// a transfer's temp file; the caller looks). The index is a hint, not a
// record: whoever reads a chunk from it checks the bytes' hash, since
// the file may have changed since.
type ChunkSource struct {
	Content content.Hash
	Offset  int64
	Size    int64
}

// chunkKey is the index key of a chunk: the first 8 bytes of its hash.
// Two chunks sharing them are told apart by the reader's hash check.
func chunkKey(h content.Hash) int64 { return int64(binary.BigEndian.Uint64(h[:8])) }

// indexBatch is how many chunks IndexChunks records per transaction: the
// database's writer is let go between them, so a large file's thousands
// of chunks never hold up the record of a change for long.
const indexBatch = 256

// IndexChunks records where each chunk of the content c lies, taking them
// from next until it returns io.EOF, indexBatch to a transaction. A
// content already indexed is left as it is. The index is a hint: a
// content whose indexing was cut short is only partly found.
func (db *DB) IndexChunks(ctx context.Context, c content.Hash, next func() (content.Chunk, error)) error {
	if indexed, err := db.ChunksIndexed(ctx, c); err != nil || indexed {
		return err
	}
	for done := false; !done; {
		err := db.write(ctx, func(tx *sql.Tx) error {
			stmt, err := tx.PrepareContext(ctx, `INSERT OR IGNORE INTO chunk_index (chunk, content, offset, size) VALUES (?, ?, ?, ?)`)
			if err != nil {
				return err
			}
			defer stmt.Close()
			for range indexBatch {
				ch, err := next()
				if errors.Is(err, io.EOF) {
					done = true
					return nil
				}
				if err != nil {
					return err
				}
				if _, err := stmt.ExecContext(ctx, chunkKey(ch.Hash), c[:], ch.Offset, ch.Size); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("state: %s: index the chunks of %s: %w", db.path, c.Short(), err)
		}
	}
	return nil
}

// ChunksIndexed reports whether the chunks of c are indexed.
func (db *DB) ChunksIndexed(ctx context.Context, c content.Hash) (bool, error) {
	var one int
	err := db.sql.QueryRowContext(ctx, `SELECT 1 FROM chunk_index WHERE content = ? LIMIT 1`, c[:]).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("state: %s: look up the chunks of %s: %w", db.path, c.Short(), err)
	}
	return true, nil
}

// ChunksBesides reports whether the index holds the chunks of any content
// but c: when it does not, a content assembled has nothing to look up.
func (db *DB) ChunksBesides(ctx context.Context, c content.Hash) (bool, error) {
	var one int
	err := db.sql.QueryRowContext(ctx, `SELECT 1 FROM chunk_index WHERE content != ? LIMIT 1`, c[:]).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("state: %s: look up the chunk index: %w", db.path, err)
	}
	return true, nil
}

// ChunkSources returns where a chunk with hash h of size bytes may be had,
// at most limit places.
func (db *DB) ChunkSources(ctx context.Context, h content.Hash, size int64, limit int) ([]ChunkSource, error) {
	rows, err := db.sql.QueryContext(ctx, `SELECT content, offset FROM chunk_index WHERE chunk = ? AND size = ? LIMIT ?`, chunkKey(h), size, limit)
	if err != nil {
		return nil, fmt.Errorf("state: %s: find chunk %s: %w", db.path, h.Short(), err)
	}
	defer rows.Close()
	var out []ChunkSource
	for rows.Next() {
		s := ChunkSource{Size: size}
		var c []byte
		if err := rows.Scan(&c, &s.Offset); err != nil {
			return nil, fmt.Errorf("state: %s: find chunk %s: %w", db.path, h.Short(), err)
		}
		copy(s.Content[:], c)
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("state: %s: find chunk %s: %w", db.path, h.Short(), err)
	}
	return out, nil
}

// IndexedContents calls fn for each content whose chunks are indexed.
// fn must not use db.
func (db *DB) IndexedContents(ctx context.Context, fn func(content.Hash) error) error {
	rows, err := db.sql.QueryContext(ctx, `SELECT DISTINCT content FROM chunk_index`)
	if err != nil {
		return fmt.Errorf("state: %s: list indexed contents: %w", db.path, err)
	}
	defer rows.Close()
	for rows.Next() {
		var b []byte
		if err := rows.Scan(&b); err != nil {
			return fmt.Errorf("state: %s: list indexed contents: %w", db.path, err)
		}
		var c content.Hash
		copy(c[:], b)
		if err := fn(c); err != nil {
			return err
		}
	}
	return rows.Err()
}

// DropChunks forgets where the chunks of the contents cs lie.
func (db *DB) DropChunks(ctx context.Context, cs []content.Hash) error {
	if len(cs) == 0 {
		return nil
	}
	err := db.write(ctx, func(tx *sql.Tx) error {
		for _, c := range cs {
			if _, err := tx.ExecContext(ctx, `DELETE FROM chunk_index WHERE content = ?`, c[:]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("state: %s: drop the chunk index of %d contents: %w", db.path, len(cs), err)
	}
	return nil
}
