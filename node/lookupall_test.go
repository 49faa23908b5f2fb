package node

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/drive-node/drive-node/state"
)

// TestLookupAllAsLookupDoes compares the watcher's two ways into the
// node's records, at once and one by one: files and a directory
// recorded, a file deleted since, one an apply is about to record, one
// nobody recorded.
func TestLookupAllAsLookupDoes(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"a.txt", "sub/b.txt", "doomed.txt"} {
		write(t, filepath.Join(dir, name), name)
	}
	r := startNode(t, dir, freeUDPPort(t))
	ctx := context.Background()
	recorded := func(p string, live bool) func() string {
		return func() string {
			f, ok, err := r.db.File(ctx, p)
			if err != nil || !ok || f.Deleted == live {
				return fmt.Sprintf("%s: %+v, %v, %v", p, f, ok, err)
			}
			return ""
		}
	}
	waitFor(t, "files recorded", recorded("sub/b.txt", true))
	waitFor(t, "files recorded", recorded("doomed.txt", true))
	if err := os.Remove(filepath.Join(dir, "doomed.txt")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the deletion recorded", recorded("doomed.txt", false))
	r.placing.add([]state.File{{Path: "arriving.txt", Size: 9, MTime: 1}})
	defer r.placing.reset()

	x := dbIndex{db: r.db, placing: &r.placing}
	paths := []string{"a.txt", "sub", "sub/b.txt", "doomed.txt", "arriving.txt", "nobody.txt", "a.txt"}
	got := x.LookupAll(paths)
	want := map[string]bool{"a.txt": true, "sub": true, "sub/b.txt": true, "arriving.txt": true}
	for _, p := range paths {
		k, ok := x.Lookup(p)
		g, found := got[p]
		if found != ok || !reflect.DeepEqual(g, k) {
			t.Errorf("%s: at once %+v (%v), one by one %+v (%v)", p, g, found, k, ok)
		}
		if found != want[p] {
			t.Errorf("%s: found %v, want %v", p, found, want[p])
		}
	}
}
