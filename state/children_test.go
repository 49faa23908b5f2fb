package state

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/drive-node/drive-node/content"
)

// TestChildren lists the live records directly in a directory, and only
// those, whatever lies between them in byte order: siblings that share a
// start with a subdirectory, deep subtrees, tombstones, and more children
// than one page.
func TestChildren(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	paths := []string{"a", "a.txt", "a/b", "a/c/d", "a/c/e", "a0", "a0/x", "z", "a/b.txt"}
	for i := range childrenPage + 3 {
		paths = append(paths, fmt.Sprintf("big/f%04d", i))
		if i < 7 {
			paths = append(paths, fmt.Sprintf("big/sub%04d/g", i), fmt.Sprintf("big/sub%04d", i))
		}
	}
	var files []File
	seq := uint64(0)
	for _, p := range paths {
		seq++
		files = append(files, File{Path: p, Dir: !strings.Contains(p, ".") && (p == "a" || p == "a0" || p == "a/c" || strings.HasPrefix(p, "big/sub") && !strings.HasSuffix(p, "/g")), Hash: content.Sum([]byte(p)), Size: int64(len(p)), Mode: 0o644, Origin: dev(1), Seq: seq})
	}
	files = append(files, File{Path: "a/gone", Deleted: true, Origin: dev(1), Seq: seq + 1}, File{Path: "gone", Deleted: true, Origin: dev(1), Seq: seq + 2})
	if err := db.Apply(ctx, Batch{Files: files}); err != nil {
		t.Fatal(err)
	}
	children := func(dir string) []string {
		var out []string
		err := db.Children(ctx, dir, func(c Child) error {
			p := c.Name
			if dir != "" {
				p = dir + "/" + p
			}
			if c.Implied {
				out = append(out, c.Name+"/")
				return nil
			}
			if c.Hash != content.Sum([]byte(p)) || c.Size != int64(len(p)) || c.Mode != 0o644 {
				t.Errorf("%s listed as %+v", p, c)
			}
			out = append(out, c.Name)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	// What Children must return: every live path with no further '/'
	// after dir's prefix, and ("name/") every directory holding records
	// with none of its own, computed the slow way.
	want := func(dir string) []string {
		var out []string
		have := map[string]bool{}
		for _, p := range paths {
			have[p] = true
		}
		for _, p := range paths {
			rest, ok := p, dir == ""
			if dir != "" {
				rest, ok = strings.CutPrefix(p, dir+"/")
			}
			if !ok {
				continue
			}
			if sub, _, deeper := strings.Cut(rest, "/"); !deeper {
				out = append(out, rest)
			} else if full := strings.TrimPrefix(dir+"/"+sub, "/"); !have[full] && !slices.Contains(out, sub+"/") {
				out = append(out, sub+"/")
			}
		}
		sort.Slice(out, func(i, j int) bool { return strings.TrimSuffix(out[i], "/") < strings.TrimSuffix(out[j], "/") })
		return out
	}
	for _, dir := range []string{"", "a", "a/c", "a0", "big", "big/sub0003", "nothing", "a/b"} {
		if got, w := children(dir), want(dir); !slices.Equal(got, w) {
			t.Errorf("children of %q: %d names %v, want %d %v", dir, len(got), head(got), len(w), head(w))
		}
	}
	stop := errors.New("stop")
	if err := db.Children(ctx, "big", func(Child) error { return stop }); err != stop {
		t.Fatalf("the callback's error came back as %v", err)
	}
}

func head(s []string) []string { return s[:min(len(s), 8)] }
