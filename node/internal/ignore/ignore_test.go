package ignore

import (
	"math/rand/v2"
	"strings"
	"testing"
)

// matchCase is a path and the decision on it: the line of the deciding
// rule (0 for none) and whether the path is ignored.
type matchCase struct {
	name    string
	rules   string
	path    string
	dir     bool
	line    int
	ignored bool
}

func runMatchCases(t *testing.T, cases []matchCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := New(Parse("t", []byte(c.rules)))
			got := m.Match(c.path, c.dir)
			line := 0
			if got.Rule != nil {
				line = got.Rule.Line
			}
			if line != c.line || got.Ignored != c.ignored {
				t.Errorf("rules %q: Match(%q, %v) = line %d, ignored %v; want line %d, ignored %v",
					c.rules, c.path, c.dir, line, got.Ignored, c.line, c.ignored)
			}
			if m.Ignored(c.path, c.dir) != got.Ignored {
				t.Errorf("Ignored(%q, %v) is not Match(...).Ignored", c.path, c.dir)
			}
		})
	}
}

// ign and not make the common cases: path (a file) ignored by line 1, or
// no rule matching it.
func ign(name, rules, path string) matchCase { return matchCase{name, rules, path, false, 1, true} }
func not(name, rules, path string) matchCase { return matchCase{name, rules, path, false, 0, false} }

