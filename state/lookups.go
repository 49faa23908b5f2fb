package state

import (
	"context"
	"fmt"
	"strings"

	"github.com/drive-node/drive-node/content"
)

// lookupGroup is how many keys one statement of FilesAt or ContentFilesOf
// asks for. A statement is prepared for a full group; a last, shorter
// group repeats its final key, which an IN list does not mind. Each row
// then costs a fraction of a lookup of its own, whose fixed cost (the
// statement's run, the driver's rows) is most of it.
const lookupGroup = 64

// inList is "(?, ?, …)" with lookupGroup parameters.
var inList = "(" + strings.TrimSuffix(strings.Repeat("?, ", lookupGroup), ", ") + ")"

// groupArgs calls fn with the arguments of each group of keys, the last
// group padded with its final key.
func groupArgs[K any](keys []K, arg func(K) any, fn func(args []any) error) error {
	args := make([]any, lookupGroup)
	for lo := 0; lo < len(keys); lo += lookupGroup {
		group := keys[lo:min(lo+lookupGroup, len(keys))]
		for i := range args {
			args[i] = arg(group[min(i, len(group)-1)])
		}
		if err := fn(args); err != nil {
			return err
		}
	}
	return nil
}

// FilesAt returns the records, tombstones included, at those of paths
// that have one, as File would one by one: what File keeps at hand is
// answered from there, the rest read a group at a time and kept, unless
// they are more than half of what File keeps. A caller about to decide
// many paths asks for them all first.
func (db *DB) FilesAt(ctx context.Context, paths []string) (map[string]File, error) {
	if db.filesAt == nil { // an older schema, opened by a migration test
		return nil, fmt.Errorf("state: %s: read %d records: schema not migrated", db.path, len(paths))
	}
	out := make(map[string]File, len(paths))
	var missed []string
	asked := make(map[string]bool, len(paths))
	for _, p := range paths {
		if asked[p] {
			continue
		}
		asked[p] = true
		if f, ok, hit, _ := db.cache.get(p); hit {
			if ok {
				out[p] = f
			}
			continue
		}
		missed = append(missed, p)
	}
	gen := db.cache.generation()
	err := groupArgs(missed, func(p string) any { return p }, func(args []any) error {
		rows, err := db.filesAt.QueryContext(ctx, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			f, err := scanFile(rows)
			if err != nil {
				return err
			}
			out[f.Path] = f
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("state: %s: read %d records: %w", db.path, len(missed), err)
	}
	if len(missed) <= maxCachedFiles/2 {
		// More would push out what was kept, as much as one batch
		// can use again, and then itself.
		for _, p := range missed {
			f, ok := out[p]
			db.cache.put(p, f, ok, gen)
		}
	}
	return out, nil
}

// ContentFilesOf returns, for each of hs some live file has, what
// ContentFiles would: the live files with that content, in byte order of
// Path. A peer's batch of small contents is looked up with it at once.
func (db *DB) ContentFilesOf(ctx context.Context, hs []content.Hash) (map[content.Hash][]ContentFile, error) {
	if db.contentFilesOf == nil { // an older schema, opened by a migration test
		return nil, fmt.Errorf("state: %s: find files of %d contents: schema not migrated", db.path, len(hs))
	}
	out := make(map[content.Hash][]ContentFile, len(hs))
	var asked []content.Hash
	seen := make(map[content.Hash]bool, len(hs))
	for _, h := range hs {
		if !h.IsZero() && !seen[h] {
			seen[h] = true
			asked = append(asked, h)
		}
	}
	err := groupArgs(asked, hashArg, func(args []any) error {
		rows, err := db.contentFilesOf.QueryContext(ctx, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var (
				hash []byte
				f    ContentFile
			)
			if err := rows.Scan(&hash, &f.Path, &f.Size, &f.MTime); err != nil {
				return err
			}
			h, err := scanHash(hash)
			if err != nil {
				return fmt.Errorf("record %q: %w", f.Path, err)
			}
			out[h] = append(out[h], f)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("state: %s: find files of %d contents: %w", db.path, len(asked), err)
	}
	return out, nil
}
