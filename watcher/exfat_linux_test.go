package watcher

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// exfatMount makes a 64 MiB exFAT disk image, attaches it to a loop
// device, mounts it with exfat-fuse and returns the mount point; the
// test's cleanup unmounts it and frees the loop device, also when the test
// fails. It skips the test when not run as root or when the tools are
// missing, and fails it instead when CI=true.
func exfatMount(t *testing.T) string {
	t.Helper()
	unavailable := func(why string) {
		t.Helper()
		if os.Getenv("CI") == "true" {
			t.Fatalf("cannot mount an exFAT disk: %s", why)
		}
		t.Skipf("cannot mount an exFAT disk: %s", why)
	}
	if os.Geteuid() != 0 {
		unavailable("attaching a loop device and mounting need root")
	}
	for _, tool := range []string{"mkfs.exfat", "losetup", "mount.exfat-fuse", "umount"} {
		if _, err := exec.LookPath(tool); err != nil {
			unavailable(tool + " is not installed")
		}
	}
	run := func(name string, args ...string) string {
		t.Helper()
		out, err := exec.Command(name, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(string(out))
	}
	dir := t.TempDir()
	img, mnt := filepath.Join(dir, "disk.img"), filepath.Join(dir, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(img)
	if err == nil {
		err = f.Truncate(64 << 20)
		f.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	run("mkfs.exfat", img)
	loop := run("losetup", "--find", "--show", img)
	t.Cleanup(func() {
		if out, err := exec.Command("losetup", "-d", loop).CombinedOutput(); err != nil {
			t.Errorf("losetup -d %s: %v\n%s", loop, err, out)
		}
	})
	run("mount.exfat-fuse", loop, mnt)
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v\n%s", mnt, err, out)
			exec.Command("umount", "-l", mnt).Run() // so that the loop device can go
		}
	})
	return mnt
}

// exfatOptions are the options the node sets for an exFAT folder.
func exfatOptions(o *Options) {
	o.ExactNames, o.IgnoreModes, o.MTimePrecision = true, true, time.Second
}

// knownOnExFAT returns what the node would have recorded for the file at
// path, with the inode left unknown: exfat-fuse numbers inodes per name
// looked up and per mount, so they are no file's identity there.
func knownOnExFAT(t *testing.T, path string) Known {
	t.Helper()
	k := knownFile(t, path)
	k.Inode, k.Mode = 0, 0
	return k
}

// caseRename renames old to new, names that differ only in case. Not with
// os.Rename: it refuses to rename onto a directory Lstat finds at new
// unless that is the same file, and exfat-fuse gives Docs and docs two
// inode numbers.
func caseRename(t *testing.T, old, new string) {
	t.Helper()
	if err := syscall.Rename(old, new); err != nil {
		t.Fatalf("rename %s %s: %v", old, new, err)
	}
	if _, err := os.Lstat(old); err != nil {
		t.Fatalf("the disk does not find %s under %s (%v): the test cannot tell", filepath.Base(old), filepath.Base(new), err)
	}
	if names := listNames(t, filepath.Dir(new)); !slices.Contains(names, filepath.Base(new)) || slices.Contains(names, filepath.Base(old)) {
		t.Fatalf("after the rename the disk lists %q", names)
	}
}

func listNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// TestExFAT runs the watcher, with the options the node sets for it, on an
// exFAT disk: case-insensitive and case-preserving, with no modes (every
// file shows 0777) and mtimes kept to the second through exfat-fuse.
func TestExFAT(t *testing.T) {
	mnt := exfatMount(t)
	folder := func(t *testing.T) string {
		t.Helper()
		root := filepath.Join(mnt, strings.NewReplacer("/", "-", " ", "-").Replace(t.Name()))
		if err := os.Mkdir(root, 0o777); err != nil {
			t.Fatal(err)
		}
		return root
	}

	// mv Docs docs, seen by events: Docs and what was in it are gone,
	// docs and what is in it exist (the file as a likely rename), and docs
	// is watched under its new name.
	t.Run("case-only rename, events", func(t *testing.T) {
		root := folder(t)
		writeOld(t, filepath.Join(root, "Docs/a.txt"), "a")
		h := start(t, root, newIndex(), exfatOptions, nil)
		h.waitObs("Docs/a.txt", hashOf("a"))
		h.waitObs("Docs", isDir)

		caseRename(t, filepath.Join(root, "Docs"), filepath.Join(root, "docs"))
		h.waitObs("Docs", gone)
		h.waitObs("Docs/a.txt", gone)
		h.waitObs("docs", isDir)
		h.waitObs("docs/a.txt", hashOf("a"))
		if b := h.batchWith("docs/a.txt", exists); indexOf(b, "Docs/a.txt") != indexOf(b, "docs/a.txt")+1 {
			t.Errorf("the file was not reported as a likely rename: %+v", b)
		}
		writeAt(t, filepath.Join(root, "docs/b.txt"), "b")
		h.waitObs("docs/b.txt", hashOf("b"))
		for _, p := range []string{"Docs", "Docs/a.txt"} {
			if n := h.count(p); n != 2 {
				t.Errorf("%s reported %d times, want as new, then as gone", p, n)
			}
		}
	})

	// mv Docs docs, seen by a full scan.
	t.Run("case-only rename, scan", func(t *testing.T) {
		root := folder(t)
		writeOld(t, filepath.Join(root, "Docs/a.txt"), "a")
		idx := newIndex()
		opts := Options{Root: root, Index: idx, Logger: quietLogger()}
		exfatOptions(&opts)
		for _, b := range scanOnce(t, opts) {
			idx.record(b)
		}
		if _, ok := idx.Lookup("Docs/a.txt"); !ok {
			t.Fatal("the first scan did not report Docs/a.txt")
		}
		caseRename(t, filepath.Join(root, "Docs"), filepath.Join(root, "docs"))
		got := flatten(scanOnce(t, opts))
		if !gone(got["Docs"]) || !gone(got["Docs/a.txt"]) || !isDir(got["docs"]) || !hashOf("a")(got["docs/a.txt"]) || len(got) != 4 {
			t.Errorf("scan after mv Docs docs: %+v", got)
		}
	})

	// echo new > docs/A.TXT: the event names A.TXT; the file changed is
	// the listed a.txt, and A.TXT is never reported as existing.
	t.Run("write through another case", func(t *testing.T) {
		root := folder(t)
		writeOld(t, filepath.Join(root, "docs/a.txt"), "a")
		h := start(t, root, newIndex(), exfatOptions, nil)
		h.waitObs("docs/a.txt", hashOf("a"))
		writeAt(t, filepath.Join(root, "docs/A.TXT"), "new content")
		if names := listNames(t, filepath.Join(root, "docs")); !slices.Equal(names, []string{"a.txt"}) {
			t.Fatalf("after the write the disk lists %q: the test cannot tell", names)
		}
		h.waitObs("docs/a.txt", hashOf("new content"))
		for _, p := range h.existingPaths() {
			if p == "docs/A.TXT" {
				t.Errorf("docs/A.TXT reported as existing")
			}
		}
	})

	// chmod: the disk keeps no modes. Nothing is reported for it, at a
	// scan or when an event names the file, and every observation carries
	// Mode 0. Without IgnoreModes, the disk's 0777 differs from what the
	// Index has.
	t.Run("no modes", func(t *testing.T) {
		root := folder(t)
		p := filepath.Join(root, "f")
		writeOld(t, p, "f")
		idx := newIndex()
		k := knownOnExFAT(t, p)
		k.Mode = 0o644
		idx.set("f", k)
		if got := flatten(scanOnce(t, Options{Root: root, Index: idx, Logger: quietLogger()})); got["f"].Mode != 0o777 {
			t.Fatalf("without IgnoreModes, a scan reported %+v; want f with the disk's 0777", got)
		}
		h := start(t, root, idx, exfatOptions, nil)
		h.track("f")
		if err := os.Chmod(p, 0o600); err != nil {
			t.Fatal(err)
		}
		h.waitPending("f")
		writeOld(t, filepath.Join(root, "d/marker"), "m")
		for _, q := range []string{"d", "d/marker"} {
			if o := h.waitObs(q, exists); o.Mode != 0 {
				t.Errorf("%s: %+v, want Mode 0", q, o)
			}
		}
		if n := h.count("f"); n != 0 {
			t.Errorf("f reported %d times for a mode the disk does not keep", n)
		}
	})

	// A file recorded with an mtime finer than the disk keeps (as after
	// a remount through exfat-fuse) is neither hashed nor reported, at a
	// scan or when an event names it; with exact mtimes it would be.
	t.Run("mtime precision", func(t *testing.T) {
		root := folder(t)
		p := filepath.Join(root, "f")
		writeAt(t, p, "f")
		sec := time.Now().Add(-time.Hour).Truncate(time.Second)
		fine := sec.Add(123456789)
		if err := os.Chtimes(p, fine, fine); err != nil {
			t.Fatal(err)
		}
		k := knownOnExFAT(t, p)
		if k.MTime != sec.UnixNano() {
			t.Fatalf("the disk keeps mtime %v for %v: the test cannot tell", time.Unix(0, k.MTime), fine)
		}
		k.MTime = fine.UnixNano()
		idx := newIndex()
		idx.set("f", k)
		opts := Options{Root: root, Index: idx, Logger: quietLogger()}
		if got := flatten(scanOnce(t, opts)); !hashOf("f")(got["f"]) {
			t.Fatalf("with exact mtimes a scan reported %+v; want f hashed again", got)
		}
		exfatOptions(&opts)
		if got := flatten(scanOnce(t, opts)); len(got) != 0 {
			t.Errorf("with MTimePrecision 1s a scan reported %+v", got)
		}
		var hashed atomic.Int32
		h := start(t, root, idx, exfatOptions, func(w *Watcher) {
			w.onHash = func(rel string, _ fs.FileInfo) {
				if rel == "f" {
					hashed.Add(1)
				}
			}
		})
		h.track("f")
		if err := os.Chtimes(p, sec.Add(500*time.Millisecond), sec.Add(500*time.Millisecond)); err != nil {
			t.Fatal(err)
		}
		h.waitPending("f")
		writeOld(t, filepath.Join(root, "marker"), "m")
		h.waitObs("marker", exists)
		if n := h.count("f"); n != 0 {
			t.Errorf("f reported %d times", n)
		}
		if n := hashed.Load(); n != 0 {
			t.Errorf("f hashed %d times", n)
		}
	})
}
