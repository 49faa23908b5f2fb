//go:build unix

package watcher

import (
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// TestPermissionDeniedForReal scans a tree with a directory and a file
// that the scanning user may not read: neither is reported, and the files
// recorded under the directory are not taken for deleted. Permission bits
// do not stop root, so run as root (as CI is) the test runs itself again
// as user nobody and requires that run to pass.
func TestPermissionDeniedForReal(t *testing.T) {
	if os.Geteuid() == 0 {
		runAsNobody(t, "TestPermissionDeniedForReal")
		return
	}
	root := t.TempDir()
	writeAt(t, filepath.Join(root, "locked/f"), "f")
	writeAt(t, filepath.Join(root, "secret"), "s")
	idx := newIndex()
	idx.set("locked", Known{Dir: true})
	idx.set("locked/f", knownFile(t, filepath.Join(root, "locked/f")))
	for _, p := range []string{"locked", "secret"} {
		if err := os.Chmod(filepath.Join(root, p), 0); err != nil {
			t.Fatal(err)
		}
	}
	defer os.Chmod(filepath.Join(root, "locked"), 0o755)
	if _, err := os.ReadDir(filepath.Join(root, "locked")); err == nil {
		t.Fatal("the locked directory is readable: the test cannot tell")
	}
	if got := flatten(scanOnce(t, Options{Root: root, Index: idx, Logger: quietLogger()})); len(got) != 0 {
		t.Errorf("unreadable paths reported: %+v", got)
	}
}

// runAsNobody runs test from a copy of the test binary as user nobody,
// with a temporary directory that user owns, and fails unless it passed.
func runAsNobody(t *testing.T, test string) {
	t.Helper()
	uid, gid := uint32(65534), uint32(65534)
	if u, err := user.Lookup("nobody"); err == nil {
		if n, err := strconv.ParseUint(u.Uid, 10, 32); err == nil {
			uid = uint32(n)
		}
		if n, err := strconv.ParseUint(u.Gid, 10, 32); err == nil {
			gid = uint32(n)
		}
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// The test binary's own directory may be closed to other users: the
	// copy goes in the test's temporary directory, opened to them (it is
	// made mode 0700, as is the directory it is made in).
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatalf("opening %s to other users: %v", d, err)
		}
	}
	bin := filepath.Join(dir, "watcher.test")
	copyFile(t, exe, bin)
	tmp := filepath.Join(dir, "tmp")
	if err := os.Mkdir(tmp, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(tmp, int(uid), int(gid)); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run=^"+test+"$", "-test.v", "-test.count=1")
	cmd.Dir = tmp
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp, "HOME="+tmp)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gid}}
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: "+test) {
		t.Fatalf("%s as uid %d: %v\n%s", test, uid, err, out)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
}
