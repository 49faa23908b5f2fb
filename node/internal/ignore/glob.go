package ignore

import (
	"math/bits"
	"slices"
	"strings"
)

// A glob is compiled into a sequence of tokens and then into a
// bit-parallel automaton (nfa), so that matching takes time linear in the
// length of the text whatever the pattern: a pattern read from a synced
// ignore file cannot make the matcher backtrack exponentially.

// byteSet is a set of byte values.
type byteSet [4]uint64

func (s *byteSet) add(c byte)      { s[c>>6] |= 1 << (c & 63) }
func (s *byteSet) has(c byte) bool { return s[c>>6]>>(c&63)&1 != 0 }

func (s *byteSet) addRange(lo, hi byte) {
	for c := int(lo); c <= int(hi); c++ {
		s.add(byte(c))
	}
}

func (s *byteSet) invert() {
	for i := range s {
		s[i] = ^s[i]
	}
}

// addFunc adds every byte for which f holds.
func (s *byteSet) addFunc(f func(c byte) bool) {
	for c := 0; c < 256; c++ {
		if f(byte(c)) {
			s.add(byte(c))
		}
	}
}

type tokKind uint8

const (
	tokByte   tokKind = iota // one byte of set
	tokStar                  // "*": any run of bytes other than '/'
	tokAny                   // "**" not followed by '/': any run of bytes
	tokAnyDir                // "**/": nothing, or any run of bytes ending in '/'
)

type token struct {
	kind tokKind
	set  byteSet // for tokByte
}

// isSpecial reports whether c is one of the bytes that make a pattern a
// glob rather than a literal.
func isSpecial(c byte) bool { return c == '*' || c == '?' || c == '[' || c == '\\' }

// literalLen is the length of the prefix of s without special bytes.
func literalLen(s string) int {
	for i := 0; i < len(s); i++ {
		if isSpecial(s[i]) {
			return i
		}
	}
	return len(s)
}

// parseGlob turns s into tokens. Matching is always with '/' special:
// '*', '?' and bracket expressions (even "[/]") never match a '/', and
// only "**" bounded by '/' or the ends of s matches across directories (a
// basename pattern has no '/', nor does a basename, so the same rules
// serve it). ok is false
// for a pattern that can never match: one that ends in an unpaired '\',
// has an unterminated '[' or names an unknown "[:class:]".
//
// With fold, literal text is case-folded (see foldRune) and bracket
// expressions accept both cases of an ASCII letter; the text matched must
// then be folded too.
func parseGlob(s string, fold bool) (toks []token, ok bool) {
	var lit []byte // literal bytes not yet turned into tokens
	flush := func() {
		if fold {
			lit = appendFold(nil, string(lit))
		}
		for _, c := range lit {
			t := token{kind: tokByte}
			t.set.add(c)
			toks = append(toks, t)
		}
		lit = lit[:0]
	}
	for i := 0; i < len(s); {
		switch c := s[i]; c {
		case '\\':
			if i+1 == len(s) {
				return nil, false
			}
			lit = append(lit, s[i+1])
			i += 2
		case '?':
			flush()
			t := token{kind: tokByte}
			t.set.invert()
			t.set[0] &^= 1 << '/'
			toks = append(toks, t)
			i++
		case '[':
			flush()
			set, neg, n, good := parseClass(s[i:])
			if !good {
				return nil, false
			}
			if fold { // before negation: "[!a]" matches neither case
				for c := byte('A'); c <= 'Z'; c++ {
					if set.has(c) || set.has(c+'a'-'A') {
						set.add(c)
						set.add(c + 'a' - 'A')
					}
				}
			}
			if neg {
				set.invert()
			}
			set[0] &^= 1 << '/'
			toks = append(toks, token{kind: tokByte, set: set})
			i += n
		case '*':
			flush()
			j := i
			for j < len(s) && s[j] == '*' {
				j++
			}
			// Two or more stars are "**" only between slashes (or the
			// ends of s); the slash after may be written "\/", but then
			// the "**" must be followed by a slash, not skip it.
			double := j-i >= 2 && (i == 0 || s[i-1] == '/')
			switch {
			case double && j == len(s):
				toks = append(toks, token{kind: tokAny})
			case double && s[j] == '/':
				toks = append(toks, token{kind: tokAnyDir})
				j++
			case double && strings.HasPrefix(s[j:], `\/`):
				toks = append(toks, token{kind: tokAny})
			default:
				toks = append(toks, token{kind: tokStar})
			}
			i = j
		default:
			lit = append(lit, c)
			i++
		}
	}
	flush()
	return toks, true
}

var slashSet = func() (s byteSet) { s.add('/'); return s }()