func TestMatchSyntax(t *testing.T) {
	runMatchCases(t, []matchCase{
		// names and anchoring
		ign("basename at top", "foo", "foo"),
		ign("basename at depth", "foo", "a/b/foo"),
		not("basename is whole", "foo", "foobar"),
		ign("basename of a directory ignores within", "foo", "foo/bar"),
		ign("leading slash anchors", "/foo", "foo"),
		not("leading slash anchors, not deeper", "/foo", "a/foo"),
		ign("middle slash anchors", "a/foo", "a/foo"),
		not("middle slash anchors, not deeper", "a/foo", "x/a/foo"),
		not("escaped leading slash never matches", "\\/x", "x"),
		not("escaped leading slash never matches (2)", "\\/x", "a/x"),
		not("no match at a suffix of the path", "b/c", "a/b/c"),
		// trailing slash
		{"trailing slash matches a directory", "foo/", "a/foo", true, 1, true},
		not("trailing slash does not match a file", "foo/", "a/foo"),
		ign("trailing slash: inside the directory", "foo/", "a/foo/x"),
		{"trailing slash, anchored", "/a/foo/", "a/foo", true, 1, true},
		// comments, blanks, escapes, spaces
		not("comment", "#foo", "#foo"),
		{"escaped hash", "\\#foo", "#foo", false, 1, true},
		ign("hash not first", "a#", "a#"),
		{"escaped bang", "\\!foo", "!foo", false, 1, true},
		{"blank lines and comments keep line numbers", "\n# c\n\nfoo\n", "foo", false, 4, true},
		ign("trailing spaces removed", "foo   ", "foo"),
		not("trailing spaces removed, not matched", "foo   ", "foo "),
		ign("escaped trailing space kept", "foo\\ ", "foo "),
		ign("escaped trailing space, rest removed", "foo\\   ", "foo "),
		ign("inner spaces kept", "a b", "a b"),
		ign("leading space kept", " a", " a"),
		not("leading space kept, not matched", " a", "a"),
		{"CRLF", "x\r\nfoo\r\n", "foo", false, 2, true},
		ign("byte order mark skipped", "\ufefffoo", "foo"),
		ign("NUL ends the line", "foo\x00bar", "foo"),
		ign("escaped letter", "\\f\\o\\o", "foo"),
		ign("escaped star is literal", "a\\*", "a*"),
		not("escaped star is literal, not wild", "a\\*", "ab"),
		not("trailing backslash never matches", "foo\\", "foo\\"),
		not("trailing backslash never matches (2)", "foo\\", "foo"),
		// negation
		{"negation un-ignores", "*.log\n!keep.log", "keep.log", false, 2, false},
		{"later rule wins", "!keep.log\n*.log", "keep.log", false, 2, true},
		{"negation matching nothing ignored", "!foo", "foo", false, 1, false},
		// wildcards
		ign("star", "*.c", "a/x.c"),
		ign("star matches empty", "x*", "x"),
		not("star does not cross slash", "a*c", "ab/c"),
		not("anchored star does not cross slash", "/a/*.c", "a/b/x.c"),
		ign("anchored star", "/a/*.c", "a/x.c"),
		ign("question", "?.c", "x.c"),
		not("question needs a byte", "?.c", ".c"),
		not("question not slash", "a?b", "a/b"),
		ign("question matches one byte of a multibyte name", "??", "ä"),
		not("question is one byte, not one character", "?", "ä"),
		// brackets
		ign("class", "[abc].c", "b.c"),
		not("class, out", "[abc].c", "d.c"),
		ign("range", "[a-c]x", "bx"),
		not("range, out", "[a-c]x", "dx"),
		ign("negated with !", "[!a]x", "bx"),
		not("negated with !, out", "[!a]x", "ax"),
		ign("negated with ^", "[^a]x", "bx"),
		ign("bracket first is literal", "[]]x", "]x"),
		ign("bracket first after ! is literal", "[!]]x", "ax"),
		not("bracket first after ! is literal, out", "[!]]x", "]x"),
		ign("dash last is literal", "[a-]x", "-x"),
		ign("dash first is literal", "[-a]x", "-x"),
		ign("dash after a range is literal", "[a-b-d]", "-"),
		not("dash after a range is literal, c out", "[a-b-d]", "c"),
		ign("escaped bracket in class", "[\\]]x", "]x"),
		ign("escaped range end", "[a-\\z]", "m"),
		ign("posix digit", "[[:digit:]]x", "7x"),
		not("posix digit, out", "[[:digit:]]x", "ax"),
		ign("posix classes together", "[[:upper:][:digit:]]", "Q"),
		ign("posix punct", "[[:punct:]]", "~"),
		not("posix space is not vertical tab", "[[:space:]]", "\v"),
		ign("posix is ASCII only", "[![:alpha:]]?", "ä"),
		not("unknown posix class never matches", "[[:bogus:]]", "a"),
		ign("[: without :] is literal", "[[:a]", ":"),
		ign("[: without :] is literal (2)", "[[:a]", "["),
		not("unterminated class never matches", "[ab", "[ab"),
		not("unterminated class never matches (2)", "[ab", "a"),
		not("class never matches slash", "a[/]b", "a/b"),
		not("negated class never matches slash", "a[!x]b", "a/b"),
		not("class is one byte of a multibyte name", "[ä]", "ä"),
		ign("class is one byte of a multibyte name (2)", "[ä]?", "ä"),
		// "**"
		ign("leading ** at top", "**/foo", "foo"),
		ign("leading ** at depth", "**/foo", "a/b/foo"),
		ign("leading ** with more", "**/a/b", "x/a/b"),
		not("leading ** with more, whole names", "**/a/b", "x/a/bc"),
		ign("trailing **", "a/**", "a/b/c"),
		not("trailing ** not the directory itself", "a/**", "a"),
		ign("middle ** zero", "a/**/b", "a/b"),
		ign("middle ** many", "a/**/b", "a/x/y/b"),
		not("middle ** anchored", "a/**/b", "x/a/b"),
		ign("*** is **", "a/***/b", "a/x/y/b"),
		not("** in a name is *", "a**b/c", "ax/yb/c"),
		ign("** in a name is *", "a**b", "axyb"),
		ign("** after the literal part starts the pattern", "x**/y", "xy"),
		ign("** after the literal part starts the pattern (2)", "x**/y", "xa/b/y"),
		ign("** before an escaped slash", "a/**\\/b", "a/x/b"),
		not("** before an escaped slash must match a slash", "a/**\\/b", "a/b"),
		ign("lone ** matches all", "**", "a/b"),
		ign("/** matches all", "/**", "a"),
		// ancestors
		{"ancestor decides", "dir/\n!dir/file", "dir/file", false, 1, true},
		{"outermost ancestor decides", "b/\na/", "a/b/c", false, 2, true},
		{"negated ancestor is not ignored", "a/\n!a/", "a/b", false, 0, false},
		{"negated ancestor, path itself ignored", "a\n!a/\nb", "a/b", false, 3, true},
		{"negated ancestor, path un-ignored", "a\n!a/\nb\n!b", "a/b", false, 4, false},
		{"ancestor matched as a directory", "a/", "a/b", false, 1, true},
		{"file pattern matches a directory", "a", "a", true, 1, true},
	})
}

