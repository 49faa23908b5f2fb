package watcher

import (
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"unicode"

	"golang.org/x/text/unicode/norm"
)

// errNotListed means that a path's directory does not list it under that
// name, byte for byte: with Options.ExactNames the path is gone (an
// fs.ErrNotExist), even if the file system finds it under another case or
// Unicode form.
var errNotListed = fmt.Errorf("not listed under this name: %w", fs.ErrNotExist)

// listing is what one directory listed, kept for one look so that names
// that did not come from a listing (the names events carry) can be checked
// against it (see Options.ExactNames).
type listing struct {
	err    error               // the listing failed: nothing is known
	names  map[string]struct{} // the names listed
	folded map[string][]string // foldName of a listed name -> the names; made on first use
}

// newListing keeps what a listing of a directory returned.
func newListing(entries []fs.DirEntry, err error) *listing {
	if err != nil {
		return &listing{err: err}
	}
	names := make([]string, len(entries))
	for i, e := range entries {
		names[i] = e.Name()
	}
	return listingOf(names)
}

// listingOf returns the listing of a directory that lists names.
func listingOf(names []string) *listing {
	l := &listing{names: make(map[string]struct{}, len(names))}
	for _, n := range names {
		l.names[n] = struct{}{}
	}
	return l
}

// has reports whether the directory lists name exactly, byte for byte.
func (l *listing) has(name string) bool {
	_, ok := l.names[name]
	return ok
}

// aliases returns, sorted, the listed names other than name that differ
// from it only in letter case or Unicode normalization form: those a file
// system blind to case and form may take name for.
func (l *listing) aliases(name string) []string {
	if l.folded == nil {
		l.folded = make(map[string][]string, len(l.names))
		for n := range l.names {
			k := foldName(n)
			l.folded[k] = append(l.folded[k], n)
		}
	}
	var out []string
	for _, n := range l.folded[foldName(name)] {
		if n != name {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

// foldName maps the names that differ only in letter case or Unicode
// normalization form to one string.
func foldName(name string) string {
	return strings.Map(func(r rune) rune { return unicode.ToLower(unicode.ToUpper(r)) }, norm.NFC.String(name))
}