// parseClass reads the bracket expression at the start of s ("[...]") and
// returns the bytes it lists, whether it is negated, and its length. A
// '!' or '^' first negates it; a ']' first (after any negation) is literal; "\x" is a literal x;
// "a-z" is a range unless '-' is first, last or just after a range or
// class; "[:name:]" is a POSIX class of ASCII bytes, and a "[:" without
// a ":]" before the next ']' is a literal '['.
func parseClass(s string) (set byteSet, neg bool, n int, ok bool) {
	i := 1
	if i < len(s) && (s[i] == '!' || s[i] == '^') {
		neg = true
		i++
	}
	prev := -1 // the single byte just added, which may start a range
	for first := true; ; first = false {
		if i >= len(s) {
			return set, false, 0, false
		}
		c := s[i]
		switch {
		case c == ']' && !first:
			return set, neg, i + 1, true
		case c == '\\':
			if i+1 >= len(s) {
				return set, false, 0, false
			}
			set.add(s[i+1])
			prev = int(s[i+1])
			i += 2
		case c == '-' && prev >= 0 && i+1 < len(s) && s[i+1] != ']':
			hi := s[i+1]
			i += 2
			if hi == '\\' {
				if i >= len(s) {
					return set, false, 0, false
				}
				hi = s[i]
				i++
			}
			if byte(prev) <= hi {
				set.addRange(byte(prev), hi)
			}
			prev = -1
		case c == '[' && i+1 < len(s) && s[i+1] == ':':
			end := strings.IndexByte(s[i+2:], ']')
			if end < 0 {
				return set, false, 0, false
			}
			name := s[i+2 : i+2+end]
			if name == "" || name[len(name)-1] != ':' {
				set.add('[') // not a class: a literal '[', then go on
				prev = '['
				i++
				continue
			}
			f := posixClass(name[:len(name)-1])
			if f == nil {
				return set, false, 0, false
			}
			set.addFunc(f)
			prev = -1
			i += 2 + end + 1
		default:
			set.add(c)
			prev = int(c)
			i++
		}
	}
}

