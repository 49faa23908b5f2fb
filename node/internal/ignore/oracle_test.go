package ignore

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestMatchesGitCheckIgnore holds Match to git: it generates ignore files
// and trees of files and directories, writes them to disk, asks
// `git check-ignore -v -n --no-index` about every path, and compares the
// verdict and the deciding line with Match's.
//
// To check thousands of ignore files in a few hundred runs of git, most
// runs put one ignore file in each of many subdirectories (d0/.gitignore,
// d1/.gitignore, ...) of an otherwise empty tree, and compare each with
// a Matcher over that file alone, on the paths below its directory: git
// applies a subdirectory's .gitignore to the paths under it as the root's
// to the whole tree. The other runs put a single file at the root, as
// Match is used.
func TestMatchesGitCheckIgnore(t *testing.T) {
	git, err := exec.LookPath("git")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("git is needed to check the matcher against git check-ignore")
		}
		t.Skip("no git to check the matcher against: ", err)
	}
	seeds := 4
	if n, err := strconv.Atoi(os.Getenv("IGNORE_ORACLE_SEEDS")); err == nil && n > 0 {
		seeds = n // a longer search for a disagreement
	}
	const (
		rootRuns     = 20 // per seed, one ignore file at the root
		groupRuns    = 25 // per seed, groupSize ignore files in subdirectories
		groupSize    = 24
		reportFailed = 20
	)
	base := scratchDir(t)
	home := filepath.Join(base, "home")
	env := []string{"HOME=" + home, "XDG_CONFIG_HOME=" + home, "GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_GLOBAL=" + os.DevNull, "LC_ALL=C"}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GIT_") && !strings.HasPrefix(kv, "HOME=") &&
			!strings.HasPrefix(kv, "XDG_CONFIG_HOME=") && !strings.HasPrefix(kv, "LC_ALL=") {
			env = append(env, kv)
		}
	}

	var (
		mu                   sync.Mutex
		cases, paths, failed int
		ignored, negated     int
		runs                 int
	)
	fail := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		failed++
		if failed <= reportFailed {
			t.Errorf(format, args...)
		}
	}

	var wg sync.WaitGroup
	for seed := range uint64(seeds) {
		if seed >= 4 && seed%4 == 0 {
			wg.Wait() // a few repositories at a time
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(seed, 0x1e5))
			// One repository per seed; each run has a work tree of its own.
			gitDir := filepath.Join(base, fmt.Sprintf("repo%d", seed))
			cmd, cancel := gitCmd(git, env, "", "", "init", "-q", gitDir)
			out, err := cmd.CombinedOutput()
			cancel()
			if err != nil {
				fail("git init: %v\n%s", err, out)
				return
			}
			gitDir = filepath.Join(gitDir, ".git")
			os.WriteFile(filepath.Join(gitDir, "info", "exclude"), nil, 0o644)

			for run := range rootRuns + groupRuns {
				n := 1
				if run >= rootRuns {
					n = groupSize
				}
				work := filepath.Join(base, fmt.Sprintf("w%d-%d", seed, run))
				var dirs []string // where each case's .gitignore is, "" for the root
				var gen []oracleCase
				var stdin bytes.Buffer
				for k := range n {
					c := genOracleCase(r)
					dir := ""
					if n > 1 {
						dir = fmt.Sprintf("d%d", k)
					}
					if err := c.write(filepath.Join(work, dir)); err != nil {
						fail("writing case: %v", err)
						return
					}
					for _, nd := range c.nodes {
						stdin.WriteString(filepath.ToSlash(filepath.Join(dir, nd.path)))
						stdin.WriteByte(0)
					}
					dirs, gen = append(dirs, dir), append(gen, c)
				}
				recs, err := checkIgnore(git, env, gitDir, work, stdin.Bytes())
				if err != nil {
					fail("seed %d run %d: %v", seed, run, err)
					return
				}
				var nPaths, nIgnored, nNegated int
				for k, c := range gen {
					m := New(Parse(".gitignore", c.text))
					src := filepath.ToSlash(filepath.Join(dirs[k], ".gitignore"))
					for _, nd := range c.nodes {
						rec := recs[0]
						recs = recs[1:]
						nPaths++
						got := m.Match(nd.path, nd.dir)
						if rec.pattern == "" {
							if got.Rule != nil {
								fail("seed %d run %d: %q (dir %v): git: no rule; Match: line %d %q, ignored %v\n%s",
									seed, run, nd.path, nd.dir, got.Rule.Line, got.Rule.Text, got.Ignored, c.describe())
							}
							continue
						}
						wantIgnored := !strings.HasPrefix(rec.pattern, "!")
						if wantIgnored {
							nIgnored++
						} else {
							nNegated++
						}
						if got.Rule == nil || got.Rule.Line != rec.line || got.Rule.Text != rec.pattern ||
							got.Ignored != wantIgnored || rec.source != src {
							gotRule := "no rule"
							if got.Rule != nil {
								gotRule = fmt.Sprintf("line %d %q", got.Rule.Line, got.Rule.Text)
							}
							fail("seed %d run %d: %q (dir %v): git: %s line %d %q; Match: %s, ignored %v\n%s",
								seed, run, nd.path, nd.dir, rec.source, rec.line, rec.pattern, gotRule, got.Ignored, c.describe())
						}
					}
				}
				mu.Lock()
				runs++
				cases += n
				paths += nPaths
				ignored += nIgnored
				negated += nNegated
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	t.Logf("checked %d ignore files, %d paths (%d ignored, %d decided by a \"!\" rule) in %d runs of git check-ignore",
		cases, paths, ignored, negated, runs)
}

// scratchDir returns a directory removed after the test, on a file system
// in memory where there is one (/dev/shm): the test writes some 20,000
// files and directories, which takes a few ms each on some disks.
func scratchDir(t *testing.T) string {
	if d, err := os.MkdirTemp("/dev/shm", "ignore-test"); err == nil {
		t.Cleanup(func() { os.RemoveAll(d) })
		return d
	}
	return t.TempDir()
}

// gitCmd is git with args in the environment env, in the work tree dir of
// the repository gitDir if that is not "", with a time limit.
func gitCmd(git string, env []string, gitDir, dir string, args ...string) (*exec.Cmd, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	cmd := exec.CommandContext(ctx, git, args...)
	cmd.Env = env
	if gitDir != "" {
		cmd.Env = append(slices.Clip(env), "GIT_DIR="+gitDir, "GIT_WORK_TREE="+dir)
	}
	cmd.Dir = dir
	return cmd, cancel
}

type checkRecord struct {
	source, pattern, path string
	line                  int
}

// checkIgnore runs git check-ignore over the NUL-terminated paths of
// stdin in the work tree dir.
func checkIgnore(git string, env []string, gitDir, dir string, stdin []byte) ([]checkRecord, error) {
	cmd, cancel := gitCmd(git, env, gitDir, dir, "-c", "core.ignoreCase=false",
		"check-ignore", "-v", "-n", "--no-index", "--stdin", "-z")
	defer cancel()
	cmd.Stdin = bytes.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	// Status 1 means no path was ignored; with -n every path is listed.
	if err != nil {
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
			return nil, fmt.Errorf("git check-ignore: %v\n%s", err, stderr.Bytes())
		}
	}
	fields := strings.Split(string(out), "\x00")
	if len(fields) > 0 && fields[len(fields)-1] == "" {
		fields = fields[:len(fields)-1]
	}
	if len(fields)%4 != 0 {
		return nil, fmt.Errorf("git check-ignore: %d fields, not records of 4", len(fields))
	}
	want := bytes.Split(bytes.TrimSuffix(stdin, []byte{0}), []byte{0})
	var recs []checkRecord
	for i := 0; i < len(fields); i += 4 {
		rec := checkRecord{source: fields[i], pattern: fields[i+2], path: fields[i+3]}
		if fields[i+1] != "" {
			if _, err := fmt.Sscan(fields[i+1], &rec.line); err != nil {
				return nil, fmt.Errorf("git check-ignore: line %q: %v", fields[i+1], err)
			}
		}
		recs = append(recs, rec)
	}
	if len(recs) != len(want) {
		return nil, fmt.Errorf("git check-ignore: %d records for %d paths", len(recs), len(want))
	}
	for i, rec := range recs {
		if rec.path != string(want[i]) {
			return nil, fmt.Errorf("git check-ignore: record %d is for %q, not %q", i, rec.path, want[i])
		}
	}
	return recs, nil
}

