// Package ignore decides which paths of the folder are not synced, from
// ignore files written in git's ignore syntax (gitignore(5)).
//
// It promises that Match decides every path exactly as
// `git check-ignore --no-index` decides it for the same rules as the
// repository's root .gitignore, with core.ignoreCase false: the same
// paths ignored, by the same line, and negations shown as git shows them.
// TestMatchesGitCheckIgnore holds it to that against git itself. That
// includes git's surprises:
//
//   - Matching is on bytes: "?" matches one byte of a multibyte
//     character, a bracket expression one byte ("[ä]" never matches "ä";
//     "[ä]?" does), and the POSIX classes are ASCII ("[[:space:]]" is
//     tab, newline, carriage return and space).
//   - A path in an ignored directory is ignored by the directory's rule,
//     whatever rule comes after; "dir/" then "!dir/file" keeps dir/file
//     ignored by "dir/".
//   - In a pattern with a '/', the part before the first special byte is
//     compared on its own, so a "**" just after it counts as at the start:
//     "x**/y" matches "xy" and "xa/b/y", not only "xa/y".
//   - "**" before an escaped slash ("a/**\/b") matches across directories
//     but cannot match nothing: it matches "a/x/b", not "a/b".
//   - "\/x" never matches (the leading '/' that anchors must be plain),
//     nor does a pattern ending in an unpaired '\'.
//
// One addition to git's syntax: a pattern that starts with "(?i)" (before
// or after a leading "!") matches without regard to case, by Unicode
// simple case folding of each character of the pattern and the path; in
// a bracket expression only ASCII letters are folded. A git pattern that
// starts with a literal "(?i)" is written "\(?i)".
//
// The package does no IO. Match does not allocate (with "(?i)" rules it
// makes one folded copy of the path), and for any pattern takes time
// linear in the length of each name it tries (the path and each of its
// ancestors), where git's matcher can take time exponential in the '*'s
// of a pattern.
package ignore

import (
	"bytes"
	"slices"
	"strings"
	"sync"
)

// Rule is one pattern line of an ignore file.
type Rule struct {
	Source string // where it was read: ".driveignore", a file path, or "(defaults)"
	Line   int    // 1-based line number in Source
	Text   string // the line as written (trailing unescaped spaces removed), e.g. "!build/"

	form *form // Text compiled; New compiles a Rule made without Parse
}

// form is a rule compiled.
type form struct {
	neg     bool // "!": a match un-ignores
	dirOnly bool // trailing "/": matches directories only
	fold    bool // "(?i)": lit and glob are folded, and match folded text
	kind    kind
	ext     bool   // kind baseSuffix with lit a "." and no other "."
	lit     string // see kind
	glob    *nfa   // see kind
}

type kind uint8

const (
	never      kind = iota // matches nothing
	baseLit                // the basename is lit
	baseSuffix             // the basename ends in lit
	basePrefix             // the basename starts with lit
	baseGlob               // the basename starts with lit, and glob matches the rest
	pathLit                // the path is lit
	pathGlob               // the path starts with lit, and glob matches the rest
)

// Parse reads an ignore file's text: one pattern per line in git's ignore
// syntax, plus a "(?i)" prefix (allowed before or after a leading "!")
// that makes the pattern case-insensitive. Blank lines and "#" comments
// are skipped. It never fails: a pattern that can never match (an
// unterminated "[") is kept and never matches, as in git.
//
// As git does, Parse skips a UTF-8 byte order mark at the start, takes
// "\r\n" as a line end, removes trailing spaces unless the last is
// escaped ("\ "), and ends a line at a NUL byte.
func Parse(source string, text []byte) []Rule {
	text = bytes.TrimPrefix(text, []byte("\xef\xbb\xbf"))
	var rules []Rule
	for n := 1; len(text) > 0; n++ {
		line := text
		if i := bytes.IndexByte(text, '\n'); i >= 0 {
			line, text = text[:i], text[i+1:]
		} else {
			text = nil
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		if i := bytes.IndexByte(line, 0); i >= 0 {
			line = line[:i]
		}
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		s := trimSpaces(string(line))
		if s == "" {
			continue
		}
		rules = append(rules, Rule{Source: source, Line: n, Text: s, form: compile(s)})
	}
	return rules
}

// trimSpaces removes the trailing spaces of s that are not escaped with a
// backslash; a backslash escapes the byte after it, so "a\\ " loses its
// space and "a\ " keeps it.
func trimSpaces(s string) string {
	cut := -1 // where the trailing run of spaces starts
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case ' ':
			if cut < 0 {
				cut = i
			}
			continue
		case '\\':
			i++
			if i == len(s) {
				return s
			}
		}
		cut = -1
	}
	if cut >= 0 {
		return s[:cut]
	}
	return s
}

