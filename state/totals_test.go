package state

import (
	"context"
	"fmt"
	"testing"
)

// countedStats is what Stats must say, counted from every record.
func countedStats(t *testing.T, db *DB) Stats {
	t.Helper()
	var s Stats
	err := db.sql.QueryRowContext(context.Background(), `SELECT
			COALESCE(SUM(deleted = 0 AND dir = 0), 0),
			COALESCE(SUM(deleted = 0 AND dir <> 0), 0),
			COALESCE(SUM(deleted <> 0), 0),
			COALESCE(SUM(CASE WHEN deleted = 0 AND dir = 0 THEN size ELSE 0 END), 0)
		FROM files`).Scan(&s.Files, &s.Dirs, &s.Tombstones, &s.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestStatsKeptByTriggers: the totals Stats reads are kept right through
// the migration that introduces them, records added, replaced (a file
// becoming a tombstone or a directory, a size changing), tombstones
// purged and a reset.
func TestStatsKeptByTriggers(t *testing.T) {
	ctx := context.Background()
	path := testPath(t)
	old, err := openAt(ctx, path, latestVersion()-1, false)
	if err != nil {
		t.Fatal(err)
	}
	seq := uint64(0)
	file := func(p string, size int64, dir, deleted bool, at int64) File {
		seq++
		return File{Path: p, Size: size, Dir: dir, Deleted: deleted, DeletedAt: at, Mode: 0o644, Origin: dev(1), Seq: seq}
	}
	var before []File
	for i := range 50 {
		before = append(before, file(fmt.Sprintf("f%02d", i), int64(i), i%10 == 0, i%7 == 0, 1))
	}
	if err := old.Apply(ctx, Batch{Files: before}); err != nil {
		t.Fatal(err)
	}
	old.Close()
	db := openTest(t, path)
	var changes uint64
	check := func(step string) {
		t.Helper()
		got, err := db.Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if step != "the migration" && got.Changes <= changes {
			t.Fatalf("after %s: %d changes counted, %d before", step, got.Changes, changes)
		}
		changes = got.Changes
		want := countedStats(t, db)
		if got.Files != want.Files || got.Dirs != want.Dirs || got.Tombstones != want.Tombstones || got.Bytes != want.Bytes {
			t.Fatalf("after %s: stats %+v, counted %+v", step, got, want)
		}
	}
	check("the migration")
	if err := db.Apply(ctx, Batch{Files: []File{
		file("f01", 1000, false, false, 0), // bigger
		file("f02", 0, false, true, 5),     // deleted
		file("f03", 0, true, false, 0),     // now a directory
		file("f07", 9, false, false, 0),    // a tombstone brought back
		file("new", 77, false, false, 0),
	}}); err != nil {
		t.Fatal(err)
	}
	check("replacing records")
	if _, err := db.PurgeTombstones(ctx, 3); err != nil {
		t.Fatal(err)
	}
	check("purging tombstones")
	if err := db.Reset(ctx); err != nil {
		t.Fatal(err)
	}
	check("a reset")
	if st, _ := db.Stats(ctx); st.Files != 0 || st.Bytes != 0 {
		t.Fatalf("after a reset: %+v", st)
	}
}
