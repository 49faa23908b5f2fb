//go:build linux

package beneath

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// tree makes, in a new directory, a folder with a file two directories
// down, a symlink inside to one of them, symlinks out of it (relative and
// absolute), a file where a directory is looked for, and a file outside
// the folder; it returns the folder, open as os.Root and as Dir.
func tree(t testing.TB) (string, *os.Root, *Dir) {
	t.Helper()
	top := t.TempDir()
	dir := filepath.Join(top, "folder")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(dir, "a/b"), 0o755))
	must(os.WriteFile(filepath.Join(dir, "a/b/file"), []byte("inside"), 0o640))
	must(os.WriteFile(filepath.Join(dir, "plain"), []byte("a file"), 0o600))
	must(os.WriteFile(filepath.Join(top, "secret"), []byte("outside"), 0o600))
	must(os.Symlink("a", filepath.Join(dir, "in")))
	must(os.Symlink("..", filepath.Join(dir, "up")))
	must(os.Symlink(top, filepath.Join(dir, "abs")))
	must(os.Symlink("a/b/file", filepath.Join(dir, "a/link")))
	root, err := os.OpenRoot(dir)
	must(err)
	t.Cleanup(func() { root.Close() })
	d, err := Open(root)
	must(err)
	t.Cleanup(func() { d.Close() })
	return dir, root, d
}

// Lstat finds what os.Root's Lstat finds, and fails where it fails, for
// the same reason as far as a caller tells them apart: missing, not a
// directory, or refused for leaving the folder.
func TestLstatAsOSRootDoes(t *testing.T) {
	_, root, d := tree(t)
	// Names os.Root refuses or cleans, and Dir leaves to it: a last
	// component ".." would be the folder's parent to fstatat.
	left := map[string]bool{"..": true, "a/../..": true, "in/../..": true, "/plain": true, "a/b/": true, "in/": true,
		"": true, ".": true, "a/.": true}
	for _, name := range []string{
		"plain", "a", "a/b", "a/b/file", "a/link", "in/b/file", "in", "missing", "a/missing", "missing/x",
		"plain/x", "up/secret", "abs/secret", "up", "abs", "a/../plain", "../secret", "a/b/file/x",
		"..", "a/../..", "in/../..", "/plain", "a/b/", "in/", "", ".", "a/.",
	} {
		want, werr := root.Lstat(name)
		got, ok, err := d.Lstat(name)
		if ok == left[name] {
			t.Fatalf("%s: resolved beneath %v, want %v (the CI kernel has openat2)", name, ok, !left[name])
		}
		if !ok {
			got, err = root.Lstat(name) // as RootFolder does
		}
		if (werr == nil) != (err == nil) {
			t.Errorf("%s: got %v, os.Root %v", name, err, werr)
			continue
		}
		if err != nil {
			for _, target := range []error{fs.ErrNotExist, syscall.ENOTDIR} {
				if errors.Is(err, target) != errors.Is(werr, target) {
					t.Errorf("%s: got %v, os.Root %v: they differ on %v", name, err, werr, target)
				}
			}
			continue
		}
		ws, gs := want.Sys().(*syscall.Stat_t), got.Sys().(*syscall.Stat_t)
		if got.Name() != want.Name() || got.Mode() != want.Mode() || got.Size() != want.Size() || !got.ModTime().Equal(want.ModTime()) ||
			got.IsDir() != want.IsDir() || *gs != *ws {
			t.Errorf("%s: got %s %v %d %v %+v, os.Root %s %v %d %v %+v", name, got.Name(), got.Mode(), got.Size(), got.ModTime(), *gs,
				want.Name(), want.Mode(), want.Size(), want.ModTime(), *ws)
		}
	}
}