func TestFold(t *testing.T) {
	runMatchCases(t, []matchCase{
		ign("ASCII", "(?i)thumbs.db", "x/THUMBS.DB"),
		ign("folded pattern", "(?i)THUMBS.DB", "thumbs.db"),
		not("case counts without (?i)", "thumbs.db", "Thumbs.db"),
		ign("suffix", "(?i)*.JPG", "a/b.jpg"),
		ign("long suffix", "(?i)*.tar.GZ", "b.TAR.gz"),
		ign("glob", "(?i)IMG_*.jpg", "img_1.JPG"),
		ign("anchored", "(?i)/Build/out", "build/OUT"),
		ign("anchored glob", "(?i)/Build/*.o", "BUILD/x.O"),
		ign("class folds ASCII letters", "(?i)[a-c]x", "BX"),
		ign("negated class folds ASCII letters", "(?i)[!a]x", "bx"),
		not("negated class folds ASCII letters, out", "(?i)[!a]x", "AX"),
		ign("Unicode", "(?i)ärger", "ÄRGER"),
		ign("Unicode simple folding: long s", "(?i)s", "ſ"),
		ign("Unicode simple folding: Kelvin sign", "(?i)k", "\u212a"),
		ign("Unicode simple folding: sigma", "(?i)σας", "ΣΑΣ"),
		ign("escaped letter folds", "(?i)\\A", "a"),
		{"after !", "*.txt\n!(?i)README.TXT", "readme.txt", false, 2, false},
		{"before !", "*.txt\n(?i)!README.TXT", "readme.txt", false, 2, false},
		{"directory", "(?i)Node_Modules/", "a/node_modules", true, 1, true},
		{"ancestor", "(?i)Node_Modules/", "a/node_modules/x/y", false, 1, true},
		ign("escaped is literal: '(', any byte, 'i)'", "\\(?i)x", "(Ai)x"),
		not("escaped is literal and keeps case", "\\(?i)x", "(?i)X"),
		not("only at the start", "a(?i)b", "aB"),
	})
}