// compile reads one pattern line, trimmed.
func compile(text string) *form {
	f := &form{}
	p := text
	if rest, ok := strings.CutPrefix(p, "(?i)"); ok {
		f.fold, p = true, rest
	}
	if rest, ok := strings.CutPrefix(p, "!"); ok {
		f.neg, p = true, rest
		if rest, ok := strings.CutPrefix(p, "(?i)"); ok && !f.fold {
			f.fold, p = true, rest
		}
	}
	if rest, ok := strings.CutSuffix(p, "/"); ok {
		f.dirOnly, p = true, rest
	}
	switch {
	case p == "":
		// matches no name, as in git
	case !strings.Contains(p, "/"):
		f.compileBase(p)
	default:
		p = strings.TrimPrefix(p, "/")
		// "**/x" with no other '/' is the basename pattern x.
		if rest, ok := strings.CutPrefix(p, "**/"); ok && rest != "" && !strings.Contains(rest, "/") {
			f.compileBase(rest)
			break
		}
		// As git does, compare the part before the first special byte
		// literally and match the rest as a pattern of its own: so a
		// "**" just after that part counts as at the start ("x**/y"
		// matches "xy" and "xa/b/y").
		n := literalLen(p)
		f.lit = f.folded(p[:n])
		if n == len(p) {
			f.kind = pathLit
			break
		}
		if toks, ok := parseGlob(p[n:], f.fold); ok {
			f.kind, f.glob = pathGlob, newNFA(toks)
		}
	}
	return f
}

func (f *form) compileBase(p string) {
	n := literalLen(p)
	switch {
	case n == len(p):
		f.kind, f.lit = baseLit, f.folded(p)
	case p[0] == '*' && literalLen(p[1:]) == len(p)-1:
		f.kind, f.lit = baseSuffix, f.folded(p[1:])
		f.ext = strings.LastIndexByte(f.lit, '.') == 0
	case strings.Trim(p[n:], "*") == "":
		// A basename has no '/': "**" is "*" there.
		f.kind, f.lit = basePrefix, f.folded(p[:n])
	default:
		if toks, ok := parseGlob(p[n:], f.fold); ok {
			f.kind, f.lit, f.glob = baseGlob, f.folded(p[:n]), newNFA(toks)
		}
	}
}

func (f *form) folded(s string) string {
	if !f.fold {
		return s
	}
	return string(appendFold(nil, s))
}

// name is a path in the forms the rules look at.
type name struct {
	path, base, ext string // ext: base from its last '.', or ""
}

func mkName(path, base string) name {
	n := name{path: path, base: base}
	if i := strings.LastIndexByte(base, '.'); i >= 0 {
		n.ext = base[i:]
	}
	return n
}

func (f *form) matches(n *name) bool {
	switch f.kind {
	case baseLit:
		return n.base == f.lit
	case baseSuffix:
		return strings.HasSuffix(n.base, f.lit)
	case basePrefix:
		return strings.HasPrefix(n.base, f.lit)
	case baseGlob:
		return strings.HasPrefix(n.base, f.lit) && f.glob.match(n.base[len(f.lit):])
	case pathLit:
		return n.path == f.lit
	case pathGlob:
		return strings.HasPrefix(n.path, f.lit) && f.glob.match(n.path[len(f.lit):])
	}
	return false
}

