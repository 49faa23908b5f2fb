package ignore

import (
	"strings"
	"testing"
)

// FuzzMatch: no rules and path make Match panic; Match is a function of
// its arguments; what an ignored directory holds is ignored, by the same
// rule; DirOnly says exactly whether the type of path matters.
func FuzzMatch(f *testing.F) {
	f.Add("*.log\n!keep.log\nbuild/\n", "a/build/keep.log", false)
	f.Add("dir/\n!dir/file\n", "dir", true)
	f.Add("/a/**/b/\n!a/x/b\n", "a/x/b", true)
	f.Add("x**/y\n[!a-c]?\n\\#[[:alpha:]]\n", "xa/y", false)
	f.Add("(?i)Thumbs.DB\n!(?i)*.JPG\n**\n", "p/IMG.jpg", false)
	f.Add("[[:bogus:]]\n[ab\n\\\n", "a", true)
	f.Add("*\n!*/\n", "a/b/c", false)
	f.Fuzz(func(t *testing.T, rules, path string, dir bool) {
		m := New(Parse("f", []byte(rules)))
		got := m.Match(path, dir)
		m.DirOnly(path)
		if path == "" || path == "." || strings.HasPrefix(path, "/") || strings.HasSuffix(path, "/") ||
			strings.Contains(path, "//") {
			return // not a path Match is asked about; enough that it did not panic
		}
		if again := m.Match(path, dir); again != got {
			t.Fatalf("Match(%q, %v) = %+v, then %+v", path, dir, got, again)
		}
		if got.Ignored != m.Ignored(path, dir) {
			t.Fatalf("Ignored(%q, %v) is not Match(...).Ignored", path, dir)
		}
		other := New(Parse("f", []byte(rules))).Match(path, dir)
		if (got.Rule == nil) != (other.Rule == nil) || got.Ignored != other.Ignored ||
			got.Rule != nil && got.Rule.Line != other.Rule.Line {
			t.Fatalf("two matchers over the same rules decide %q differently: %+v, %+v", path, got, other)
		}
		if got.Rule == nil && got.Ignored {
			t.Fatalf("Match(%q, %v) ignored by no rule", path, dir)
		}
		asFile, asDir := m.Match(path, false), m.Match(path, true)
		if m.DirOnly(path) != (asFile != asDir) {
			t.Fatalf("DirOnly(%q) = %v, but Match as a file %+v, as a directory %+v", path, m.DirOnly(path), asFile, asDir)
		}
		if asDir.Ignored {
			for _, child := range []string{path + "/x", path + "/.x/y z"} {
				for _, d := range []bool{false, true} {
					if c := m.Match(child, d); !c.Ignored || c.Rule != asDir.Rule {
						t.Fatalf("%q ignored by line %d as a directory, but Match(%q, %v) = %+v",
							path, asDir.Rule.Line, child, d, c)
					}
				}
			}
		}
	})
}