func TestParse(t *testing.T) {
	text := "\ufeff# comment\r\n\r\n*.log   \r\n!keep.log\n  \n\\#x\\ \nbuild/\n/a/**/b\n(?i)!X"
	got := Parse("f", []byte(text))
	want := []Rule{
		{Source: "f", Line: 3, Text: "*.log"},
		{Source: "f", Line: 4, Text: "!keep.log"},
		{Source: "f", Line: 6, Text: "\\#x\\ "},
		{Source: "f", Line: 7, Text: "build/"},
		{Source: "f", Line: 8, Text: "/a/**/b"},
		{Source: "f", Line: 9, Text: "(?i)!X"},
	}
	if len(got) != len(want) {
		t.Fatalf("Parse: %d rules, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		g := got[i]
		if g.Source != want[i].Source || g.Line != want[i].Line || g.Text != want[i].Text {
			t.Errorf("rule %d: %q:%d %q, want %q:%d %q", i, g.Source, g.Line, g.Text,
				want[i].Source, want[i].Line, want[i].Text)
		}
	}
	if r := Parse("f", nil); len(r) != 0 {
		t.Errorf("Parse(nil) = %v", r)
	}
	for _, s := range []string{"", "\n\n", "# a\n#b", "   ", "\r\n"} {
		if r := Parse("f", []byte(s)); len(r) != 0 {
			t.Errorf("Parse(%q) = %v, want no rules", s, r)
		}
	}
}

func TestTrimSpaces(t *testing.T) {
	for in, want := range map[string]string{
		"a":       "a",
		"a ":      "a",
		"a  ":     "a",
		"a\\ ":    "a\\ ",
		"a\\  ":   "a\\ ",
		"a\\\\ ":  "a\\\\",
		"a \\ b ": "a \\ b",
		"a  \\":   "a  \\",
		"a \\":    "a \\",
		" ":       "",
		"\\":      "\\",
		"a\t":     "a\t",
	} {
		if got := trimSpaces(in); got != want {
			t.Errorf("trimSpaces(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestDefaults(t *testing.T) {
	d := Defaults()
	want := []string{".DS_Store", "._*", ".Spotlight-V100", ".Trashes", "Thumbs.db", "desktop.ini",
		"$RECYCLE.BIN", "System Volume Information", "~$*", ".~lock.*#", "*.swp", "*.swo", "*.swx",
		".#*", "*.crdownload", "*.part", ".fuse_hidden*", ".nfs*"}
	if len(d) != len(want) {
		t.Fatalf("Defaults: %d rules, want %d", len(d), len(want))
	}
	for i, r := range d {
		if r.Text != want[i] || r.Line != i+1 || r.Source != "(defaults)" {
			t.Errorf("default %d: %q:%d %q, want (defaults):%d %q", i, r.Source, r.Line, r.Text, i+1, want[i])
		}
	}
	d[0].Text = "changed"
	if Defaults()[0].Text != ".DS_Store" {
		t.Error("Defaults returned a shared slice")
	}

	m := New(Defaults())
	// Each default's junk name, matched at any depth and as a directory
	// or not, and a near miss that is not.
	for i, c := range []struct{ junk, miss string }{
		{".DS_Store", "DS_Store"},
		{"._photo.jpg", "_photo.jpg"},
		{".Spotlight-V100", ".Spotlight-V1000"},
		{".Trashes", ".Trash"},
		{"Thumbs.db", "thumbs.db"},
		{"desktop.ini", "Desktop.ini"},
		{"$RECYCLE.BIN", "RECYCLE.BIN"},
		{"System Volume Information", "System Volume"},
		{"~$report.docx", "~report.docx"},
		{".~lock.notes.odt#", ".~lock.notes.odt"},
		{"notes.txt.swp", "notes.swpx"},
		{".notes.swo", "notes.swo.txt"},
		{"x.swx", "x.sw"},
		{".#notes.org", "#notes.org#"},
		{"video.mp4.crdownload", "video.crdownload.mp4"},
		{"video.mp4.part", "video.partial"},
		{".fuse_hidden0000001a00000001", "fuse_hidden1"},
		{".nfs000000000123", "nfs.conf"},
	} {
		for _, dir := range []bool{false, true} {
			for _, p := range []string{c.junk, "a/" + c.junk, "a/b c/d/" + c.junk} {
				got := m.Match(p, dir)
				if !got.Ignored || got.Rule == nil || got.Rule.Line != i+1 {
					t.Errorf("Match(%q, %v) = %+v, want ignored by default %d %q", p, dir, got, i+1, want[i])
				}
			}
			if m.Ignored("a/"+c.miss, dir) {
				t.Errorf("near miss %q (dir %v) ignored", "a/"+c.miss, dir)
			}
		}
	}
}

func TestPrecedence(t *testing.T) {
	user := Parse(".driveignore", []byte("*.log\n!*.part\nsecret/\n"))
	local := Parse("/home/u/.config/ignore", []byte("!debug.log\n"))
	m := New(Defaults(), user, local)
	for _, c := range []struct {
		path    string
		ignored bool
		source  string
		line    int
	}{
		{"a/x.log", true, ".driveignore", 1},
		{"a/debug.log", false, "/home/u/.config/ignore", 1},
		{"a/movie.part", false, ".driveignore", 2}, // the user's "!" overrides a default
		{"a/.DS_Store", true, "(defaults)", 1},
		{"secret/debug.log", true, ".driveignore", 3}, // an ignored directory: no "!" brings it back
		{"a/b.txt", false, "", 0},
	} {
		got := m.Match(c.path, false)
		src, line := "", 0
		if got.Rule != nil {
			src, line = got.Rule.Source, got.Rule.Line
		}
		if got.Ignored != c.ignored || src != c.source || line != c.line {
			t.Errorf("Match(%q) = ignored %v by %q:%d, want %v by %q:%d", c.path, got.Ignored, src, line,
				c.ignored, c.source, c.line)
		}
	}
	// Lists are in increasing precedence: the same rules the other way.
	m = New(local, user)
	if !m.Ignored("a/debug.log", false) {
		t.Error("an earlier list overrode a later one")
	}

	empty := New()
	if !empty.Empty() || empty.Ignored("a", false) || empty.Match("a", true).Rule != nil || empty.DirOnly("a") {
		t.Error("New() is not empty or ignores something")
	}
	if New(nil, []Rule{}).Empty() != true || New(user).Empty() {
		t.Error("Empty wrong")
	}
	var nilMatcher *Matcher
	if !nilMatcher.Empty() || nilMatcher.Ignored("a", false) {
		t.Error("a nil *Matcher is not empty")
	}
}

// A Rule made by hand is compiled from its Text; Match returns a pointer
// to the matcher's copy.
func TestRuleWithoutParse(t *testing.T) {
	rules := []Rule{{Source: "mine", Line: 7, Text: "*.tmp"}, {Text: "!(?i)KEEP.tmp"}}
	m := New(rules)
	rules[0].Text = "changed"
	got := m.Match("a/x.tmp", false)
	if !got.Ignored || got.Rule == nil || got.Rule.Source != "mine" || got.Rule.Line != 7 || got.Rule.Text != "*.tmp" {
		t.Errorf("Match = %+v", got)
	}
	if m.Ignored("keep.TMP", false) {
		t.Error("keep.TMP ignored")
	}
}

func TestDirOnly(t *testing.T) {
	m := New(Parse("t", []byte("build/\n/out/\n*.log\nx/**/tmp/\n!keep/\n")))
	for _, c := range []struct {
		path string
		want bool
	}{
		{"build", true},
		{"a/build", true},
		{"build/x", false}, // the ancestor decides, whatever x is
		{"out", true},
		{"a/out", false},
		{"x.log", false},
		{"x/a/tmp", true},
		{"keep", true}, // matched by a "!" rule as a directory only
		{"other", false},
	} {
		if got := m.DirOnly(c.path); got != c.want {
			t.Errorf("DirOnly(%q) = %v, want %v", c.path, got, c.want)
		}
		if got, exact := m.DirOnly(c.path), m.Match(c.path, false) != m.Match(c.path, true); got != exact {
			t.Errorf("DirOnly(%q) = %v, but Match differs: %v", c.path, got, exact)
		}
	}
	if New(Parse("t", []byte("a\n*.b\n"))).DirOnly("a") {
		t.Error("DirOnly true without a directory rule")
	}
}

// Match does not allocate; with rules that fold case, it makes one
// folded copy of the path.
func TestMatchAllocs(t *testing.T) {
	paths := []string{"a/b/c.jpg", "build/x", "src/x/y", "a/keep.log", strings.Repeat("abc/", 20) + "Ä.JPG"}
	for _, c := range []struct {
		rules string
		most  float64 // allocations per path, for Match and DirOnly
	}{
		{"*.log\n*.JPG\n/Build/\nx/**/y\n!keep.log\n", 0},
		{"*.log\n(?i)*.JPG\n(?i)/Build/\nx/**/y\n!keep.log\n", 2},
	} {
		m := New(Defaults(), Parse("t", []byte(c.rules)))
		n := testing.AllocsPerRun(100, func() {
			for _, p := range paths {
				m.Match(p, false)
				m.DirOnly(p)
			}
		})
		if n > c.most*float64(len(paths)) {
			t.Errorf("rules %q: Match and DirOnly make %v allocations for %d paths; want at most %v each", c.rules, n, len(paths), c.most)
		}
	}
}

// The automaton agrees with a plain backtracking matcher, also when its
// state sets take more than one word (long patterns, or forced).
func TestNFAMatchesBacktracking(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	checked, matched := 0, 0
	for range 3000 {
		toks, text := genTokens(r)
		want := backtrack(toks, text)
		for _, n := range []*nfa{newNFA(toks), newNFAWords(toks, 3)} {
			if got := n.match(text); got != want {
				t.Fatalf("tokens %v, text %q (words %d): match %v, backtracking %v", toks, text, n.words, got, want)
			}
		}
		checked++
		if want {
			matched++
		}
	}
	t.Logf("%d patterns, %d matched", checked, matched)
}

// genTokens makes a pattern of up to 150 tokens and a text made to match
// it, then perhaps spoilt.
func genTokens(r *rand.Rand) ([]token, string) {
	var toks []token
	var text []byte
	for range r.IntN(150) {
		switch x := r.IntN(20); {
		case x == 0:
			toks = append(toks, token{kind: tokStar})
			for range r.IntN(3) {
				text = append(text, "ab"[r.IntN(2)])
			}
		case x == 1:
			toks = append(toks, token{kind: tokAny})
			for range r.IntN(3) {
				text = append(text, "a/"[r.IntN(2)])
			}
		case x < 4:
			toks = append(toks, token{kind: tokAnyDir})
			if r.IntN(2) == 0 {
				for range r.IntN(3) {
					text = append(text, "a/"[r.IntN(2)])
				}
				text = append(text, '/')
			}
		default:
			var t token
			c := "ab/"[r.IntN(3)]
			t.set.add(c)
			if r.IntN(3) == 0 {
				t.set.add("ab"[r.IntN(2)])
			}
			toks = append(toks, t)
			text = append(text, c)
		}
	}
	if len(text) > 0 && r.IntN(2) == 0 {
		text[r.IntN(len(text))] = "ab/"[r.IntN(3)]
	}
	return toks, string(text)
}

// backtrack is the meaning of tokens, written plainly (remembering
// failures, to take polynomial time).
func backtrack(toks []token, s string) bool {
	failed := map[[2]int]bool{}
	var match func(i, j int) bool // toks[i:] matches s[j:]
	match = func(i, j int) bool {
		if i == len(toks) {
			return j == len(s)
		}
		if failed[[2]int{i, j}] {
			return false
		}
		ok := false
		switch toks[i].kind {
		case tokByte:
			ok = j < len(s) && toks[i].set.has(s[j]) && match(i+1, j+1)
		case tokStar:
			for k := j; !ok; k++ {
				ok = match(i+1, k)
				if k == len(s) || s[k] == '/' {
					break
				}
			}
		case tokAny:
			for k := j; k <= len(s) && !ok; k++ {
				ok = match(i+1, k)
			}
		case tokAnyDir:
			ok = match(i+1, j)
			for k := j; k < len(s) && !ok; k++ {
				ok = s[k] == '/' && match(i+1, k+1)
			}
		}
		if !ok {
			failed[[2]int{i, j}] = true
		}
		return ok
	}
	return match(0, 0)
}