// Rename moves within the folder, through a symlink inside it as os.Root
// does, and refuses to move anything out of it or in from outside.
func TestRenameStaysInside(t *testing.T) {
	dir, root, d := tree(t)
	rename := beneathOnly(t, d.Rename)
	if err := rename("plain", "a/b/moved"); err != nil {
		t.Fatal(err)
	}
	if err := rename("in/b/moved", "in/moved"); err != nil { // through the symlink "in", to a
		t.Fatal(err)
	}
	if got, err := os.ReadFile(filepath.Join(dir, "a/moved")); err != nil || string(got) != "a file" {
		t.Fatalf("after two renames a/moved holds %q, %v", got, err)
	}
	refusedBoth(t, dir, "rename", rename, root.Rename, [][2]string{
		{"a/moved", "up/escaped"}, {"a/moved", "abs/escaped"}, {"up/secret", "stolen"}, {"abs/secret", "stolen"},
		{"a/moved", "../escaped"}, {"missing/x", "y"}, {"a/moved", "plain/x"},
	})
	if _, err := os.Stat(filepath.Join(dir, "a/moved")); err != nil {
		t.Fatalf("a refused rename moved the file: %v", err)
	}
	if got, err := os.ReadFile(filepath.Join(filepath.Dir(dir), "secret")); err != nil || string(got) != "outside" {
		t.Fatalf("the file outside holds %q, %v", got, err)
	}
}

// OpenFile opens, reads and creates what os.Root's OpenFile does, and
// fails where it fails, for the same reason as far as a caller tells
// them apart; nothing it creates lies outside the folder.
func TestOpenFileAsOSRootDoes(t *testing.T) {
	dir, root, d := tree(t)
	open := func(name string, flag int, perm fs.FileMode) (*os.File, error) {
		t.Helper()
		f, ok, err := d.OpenFile(name, flag, perm)
		if !ok {
			t.Fatalf("%s: openat2 not used on this kernel", name)
		}
		return f, err
	}
	same := func(what string, err, werr error) bool {
		t.Helper()
		if (werr == nil) != (err == nil) {
			t.Errorf("%s: got %v, os.Root %v", what, err, werr)
			return false
		}
		for _, target := range []error{fs.ErrNotExist, fs.ErrExist, syscall.ENOTDIR, syscall.EISDIR, syscall.ELOOP} {
			if errors.Is(err, target) != errors.Is(werr, target) {
				t.Errorf("%s: got %v, os.Root %v: they differ on %v", what, err, werr, target)
			}
		}
		return err == nil
	}
	for _, name := range []string{"plain", "a", "a/b/file", "a/link", "in/b/file", "missing", "a/missing", "missing/x",
		"plain/x", "up/secret", "abs/secret", "a/../plain", "a/b/file/x"} {
		f, err := open(name, os.O_RDONLY, 0)
		wf, werr := root.OpenFile(name, os.O_RDONLY, 0)
		if same(name, err, werr) {
			st, _ := f.Stat()
			wst, _ := wf.Stat()
			if !os.SameFile(st, wst) {
				t.Errorf("%s: opened another file than os.Root", name)
			}
			if f.Name() != wf.Name() {
				t.Errorf("%s: named %q, os.Root %q", name, f.Name(), wf.Name())
			}
		}
		for _, f := range []*os.File{f, wf} {
			if f != nil {
				f.Close()
			}
		}
	}
	// Creating: with the mode asked for (the umask aside), through a
	// symlink inside, never outside; O_EXCL refuses what exists.
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	for _, c := range []struct {
		name string
		flag int
	}{
		{"a/new", os.O_WRONLY | os.O_CREATE | os.O_TRUNC},
		{"in/b/new", os.O_WRONLY | os.O_CREATE | os.O_TRUNC},
		{"plain", os.O_WRONLY | os.O_CREATE | os.O_EXCL},
		{"up/new", os.O_WRONLY | os.O_CREATE},
		{"abs/new", os.O_WRONLY | os.O_CREATE},
		{"missing/new", os.O_WRONLY | os.O_CREATE},
	} {
		f, err := open(c.name, c.flag, 0o640)
		if err == nil {
			st, _ := f.Stat()
			if st.Mode() != 0o640 {
				t.Errorf("%s: created %v, want -rw-r-----", c.name, st.Mode())
			}
			f.Close()
		}
		wf, werr := root.OpenFile(c.name, c.flag, 0o640)
		if wf != nil {
			wf.Close()
		}
		same(c.name+" created", err, werr)
	}
	if _, err := os.Lstat(filepath.Join(filepath.Dir(dir), "new")); err == nil {
		t.Fatal("a file was created outside the folder")
	}
	if _, err := os.Lstat(filepath.Join(dir, "a/b/new")); err != nil {
		t.Fatalf("a file created through the symlink inside is not where it leads: %v", err)
	}
	// A name os.Root refuses or cleans is left to it, and a mode of more
	// than permissions, which it refuses.
	for _, name := range []string{"", ".", "a/..", "/plain", "a/"} {
		if _, ok, _ := d.OpenFile(name, os.O_RDONLY, 0); ok {
			t.Errorf("%q: opened beneath, not left to os.Root", name)
		}
	}
	if _, ok, _ := d.OpenFile("a/setgid", os.O_WRONLY|os.O_CREATE, 0o640|fs.ModeSetgid); ok {
		t.Error("a setgid mode was not left to os.Root")
	}
}

