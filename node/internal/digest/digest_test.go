package digest

import (
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// sample is a small tree: a file at the root, a directory with an
// executable file, and an empty directory.
func sample() []Entry {
	return []Entry{
		{Path: "a.txt", Kind: File, Content: [32]byte{1}, Mode: 0o644},
		{Path: "docs", Kind: Dir, Mode: 0o755},
		{Path: "docs/run.sh", Kind: File, Content: [32]byte{2}, Mode: 0o755},
	}
}

func root(entries []Entry) Hash {
	entries = slices.Clone(entries)
	Sort(entries)
	return Root(entries)
}

// TestKnownAnswers pins the encoding (docs/protocol.md, "State digests");
// the values were checked against a second implementation written from
// the text.
func TestKnownAnswers(t *testing.T) {
	for _, c := range []struct {
		name    string
		entries []Entry
		want    string
	}{
		{"empty folder", nil, "3873e08b13266660a8535c1151e06b94c941a0f88c60cb816d16e94d704bab0e"},
		{"sample", sample(), "b8453d19309366637eff278639cac542fcbb355f2e2f632f8efc068bac7b8a89"},
	} {
		if got := root(c.entries).String(); got != c.want {
			t.Errorf("%s: root %s, want %s", c.name, got, c.want)
		}
	}
	children, _ := Children(sample(), "")
	want := []Child{
		{Name: "a.txt", Kind: File, Hash: mustHash(t, "9f0ceb2b16bf47651cb57b276f2b82d4b9e5eb7941d46287f9fbb5765ced46a4")},
		{Name: "docs", Kind: Dir, Hash: mustHash(t, "170e224438ed61066c53270a3759b2385d5c1ce7aa1226bcbe356ac4692c6952")},
	}
	if !slices.Equal(children, want) {
		t.Errorf("children %v, want %v", children, want)
	}
	if got := root(sample()).Short(); got != "b8453d193093" {
		t.Errorf("short form %q", got)
	}
}

func mustHash(t *testing.T, s string) Hash {
	t.Helper()
	var h Hash
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(h) {
		t.Fatalf("hash %q: %v", s, err)
	}
	copy(h[:], b)
	return h
}

// TestOrderDoesNotMatter: the entries' order in, and names that sort
// differently as paths and as components ("a", "a.b", "a/x"), give one
// root.
func TestOrderDoesNotMatter(t *testing.T) {
	entries := []Entry{
		{Path: "a", Kind: Dir}, {Path: "a/x", Kind: File, Content: [32]byte{1}},
		{Path: "a.b", Kind: File, Content: [32]byte{2}}, {Path: "a b", Kind: File, Content: [32]byte{3}},
		{Path: "a/y/z", Kind: File, Content: [32]byte{4}}, {Path: "b", Kind: Dir}, {Path: "é", Kind: File},
	}
	want := root(entries)
	r := rand.New(rand.NewPCG(1, 2))
	for range 50 {
		r.Shuffle(len(entries), func(i, j int) { entries[i], entries[j] = entries[j], entries[i] })
		if got := root(entries); got != want {
			t.Fatalf("order %v gives %s, want %s", entries, got, want)
		}
	}
	// The listing is in byte order of name.
	sorted := slices.Clone(entries)
	Sort(sorted)
	children, _ := Children(sorted, "")
	if !slices.IsSortedFunc(children, func(a, b Child) int { return cmpString(a.Name, b.Name) }) {
		t.Fatalf("children out of order: %v", children)
	}
	// A subtree's listing is the same as the root's entry for it.
	sub, h := Children(sorted, "a")
	if len(sub) != 2 || sub[0].Name != "x" || sub[1].Name != "y" {
		t.Fatalf("children of a: %v", sub)
	}
	if children[0].Name != "a" || children[0].Hash != h {
		t.Fatalf("a's hash in the root %v, its own %s", children[0], h)
	}
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// TestWhatChangesTheRoot: content, an executable bit and a new empty
// directory change the root; an mtime-only or group-write-only difference
// (which the engine does not sync) and the order of entries do not.
func TestWhatChangesTheRoot(t *testing.T) {
	base := root(sample())
	changed := func(name string, f func([]Entry) []Entry) {
		t.Helper()
		if root(f(sample())) == base {
			t.Errorf("%s does not change the root", name)
		}
	}
	same := func(name string, f func([]Entry) []Entry) {
		t.Helper()
		if root(f(sample())) != base {
			t.Errorf("%s changes the root", name)
		}
	}
	changed("one byte of content", func(e []Entry) []Entry { e[0].Content[31] ^= 1; return e })
	changed("chmod +x", func(e []Entry) []Entry { e[0].Mode = 0o755; return e })
	changed("chmod 600", func(e []Entry) []Entry { e[0].Mode = 0o600; return e })
	changed("a new empty directory", func(e []Entry) []Entry { return append(e, Entry{Path: "docs/new", Kind: Dir}) })
	changed("a file turned directory", func(e []Entry) []Entry { e[0].Kind = Dir; return e })
	changed("a rename", func(e []Entry) []Entry { e[0].Path = "b.txt"; return e })
	changed("a deletion", func(e []Entry) []Entry { return e[1:] })
	same("a directory's mode", func(e []Entry) []Entry { e[1].Mode = 0o700; return e })
	same("group and other write", func(e []Entry) []Entry { e[0].Mode = 0o666; return e })
	same("no mode recorded (0644 by default)", func(e []Entry) []Entry { e[0].Mode = 0; return e })
	// A directory recorded or only implied by what it holds is one tree.
	same("an implied directory", func(e []Entry) []Entry { return append(e[:1], e[2]) })
}

func TestDiff(t *testing.T) {
	ours, _ := Children(sample(), "")
	other := sample()
	other[2].Content[0] = 9
	other = append(other, Entry{Path: "new", Kind: File})
	other = other[1:] // a.txt gone
	Sort(other)
	theirs, _ := Children(other, "")
	got := Diff(ours, theirs)
	want := []Difference{{Name: "a.txt", Ours: File}, {Name: "docs", Ours: Dir, Theirs: Dir, Descend: true}, {Name: "new", Theirs: File}}
	if !slices.Equal(got, want) {
		t.Fatalf("diff %+v, want %+v", got, want)
	}
	if d := Diff(ours, ours); len(d) != 0 {
		t.Fatalf("a listing differs from itself: %v", d)
	}
}

// tree makes n files in directories of 100, ten directories to a level.
func tree(n int) []Entry {
	out := make([]Entry, 0, n+n/100)
	for i := range n {
		if i%100 == 0 {
			out = append(out, Entry{Path: fmt.Sprintf("d%d/e%d", i/10000, i/100), Kind: Dir})
		}
		var c [32]byte
		c[0], c[1], c[2] = byte(i), byte(i>>8), byte(i>>16)
		out = append(out, Entry{Path: fmt.Sprintf("d%d/e%d/file-%d.txt", i/10000, i/100, i), Kind: File, Content: c, Mode: 0o644})
	}
	return out
}

// BenchmarkRoot100k sorts and sums 100,000 files that arrive in byte
// order of path, as the database lists them.
func BenchmarkRoot100k(b *testing.B) {
	entries := tree(100_000)
	slices.SortFunc(entries, func(a, b Entry) int { return cmpString(a.Path, b.Path) })
	for b.Loop() {
		e := slices.Clone(entries)
		Sort(e)
		Root(e)
	}
}