// posixClass returns the test of the named class, in the C locale and
// ASCII only; "space" is tab, newline, carriage return and space (not
// vertical tab nor form feed), as in git.
func posixClass(name string) func(c byte) bool {
	switch name {
	case "alnum":
		return func(c byte) bool { return isAlpha(c) || isDigit(c) }
	case "alpha":
		return isAlpha
	case "blank":
		return func(c byte) bool { return c == ' ' || c == '\t' }
	case "cntrl":
		return func(c byte) bool { return c < ' ' || c == 0x7f }
	case "digit":
		return isDigit
	case "graph":
		return func(c byte) bool { return c > ' ' && c < 0x7f }
	case "lower":
		return func(c byte) bool { return 'a' <= c && c <= 'z' }
	case "print":
		return func(c byte) bool { return c >= ' ' && c < 0x7f }
	case "punct":
		return func(c byte) bool { return c > ' ' && c < 0x7f && !isAlpha(c) && !isDigit(c) }
	case "space":
		return func(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }
	case "upper":
		return func(c byte) bool { return 'A' <= c && c <= 'Z' }
	case "xdigit":
		return func(c byte) bool { return isDigit(c) || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F' }
	}
	return nil
}

func isAlpha(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }
func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// nfa is a pattern's automaton. State i means "tokens before i matched";
// the state after the last token accepts. A set of states is a bit set of
// words uint64s, and one byte of text moves every state at once.
type nfa struct {
	// what every match has, to turn most texts away without a step: a
	// length, a literal ending, a last byte of a set
	minLen  int
	suffix  string
	last    byteSet
	hasLast bool

	words int
	final int
	class [256]uint8 // bytes the pattern treats alike share a class
	// per class, the states that consume a byte of the class and move on
	step []uint64
	// the states that consume a byte and stay: on a byte other than '/',
	// on '/'
	loop, loopSlash []uint64
	// the states that may move on without a byte to the next state, to
	// the third one on
	eps1, eps3 []uint64
}

func newNFA(toks []token) *nfa { return newNFAWords(toks, 1) }

// newNFAWords is newNFA with sets of at least minWords words (to test
// the general code on short patterns).
func newNFAWords(toks []token, minWords int) *nfa {
	// "**/" takes three states: one that moves on without a byte to the
	// run or past the '/', the run, and its '/'.
	nstates := 0
	for _, t := range toks {
		nstates++
		if t.kind == tokAnyDir {
			nstates += 2
		}
	}
	w := max((nstates+1+63)/64, minWords)
	n := &nfa{
		suffix:    literalSuffix(toks),
		hasLast:   len(toks) > 0 && toks[len(toks)-1].kind == tokByte,
		words:     w,
		final:     nstates,
		loop:      make([]uint64, w),
		loopSlash: make([]uint64, w),
		eps1:      make([]uint64, w),
		eps3:      make([]uint64, w),
	}
	set := func(v []uint64, i int) { v[i/64] |= 1 << (i % 64) }
	var accepts []byteSet // by state; consuming states only
	var consuming []int
	st := 0
	for _, t := range toks {
		switch t.kind {
		case tokByte:
			accepts = append(accepts, t.set)
			consuming = append(consuming, st)
			n.minLen++
		case tokStar:
			set(n.loop, st)
			set(n.eps1, st)
		case tokAny:
			set(n.loop, st)
			set(n.loopSlash, st)
			set(n.eps1, st)
		case tokAnyDir:
			set(n.eps1, st)
			set(n.eps3, st)
			st++
			set(n.loop, st)
			set(n.loopSlash, st)
			set(n.eps1, st)
			st++
			accepts = append(accepts, slashSet)
			consuming = append(consuming, st)
		}
		st++
	}
	if n.hasLast {
		n.last = toks[len(toks)-1].set
	}
	// Group the 256 bytes by the states they move.
	ids := map[string]uint8{}
	row := make([]uint64, w)
	for c := 0; c < 256; c++ {
		clear(row)
		for k, s := range accepts {
			if s.has(byte(c)) {
				set(row, consuming[k])
			}
		}
		key := wordsKey(row)
		id, seen := ids[key]
		if !seen {
			id = uint8(len(ids))
			ids[key] = id
			n.step = append(n.step, row...)
		}
		n.class[c] = id
	}
	return n
}

func wordsKey(v []uint64) string {
	b := make([]byte, 0, 8*len(v))
	for _, x := range v {
		for k := 0; k < 8; k++ {
			b = append(b, byte(x>>(8*k)))
		}
	}
	return string(b)
}

// literalSuffix returns the bytes that the last tokens each match alone.
func literalSuffix(toks []token) string {
	var b []byte
	for i := len(toks) - 1; i >= 0 && toks[i].kind == tokByte; i-- {
		c, ok := toks[i].set.only()
		if !ok {
			break
		}
		b = append(b, c)
	}
	slices.Reverse(b)
	return string(b)
}

// only returns the byte of a set of one.
func (s *byteSet) only() (byte, bool) {
	n, c := 0, 0
	for i, w := range s {
		n += bits.OnesCount64(w)
		if w != 0 {
			c = 64*i + bits.TrailingZeros64(w)
		}
	}
	return byte(c), n == 1
}

// match reports whether the pattern matches all of s.
func (n *nfa) match(s string) bool {
	if len(s) < n.minLen || !strings.HasSuffix(s, n.suffix) ||
		n.hasLast && (s == "" || !n.last.has(s[len(s)-1])) {
		return false
	}
	if n.words == 1 {
		return n.match1(s)
	}
	return n.matchN(s)
}

func (n *nfa) match1(s string) bool {
	loop, loopSlash, e1, e3 := n.loop[0], n.loopSlash[0], n.eps1[0], n.eps3[0]
	d := closure1(1, e1, e3)
	for i := 0; i < len(s); i++ {
		c := s[i]
		l := loop
		if c == '/' {
			l = loopSlash
		}
		d = (d&n.step[n.class[c]])<<1 | d&l
		if d == 0 {
			return false
		}
		if d&(e1|e3) != 0 {
			d = closure1(d, e1, e3)
		}
	}
	return d>>n.final&1 != 0
}

func closure1(d, e1, e3 uint64) uint64 {
	for {
		x := d | (d&e1)<<1 | (d&e3)<<3
		if x == d {
			return d
		}
		d = x
	}
}

func (n *nfa) matchN(s string) bool {
	w := n.words
	var buf [16]uint64
	var d, x []uint64
	if 2*w <= len(buf) {
		d, x = buf[:w], buf[w:2*w]
	} else {
		d, x = make([]uint64, w), make([]uint64, w)
	}
	d[0] = 1
	n.closure(d, x)
	for i := 0; i < len(s); i++ {
		c := s[i]
		l := n.loop
		if c == '/' {
			l = n.loopSlash
		}
		step := n.step[int(n.class[c])*w : int(n.class[c])*w+w]
		var carry uint64
		any := uint64(0)
		for k := 0; k < w; k++ {
			moved := d[k] & step[k]
			v := moved<<1 | carry | d[k]&l[k]
			carry = moved >> 63
			x[k] = v
			any |= v
		}
		if any == 0 {
			return false
		}
		d, x = x, d
		n.closure(d, x)
	}
	return d[n.final/64]>>(n.final%64)&1 != 0
}

// closure adds to d the states reached from it without a byte; x is
// scratch of the same length.
func (n *nfa) closure(d, x []uint64) {
	for {
		var c1, c3 uint64
		changed := false
		for k := range d {
			a := d[k] & n.eps1[k]
			b := d[k] & n.eps3[k]
			v := d[k] | a<<1 | c1 | b<<3 | c3
			c1, c3 = a>>63, b>>61
			if v != d[k] {
				changed = true
			}
			x[k] = v
		}
		copy(d, x)
		if !changed {
			return
		}
	}
}