// Link links within the folder, through a symlink inside it as os.Root
// does, links a symlink itself rather than what it names, and refuses to
// link anything out of the folder or in from outside.
func TestLinkStaysInside(t *testing.T) {
	dir, root, d := tree(t)
	link := beneathOnly(t, d.Link)
	if err := link("in/b/file", "a/linked"); err != nil { // through the symlink "in", to a
		t.Fatal(err)
	}
	a, _ := os.Lstat(filepath.Join(dir, "a/b/file"))
	b, err := os.Lstat(filepath.Join(dir, "a/linked"))
	if err != nil || !os.SameFile(a, b) {
		t.Fatalf("a/linked is not a/b/file: %v", err)
	}
	if err := link("a/link", "a/link2"); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Lstat(filepath.Join(dir, "a/link2")); err != nil || st.Mode()&fs.ModeSymlink == 0 {
		t.Fatalf("linking a symlink followed it: %v, %v", st, err)
	}
	if err := link("a/linked", "a/b/file"); !errors.Is(err, fs.ErrExist) {
		t.Errorf("linking over a file: %v, want it refused as existing", err)
	}
	refusedBoth(t, dir, "link", link, root.Link,
		[][2]string{{"a/linked", "up/escaped"}, {"a/linked", "abs/escaped"}, {"up/secret", "stolen"}, {"abs/secret", "stolen"}})
}

// beneathOnly is call, a Dir's method of two names, failing the test
// where the kernel did not resolve them (the CI kernel has openat2).
func beneathOnly(t *testing.T, call func(oldname, newname string) (bool, error)) func(oldname, newname string) error {
	return func(oldname, newname string) error {
		t.Helper()
		ok, err := call(oldname, newname)
		if !ok {
			t.Fatalf("%s -> %s: openat2 not used on this kernel", oldname, newname)
		}
		return err
	}
}

// refusedBoth checks that ours and os.Root's (theirs) both refuse each
// pair of names, and that no "escaped" or "stolen" appeared beside the
// folder dir: what, a rename or a link, left it.
func refusedBoth(t *testing.T, dir, what string, ours, theirs func(oldname, newname string) error, pairs [][2]string) {
	t.Helper()
	for _, c := range pairs {
		err := ours(c[0], c[1])
		werr := theirs(c[0], c[1])
		if err == nil || werr == nil {
			t.Errorf("%s -> %s: %v, os.Root %v; want both refused", c[0], c[1], err, werr)
		}
	}
	for _, p := range []string{"escaped", "folder/stolen"} {
		if _, err := os.Lstat(filepath.Join(filepath.Dir(dir), p)); err == nil {
			t.Fatalf("%s exists: a %s left the folder", p, what)
		}
	}
}