const defaultText = `.DS_Store
._*
.Spotlight-V100
.Trashes
Thumbs.db
desktop.ini
$RECYCLE.BIN
System Volume Information
~$*
.~lock.*#
*.swp
*.swo
*.swx
.#*
*.crdownload
*.part
.fuse_hidden*
.nfs*
`

var defaults = sync.OnceValue(func() []Rule { return Parse("(defaults)", []byte(defaultText)) })

// Defaults returns the built-in rules (Source "(defaults)", Line =
// index+1), a fresh slice each call: the files that operating systems,
// editors and browsers leave beside a user's files. Each is a basename
// pattern, so matches at any depth:
//
//	.DS_Store, ._*, .Spotlight-V100, .Trashes, Thumbs.db, desktop.ini,
//	$RECYCLE.BIN, System Volume Information, ~$*, .~lock.*#, *.swp,
//	*.swo, *.swx, .#*, *.crdownload, *.part, .fuse_hidden*, .nfs*
func Defaults() []Rule { return slices.Clone(defaults()) }

// Matcher decides over an ordered list of rules; it is immutable and safe
// for concurrent use.
type Matcher struct {
	rules []Rule
	// Rules found by a map look-up, by the form of the name they look
	// at (plain, or folded for "(?i)" rules); the rest are tried in turn.
	plain, folded index
	rest          []entry // in decreasing order of index
	fold          bool    // some rule is "(?i)"
	dirOnly       bool    // some rule has a trailing "/"
}

// entry is a rule to try, with its index in Matcher.rules.
type entry struct {
	form
	i int
}

// index holds rules whose match is one map look-up: the indexes of the
// rules for a key, in decreasing order.
type index struct {
	base, path, ext map[string][]int32
}

func (x *index) add(f *form, i int32) {
	var m *map[string][]int32
	switch {
	case f.kind == baseLit:
		m = &x.base
	case f.kind == pathLit:
		m = &x.path
	case f.kind == baseSuffix && f.ext:
		m = &x.ext
	default:
		panic("ignore: rule not indexable")
	}
	if *m == nil {
		*m = map[string][]int32{}
	}
	(*m)[f.lit] = append((*m)[f.lit], i)
}

// New returns a matcher over rule lists in increasing precedence: a rule
// of a later list (or later in the same list) overrides an earlier one,
// as a later line does in one git ignore file. New() with no rules
// ignores nothing. A Rule made other than by Parse or Defaults is
// compiled from its Text.
func New(lists ...[]Rule) *Matcher {
	m := &Matcher{}
	for _, l := range lists {
		for _, r := range l {
			if r.form == nil {
				r.form = compile(r.Text)
			}
			m.rules = append(m.rules, r)
		}
	}
	for i := len(m.rules) - 1; i >= 0; i-- {
		f := m.rules[i].form
		m.fold = m.fold || f.fold
		m.dirOnly = m.dirOnly || f.dirOnly
		x := &m.plain
		if f.fold {
			x = &m.folded
		}
		switch {
		case f.kind == never:
		case f.kind == baseLit, f.kind == pathLit, f.kind == baseSuffix && f.ext:
			x.add(f, int32(i))
		default:
			m.rest = append(m.rest, entry{*f, i})
		}
	}
	return m
}

// Empty reports whether the matcher has no rules.
func (m *Matcher) Empty() bool { return m == nil || len(m.rules) == 0 }

// Match is a decision on a path.
type Match struct {
	Ignored bool
	Rule    *Rule // the deciding rule, or nil if no rule matched
}

