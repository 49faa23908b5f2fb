package state

import (
	"context"
	"os"
	"strings"
	"testing"
)

// TestOpenReadOnlyNeverWrites: status's view of the database creates
// nothing, migrates nothing and refuses writes, yet reads what a writer
// holds open and what a closed database left.
func TestOpenReadOnlyNeverWrites(t *testing.T) {
	ctx := context.Background()
	path := testPath(t)
	if _, err := OpenReadOnly(ctx, path); err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("a missing database: %v, want an error naming it", err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("a missing database was created: %v", err)
	}

	old, err := openAt(ctx, path, latestVersion()-1, false)
	if err != nil {
		t.Fatal(err)
	}
	old.Close()
	_, err = OpenReadOnly(ctx, path)
	if err == nil || !strings.Contains(err.Error(), "older than this drive-node reads") {
		t.Fatalf("an older schema: %v, want a refusal", err)
	}
	old, err = openAt(ctx, path, latestVersion()-1, false) // not migrated by the look
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := old.SchemaVersion(ctx); v != latestVersion()-1 {
		t.Fatalf("schema version %d after a read-only open, want %d", v, latestVersion()-1)
	}
	old.Close()

	w := openTest(t, path)
	if err := w.SetMeta(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
	for _, closed := range []bool{false, true} {
		if closed {
			w.Close() // the -wal and -shm files go with the last writer
		}
		r, err := OpenReadOnly(ctx, path)
		if err != nil {
			t.Fatalf("writer closed %v: %v", closed, err)
		}
		if v, _, err := r.Meta(ctx, "k"); v != "v" || err != nil {
			t.Errorf("writer closed %v: read %q, %v", closed, v, err)
		}
		if err := r.SetMeta(ctx, "k", "changed"); err == nil {
			t.Errorf("writer closed %v: a write succeeded", closed)
		}
		r.Close()
	}
}