// A path of PATH_MAX bytes is too long for one openat2, not for os.Root,
// which walks it a directory at a time: OpenFile leaves it to os.Root.
func TestLongNameLeftToOSRoot(t *testing.T) {
	_, root, d := tree(t)
	name := ""
	for len(name) < 3900 {
		name = strings.TrimPrefix(name+"/"+strings.Repeat("d", 200), "/")
		if err := root.Mkdir(name, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	name += "/" + strings.Repeat("f", 4096-len(name)-1)
	f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatalf("os.Root: %v", err)
	}
	f.Close()
	f, ok, err := d.OpenFile(name, os.O_RDONLY, 0)
	if ok {
		t.Errorf("a name of %d bytes opened beneath: %v", len(name), err)
		if f != nil {
			f.Close()
		}
	}
}

// NoSymlinkAbove says there is none only where looking at each existing
// directory above the name finds none.
func TestNoSymlinkAboveAsLooksDo(t *testing.T) {
	_, root, d := tree(t)
	looks := func(name string) bool { // what the caller does without it
		for dir := filepath.Dir(name); dir != "."; dir = filepath.Dir(dir) {
			if st, err := root.Lstat(dir); err == nil && st.Mode()&fs.ModeSymlink != 0 {
				return false
			}
		}
		return true
	}
	for _, name := range []string{"x", "a/b/file", "a/link", "missing/x/y", "plain/x/y", "a/b/file/x",
		"in/b/file", "a/link/x", "up/x", "abs/x", "in/missing/x"} {
		if got, want := d.NoSymlinkAbove(name), looks(name); got != want {
			t.Errorf("%s: NoSymlinkAbove %v, each directory looked at says %v", name, got, want)
		}
	}
}

// A nil Dir resolves nothing: the caller uses os.Root.
func TestNilDirResolvesNothing(t *testing.T) {
	var d *Dir
	if _, ok, _ := d.Lstat("x"); ok {
		t.Fatal("a nil Dir looked at a path")
	}
	if ok, _ := d.Rename("x", "y"); ok {
		t.Fatal("a nil Dir renamed a path")
	}
	if _, ok, _ := d.OpenFile("x", os.O_RDONLY, 0); ok {
		t.Fatal("a nil Dir opened a path")
	}
	if d.NoSymlinkAbove("a/x") {
		t.Fatal("a nil Dir vouched for a path")
	}
	if ok, _ := d.Link("x", "y"); ok {
		t.Fatal("a nil Dir linked a path")
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkLstat looks at a file two directories down the folder, as an
// apply does at each received file's path: through os.Root, and beneath.
func BenchmarkLstat(b *testing.B) {
	_, root, d := tree(b)
	b.Run("os.Root", func(b *testing.B) {
		for b.Loop() {
			if _, err := root.Lstat("a/b/file"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("beneath", func(b *testing.B) {
		for b.Loop() {
			if _, _, err := d.Lstat("a/b/file"); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// SameFile tells one file from another whichever of Dir and os.Lstat
// looked at it; os.SameFile does not for a Dir's look.
func TestSameFileAcrossLooks(t *testing.T) {
	dir, _, d := tree(t)
	if err := os.Link(filepath.Join(dir, "plain"), filepath.Join(dir, "a/hardlink")); err != nil {
		t.Fatal(err)
	}
	look := func(name string) fs.FileInfo {
		t.Helper()
		info, _, err := d.Lstat(name)
		if err != nil {
			t.Fatal(err)
		}
		return info
	}
	plain, err := os.Lstat(filepath.Join(dir, "plain"))
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]bool{"plain": true, "a/hardlink": true, "a/b/file": false, "a": false} {
		if got := SameFile(look(name), plain); got != want {
			t.Errorf("SameFile(%s, plain) = %v, want %v", name, got, want)
		}
		if got := SameFile(plain, look(name)); got != want {
			t.Errorf("SameFile(plain, %s) = %v, want %v", name, got, want)
		}
	}
}

// A closed Dir resolves nothing, so os.Root answers that it is closed:
// the descriptor's number may be another file's by then. Closing twice
// is no error.
func TestClosedDirResolvesNothing(t *testing.T) {
	_, _, d := tree(t)
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	// The number the directory had goes to another directory.
	other, err := os.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, ok, err := d.Lstat("plain"); ok {
		t.Fatalf("a closed Dir looked at a path: %v", err)
	}
	if ok, err := d.Rename("plain", "moved"); ok {
		t.Fatalf("a closed Dir renamed a path: %v", err)
	}
	if err := d.Close(); err != nil {
		t.Fatalf("a second Close: %v", err)
	}
}

// BenchmarkOpen opens a file two directories down the folder and closes
// it, as a device serving a peer does for each content: through os.Root,
// and beneath.
func BenchmarkOpen(b *testing.B) {
	_, root, d := tree(b)
	b.Run("os.Root", func(b *testing.B) {
		for b.Loop() {
			f, err := root.OpenFile("a/b/file", os.O_RDONLY, 0)
			if err != nil {
				b.Fatal(err)
			}
			f.Close()
		}
	})
	b.Run("beneath", func(b *testing.B) {
		for b.Loop() {
			f, _, err := d.OpenFile("a/b/file", os.O_RDONLY, 0)
			if err != nil {
				b.Fatal(err)
			}
			f.Close()
		}
	})
}
