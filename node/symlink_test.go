package node

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A recorded file or directory that the user replaces with a symlink is
// gone as far as sync goes: symlinks are never synced nor followed, so the
// node records the deletion of the path and of everything recorded under
// it, never reads through the link, and keeps running.
func TestRecordedPathReplacedBySymlink(t *testing.T) {
	outside := t.TempDir()
	write(t, filepath.Join(outside, "x"), "outside the folder")
	for _, tc := range []struct {
		name   string
		files  map[string]string
		path   string // replaced by a link
		target func(folder string) string
		gone   []string // recorded deleted afterwards
	}{
		{"file to a file", map[string]string{"a.txt": "content", "target.txt": "other"}, "a.txt",
			func(string) string { return "target.txt" }, []string{"a.txt"}},
		{"directory to one inside the folder", map[string]string{"d/x": "inside d", "e/x": "inside e"}, "d",
			func(string) string { return "e" }, []string{"d", "d/x"}},
		{"directory to one outside the folder", map[string]string{"d/x": "inside d"}, "d",
			func(string) string { return outside }, []string{"d", "d/x"}},
		{"directory two levels up from a file, to one outside the folder", map[string]string{"d/sub/x": "inside d/sub"}, "d",
			func(string) string { return outside }, []string{"d", "d/sub", "d/sub/x"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			folder := t.TempDir()
			n := startNode(t, folder, freeUDPPort(t))
			for p, body := range tc.files {
				write(t, filepath.Join(folder, p), body)
			}
			waitFor(t, "the files are recorded", func() string {
				for p := range tc.files {
					if f, ok, _ := n.db.File(ctx, p); !ok || f.Deleted {
						return p + " not recorded"
					}
				}
				return ""
			})
			if err := os.RemoveAll(filepath.Join(folder, tc.path)); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(tc.target(folder), filepath.Join(folder, tc.path)); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the replaced paths are recorded deleted", func() string {
				for _, p := range tc.gone {
					if f, ok, _ := n.db.File(ctx, p); !ok || !f.Deleted {
						return fmt.Sprintf("%s: recorded %v, deleted %v (paused %v)", p, ok, f.Deleted, n.paused.Load())
					}
				}
				return ""
			})
			if n.paused.Load() {
				t.Fatalf("paused: %s", pausedFor(t, folder))
			}
			for p := range tc.files {
				if f, _, _ := n.db.File(ctx, p); !strings.HasPrefix(p, tc.path+"/") && p != tc.path && f.Deleted {
					t.Errorf("%s, untouched, was recorded deleted", p)
				}
			}
		})
	}
}