// Match says whether path (slash-separated, relative to the folder root,
// no leading or trailing slash, never "" or ".") is ignored, and by which
// rule. dir says whether path is a directory. As in git, a path under an
// ignored directory is ignored, by the rule that ignored the (outermost)
// directory, and no "!" rule can bring it back; otherwise the last rule
// that matches decides. Rule is nil when no rule matched; when the
// deciding rule is a "!" rule, Ignored is false and Rule is that rule (as
// `git check-ignore -v` shows negations).
func (m *Matcher) Match(path string, dir bool) Match {
	if m.Empty() {
		return Match{}
	}
	var buf [256]byte
	k, p, f := m.walk(path, buf[:0])
	if k < 0 {
		k = m.last(&p, &f, dir)
	}
	return m.match(k)
}

// match is the decision of rule k (none if k < 0).
func (m *Matcher) match(k int) Match {
	if k < 0 {
		return Match{}
	}
	r := &m.rules[k]
	return Match{Ignored: !r.form.neg, Rule: r}
}

// walk decides path by its ancestors, outermost first, each as a
// directory: it returns the rule that ignores the first one that is
// ignored, or -1 and path itself as a name p (and f, folded, if a rule
// folds). buf is room for the folded path.
func (m *Matcher) walk(path string, buf []byte) (k int, p, f name) {
	var fpath string
	if m.fold {
		fpath = string(appendFold(buf, path))
	}
	i, fi := 0, 0
	for {
		j := strings.IndexByte(path[i:], '/')
		if j < 0 {
			break
		}
		j += i
		p = mkName(path[:j], path[i:j])
		if m.fold {
			fj := fi + strings.IndexByte(fpath[fi:], '/')
			f = mkName(fpath[:fj], fpath[fi:fj])
			fi = fj + 1
		}
		if k := m.last(&p, &f, true); k >= 0 && !m.rules[k].form.neg {
			return k, p, f
		}
		i = j + 1
	}
	p = mkName(path, path[i:])
	if m.fold {
		f = mkName(fpath, fpath[fi:])
	}
	return -1, p, f
}

// last returns the index of the last rule that matches p (f folded) as a
// directory or not, or -1.
func (m *Matcher) last(p, f *name, dir bool) int {
	best := m.plain.last(p, dir, -1, m.rules)
	if m.fold {
		best = m.folded.last(f, dir, best, m.rules)
	}
	for k := range m.rest {
		e := &m.rest[k]
		if e.i <= best {
			break
		}
		if e.dirOnly && !dir {
			continue
		}
		n := p
		if e.fold {
			n = f
		}
		if e.matches(n) {
			return e.i
		}
	}
	return best
}

// last returns the greatest of best and the indexes of x's rules that
// match n.
func (x *index) last(n *name, dir bool, best int, rules []Rule) int {
	if x.base != nil {
		best = first(x.base[n.base], dir, best, rules)
	}
	if x.path != nil {
		best = first(x.path[n.path], dir, best, rules)
	}
	if x.ext != nil && n.ext != "" {
		best = first(x.ext[n.ext], dir, best, rules)
	}
	return best
}

// first returns the first of the decreasing indexes that may match a
// directory or not, if it is greater than best, else best.
func first(idx []int32, dir bool, best int, rules []Rule) int {
	for _, i := range idx {
		if int(i) <= best {
			break
		}
		if dir || !rules[i].form.dirOnly {
			return int(i)
		}
	}
	return best
}

// Ignored is Match(path, dir).Ignored.
func (m *Matcher) Ignored(path string, dir bool) bool { return m.Match(path, dir).Ignored }

// DirOnly reports whether path would be decided differently as a
// directory than as a file: exactly Match(path, false) != Match(path,
// true). Callers that do not know a path's type use it to know whether
// they must find out. It costs about one Match, and nothing when no rule
// has a trailing "/".
func (m *Matcher) DirOnly(path string) bool {
	if m.Empty() || !m.dirOnly {
		return false
	}
	var buf [256]byte
	k, p, f := m.walk(path, buf[:0])
	if k >= 0 {
		return false
	}
	return m.last(&p, &f, false) != m.last(&p, &f, true)
}