type oracleNode struct {
	path string
	dir  bool
}

// oracleCase is an ignore file and a tree to check against it.
type oracleCase struct {
	text  []byte
	nodes []oracleNode // parents before children
}

func (c oracleCase) write(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, ".gitignore"), c.text, 0o644); err != nil {
		return err
	}
	for _, n := range c.nodes {
		p := filepath.Join(dir, filepath.FromSlash(n.path))
		var err error
		if n.dir {
			err = os.Mkdir(p, 0o755)
		} else {
			err = os.WriteFile(p, nil, 0o644)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (c oracleCase) describe() string {
	var b strings.Builder
	for i, l := range strings.SplitAfter(string(c.text), "\n") {
		if l != "" {
			fmt.Fprintf(&b, "\t%3d %q\n", i+1, l)
		}
	}
	return b.String()
}

// Names for the trees: ordinary ones, ones the patterns' special bytes
// appear in, and ones in other scripts (and bytes that are not UTF-8).
var oracleAtoms = []string{
	"a", "b", "c", "ab", "abc", "bc", "foo", "Foo", "FOO", "bar", "foo.txt", "foo.TXT",
	"a.log", "b.LOG", "keep.log", "x.tar.gz", ".hidden", ".h", "x.y.z", "build", "Build",
	"node_modules", "dir", "sub", "src", "vendor", "out", "tmp", "a1", "9", "A9", "_u",
	"ä", "Ä", "a\u0308", "日本", "日本語.txt", "naïve", "ſ", "K", "ΣΑΣ", "σας",
	"with space", "trail ", " lead", "a  b", "#hash", "!bang", "\\", "a\\b", "a*b", "q?",
	"[x]", "[", "]", "a]b", "-", "x-y", "^", "{a,b}", "(?i)x", "tab\there", "v\vt", "f\ff",
	"cr\rx", "\x7f", "\xe9t\xe9", "\xff", "~$doc.docx", ".~lock.a.odt#", "Thumbs.db",
	".DS_Store", "x.swp", "..a", "a..", "...",
	// long enough for a pattern of more than 64 states
	strings.Repeat("ab-", 30), strings.Repeat("x", 70) + ".txt", strings.Repeat("日本", 30),
}

const oracleAlphabet = "abcAB019._- *?[]!^\\#:äé日\t\v"

func genName(r *rand.Rand) string {
	for {
		var s string
		if r.IntN(3) == 0 {
			runes := []rune(oracleAlphabet)
			var b strings.Builder
			for range 1 + r.IntN(5) {
				b.WriteRune(runes[r.IntN(len(runes))])
			}
			s = b.String()
		} else {
			s = oracleAtoms[r.IntN(len(oracleAtoms))]
		}
		// Names git or the file system treat apart; and a leading ':'
		// is pathspec magic to git check-ignore.
		if s == "." || s == ".." || s == ".git" || s == ".gitignore" || strings.HasPrefix(s, ":") ||
			strings.ContainsAny(s, "/\x00") {
			continue
		}
		return s
	}
}

func genOracleCase(r *rand.Rand) oracleCase {
	var c oracleCase
	// The tree: each new entry goes under the root or a directory so
	// far, mostly a shallow one.
	dirs := []string{""}
	seen := map[string]bool{}
	for range 6 + r.IntN(20) {
		parent := dirs[r.IntN(len(dirs))]
		if r.IntN(2) == 0 {
			parent = dirs[r.IntN(min(len(dirs), 4))]
		}
		if strings.Count(parent, "/") >= 4 {
			continue
		}
		p := genName(r)
		if parent != "" {
			p = parent + "/" + p
		}
		if seen[p] {
			continue
		}
		seen[p] = true
		dir := r.IntN(5) < 2
		c.nodes = append(c.nodes, oracleNode{p, dir})
		if dir {
			dirs = append(dirs, p)
		}
	}
	if len(c.nodes) == 0 {
		c.nodes = append(c.nodes, oracleNode{"a", false})
	}

	// The ignore file.
	eol := "\n"
	if r.IntN(8) == 0 {
		eol = "\r\n"
	}
	var lines []string
	if r.IntN(20) == 0 {
		lines = append(lines, "\ufeff"+genPattern(r, c.nodes))
	}
	for range 1 + r.IntN(12) {
		switch r.IntN(20) {
		case 0:
			lines = append(lines, "")
		case 1:
			lines = append(lines, "# "+genName(r))
		case 2:
			lines = append(lines, "   ")
		case 3, 4:
			// A directory and a "!" rule for something in it: the
			// "!" cannot bring back what the directory's rule ignores.
			d := c.nodes[r.IntN(len(c.nodes))]
			if !d.dir {
				d = oracleNode{path.Dir(d.path), true}
				if d.path == "." {
					continue
				}
			}
			lines = append(lines, shapePattern(r, d.path, true))
			var under []string
			for _, n := range c.nodes {
				if strings.HasPrefix(n.path, d.path+"/") {
					under = append(under, n.path)
				}
			}
			if len(under) > 0 {
				lines = append(lines, "!"+shapePattern(r, under[r.IntN(len(under))], false))
			}
		default:
			lines = append(lines, genPattern(r, c.nodes))
		}
	}
	text := strings.Join(lines, eol)
	if r.IntN(4) != 0 {
		text += eol
	}
	c.text = []byte(text)
	return c
}

// genPattern makes a pattern line after a path of the tree, or of random
// bytes.
func genPattern(r *rand.Rand, nodes []oracleNode) string {
	if r.IntN(12) == 0 {
		const junk = "ab*?[]!^-:/\\ #.äa[:alpha:]"
		var b strings.Builder
		for range 1 + r.IntN(8) {
			b.WriteByte(junk[r.IntN(len(junk))])
		}
		return escapeFold(b.String())
	}
	n := nodes[r.IntN(len(nodes))]
	p := shapePattern(r, n.path, n.dir)
	switch r.IntN(8) {
	case 0:
		p = "!" + p
	case 1:
		p += "   "
	}
	return escapeFold(p)
}

// escapeFold escapes a "(?i)" at the start of p (after any "!"), which
// is literal to git but a flag to Parse.
func escapeFold(p string) string {
	neg, rest := "", p
	if strings.HasPrefix(rest, "!") {
		neg, rest = "!", rest[1:]
	}
	if strings.HasPrefix(rest, "(?i)") {
		return neg + `\` + rest
	}
	return p
}

// shapePattern makes a pattern that matches path, or nearly: a basename,
// an anchored path, "**" in some place, and the names in it mutated.
func shapePattern(r *rand.Rand, path string, dir bool) string {
	comps := strings.Split(path, "/")
	for i := range comps {
		comps[i] = mutateName(r, comps[i])
	}
	var p string
	switch r.IntN(12) {
	case 0, 1, 2, 3:
		p = comps[len(comps)-1]
	case 4, 5:
		p = strings.Join(comps, "/")
	case 6:
		p = "/" + strings.Join(comps, "/")
	case 7:
		p = "**/" + strings.Join(comps[r.IntN(len(comps)):], "/")
	case 8:
		k := 1 + r.IntN(len(comps))
		p = strings.Join(comps[:k], "/") + []string{"/**", "/**/", "/*", "**", "/**/*"}[r.IntN(5)]
	case 9:
		k := r.IntN(len(comps))
		stars := []string{"**", "*", "***", "?*", "**/**"}[r.IntN(5)]
		p = strings.Join(slices.Concat(comps[:k], []string{stars}, comps[k+1:]), "/")
	case 10:
		// "**" right after the literal part of a name: git compares the
		// part before the first special byte on its own.
		k := r.IntN(len(comps))
		c := comps[k]
		cut := r.IntN(len(c) + 1)
		head := strings.Join(comps[:k], "/")
		if head != "" {
			head += "/"
		}
		tail := c[cut:]
		if k2 := k + 1 + r.IntN(len(comps)-k); k2 < len(comps) {
			tail = "/" + strings.Join(comps[k2:], "/")
		}
		p = head + c[:cut] + "**" + tail
	case 11:
		p = strings.Join(comps[r.IntN(len(comps)):], "/")
	}
	if r.IntN(6) == 0 {
		// Escape some slashes: "\/" is a '/' too, but no longer makes
		// a "**" before it skippable.
		var b strings.Builder
		for i := 0; i < len(p); i++ {
			if p[i] == '/' && i > 0 && p[i-1] != '\\' && r.IntN(2) == 0 {
				b.WriteByte('\\')
			}
			b.WriteByte(p[i])
		}
		p = b.String()
	}
	if dir && r.IntN(3) == 0 || !dir && r.IntN(12) == 0 {
		p += "/"
	}
	if strings.HasPrefix(p, "#") || strings.HasPrefix(p, "!") {
		if r.IntN(4) != 0 {
			p = `\` + p
		}
	}
	return escapeFold(p)
}

// mutateName makes a pattern for the name s: mostly s, with some bytes
// made wildcards, bracket expressions or escapes, or changed.
func mutateName(r *rand.Rand, s string) string {
	var b strings.Builder
	stars := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		last := i == len(s)-1
		x := r.IntN(100)
		if x >= 6 && x < 14 {
			// git's matcher takes time exponential in the stars of a
			// pattern that nearly matches a long name: git check-ignore
			// ran over 30 s on 15 '*' and a name of 74 'x's.
			if stars++; stars > 3 {
				x = 100
			}
		}
		switch {
		case x < 6:
			b.WriteByte('?')
		case x < 12:
			b.WriteByte('*')
		case x < 14:
			b.WriteString("**")
		case x < 22:
			b.WriteString(genClass(r, c, r.IntN(4) != 0))
		case x < 26:
			b.WriteByte('\\')
			b.WriteByte(c)
		case x < 29:
			if 'a' <= c && c <= 'z' {
				c -= 'a' - 'A'
			} else if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			b.WriteByte(c)
		case x < 30:
			// drop it
		default:
			switch {
			case strings.IndexByte(`*?[\`, c) >= 0:
				b.WriteByte('\\')
			case c == ' ' && last && r.IntN(3) != 0:
				b.WriteByte('\\')
			}
			b.WriteByte(c)
		}
	}
	if b.Len() == 0 {
		return "*"
	}
	return b.String()
}

// genClass makes a bracket expression that accepts c (with in) or not,
// mostly; or one of random parts.
func genClass(r *rand.Rand, c byte, in bool) string {
	if r.IntN(4) == 0 {
		return genJunkClass(r, c)
	}
	lit := func(c byte) string {
		if c == ']' || c == '\\' || c == '[' || c == '!' || c == '^' || c == '-' {
			return `\` + string(c)
		}
		return string(c)
	}
	var posix []string
	for _, name := range posixNames {
		if posixClass(name)(c) {
			posix = append(posix, name)
		}
	}
	other := byte('a' + r.IntN(26))
	if other == c {
		other = '0'
	}
	if in {
		switch r.IntN(9) {
		case 0:
			return "[" + lit(c) + "]"
		case 1:
			if c > 0 && c < 0xff {
				return "[" + lit(c-1) + "-" + lit(c+1) + "]"
			}
			return "[" + lit(c) + "-" + lit(c) + "]"
		case 2:
			if len(posix) > 0 {
				return "[[:" + posix[r.IntN(len(posix))] + ":]" + lit(other) + "]"
			}
			return "[[:alpha:]" + lit(c) + "]"
		case 3:
			return "[!" + lit(other) + "]"
		case 4:
			return "[^" + lit(other) + "-" + lit(other) + "]"
		case 5:
			return "[]" + lit(c) + "]"
		case 6:
			return "[" + lit(other) + lit(c) + "-]"
		case 7:
			// A "[:" that is no class: a literal '[' and ':'.
			return "[[:" + lit(c) + "]"
		default:
			return "[\\" + string(c) + "]"
		}
	}
	switch r.IntN(9) {
	case 8:
		if c >= 2 && c < 0xff {
			// A '-' just after a range is literal: c is not in it.
			return "[" + lit(c-2) + "-" + lit(c-1) + "-" + lit(c+1) + "]"
		}
		return "[!" + lit(c) + "]"
	case 0:
		return "[!" + lit(c) + "]"
	case 1:
		return "[^" + lit(c) + lit(other) + "]"
	case 2:
		return "[" + lit(other) + "]"
	case 3:
		return "[[:bogus:]]"
	case 4:
		return "[" + lit(c) // unterminated
	case 5:
		return "[z-a" + lit(other) + "]"
	case 6:
		if len(posix) > 0 {
			return "[![:" + posix[r.IntN(len(posix))] + ":]]"
		}
		return "[[:alnum:]]"
	default:
		return "[!]" + lit(c) + "]"
	}
}

var posixNames = []string{"alnum", "alpha", "blank", "cntrl", "digit", "graph", "lower", "print", "punct", "space", "upper", "xdigit"}

// genJunkClass makes a bracket expression of random parts, around c.
func genJunkClass(r *rand.Rand, c byte) string {
	parts := []string{string(c), string(c), string(c + 1), string(c - 1), "-", "-", "]", "[", `\`, "!", "^",
		":", "[:", ":]", "a", "z", "0", `\-`, `\]`, "/"}
	var b strings.Builder
	b.WriteByte('[')
	if r.IntN(3) == 0 {
		b.WriteString([]string{"!", "^"}[r.IntN(2)])
	}
	for range 1 + r.IntN(5) {
		if r.IntN(5) == 0 {
			b.WriteString("[:" + posixNames[r.IntN(len(posixNames))] + ":]")
		} else {
			b.WriteString(parts[r.IntN(len(parts))])
		}
	}
	if r.IntN(10) != 0 {
		b.WriteByte(']')
	}
	return b.String()
}
