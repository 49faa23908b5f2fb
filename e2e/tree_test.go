package e2e

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/drive-node/drive-node/content"
)

// entry is what the trees are compared on.
type entry struct {
	dir   bool
	hash  string
	mode  fs.FileMode
	mtime int64 // milliseconds; directories are not compared on it
}

// snapshot reads a synced folder, leaving out drive-node's own state and
// temporary files.
func snapshot(root string) (map[string]entry, error) {
	out := map[string]entry{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "." {
			return nil
		}
		rel = filepath.ToSlash(rel)
		if strings.HasPrefix(d.Name(), ".drive-node") { // state, temp files, the folder marker
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if d.IsDir() {
			out[rel] = entry{dir: true}
			return nil
		}
		if !info.Mode().IsRegular() {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		// By the content's name, so a record can be checked against it.
		h, _, err := content.Reader(context.Background(), f)
		if err != nil {
			return err
		}
		out[rel] = entry{hash: h.String()[:16], mode: info.Mode().Perm(), mtime: info.ModTime().UnixMilli()}
		return nil
	})
	return out, err
}

// treeDiff describes how b differs from a, or returns "" when they are the
// same (contents, modes, mtimes, directories).
func treeDiff(a, b string) string {
	sa, err := snapshot(a)
	if err != nil {
		return err.Error()
	}
	sb, err := snapshot(b)
	if err != nil {
		return err.Error()
	}
	var diffs []string
	for p, ea := range sa {
		eb, ok := sb[p]
		switch {
		case !ok:
			diffs = append(diffs, "missing "+p)
		case ea != eb:
			diffs = append(diffs, fmt.Sprintf("differs %s: %+v vs %+v", p, ea, eb))
		}
	}
	for p := range sb {
		if _, ok := sa[p]; !ok {
			diffs = append(diffs, "extra "+p)
		}
	}
	sort.Strings(diffs)
	if len(diffs) > 10 {
		diffs = append(diffs[:10], fmt.Sprintf("… and %d more", len(diffs)-10))
	}
	return strings.Join(diffs, "; ")
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestTreeDiffSeesDifferences(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	writeFile(t, filepath.Join(a, "x/y.txt"), []byte("1"))
	if d := treeDiff(a, b); !strings.Contains(d, "missing x/y.txt") {
		t.Fatalf("diff %q", d)
	}
	writeFile(t, filepath.Join(b, "x/y.txt"), []byte("2"))
	if d := treeDiff(a, b); !strings.Contains(d, "differs x/y.txt") {
		t.Fatalf("diff %q", d)
	}
	writeFile(t, filepath.Join(b, "x/y.txt"), []byte("1"))
	st, _ := os.Stat(filepath.Join(a, "x/y.txt"))
	os.Chtimes(filepath.Join(b, "x/y.txt"), st.ModTime(), st.ModTime())
	writeFile(t, filepath.Join(b, ".drive-node/state.db"), []byte("ignored"))
	writeFile(t, filepath.Join(b, "x/.drive-node-tmp-abc"), []byte("ignored"))
	if d := treeDiff(a, b); d != "" {
		t.Fatalf("equal trees differ: %q", d)
	}
}

func regexpMatch(pattern, s string) bool { return regexp.MustCompile(pattern).MatchString(s) }
