package state

import (
	"context"
	"database/sql"
	"fmt"
)

// EachHead calls fn for every op a record names, tombstones included: the
// op that produced the record and each of its heads (an op may come more
// than once). It reads the records in one snapshot, a row at a time, so
// memory does not grow with the folder; an op it never names is, as far as
// the records go, superseded or not applied. It stops at the first error
// fn returns and returns it unchanged.
func (db *DB) EachHead(ctx context.Context, fn func(OpID) error) error {
	err := db.read(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT origin, seq, heads FROM files`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var origin, heads []byte
			var seq int64
			if err := rows.Scan(&origin, &seq, &heads); err != nil {
				return err
			}
			var id OpID
			if len(origin) != len(id.Origin) {
				return fmt.Errorf("a record names an origin of %d bytes", len(origin))
			}
			copy(id.Origin[:], origin)
			id.Seq = uint64(seq)
			if err := fn(id); err != nil {
				return errCallback{err}
			}
			hs, err := decodeHeads(heads)
			if err != nil {
				return err
			}
			for _, h := range hs {
				if err := fn(h); err != nil {
					return errCallback{err}
				}
			}
		}
		return rows.Err()
	})
	return db.listErr(err, "list the records' heads")
}
