//go:build linux

package netlab

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// ExfatDisk is a real exFAT file system — what a USB disk on a small board
// often is — made in a loop file and mounted through exfat-fuse. It is
// case-insensitive and case-preserving, refuses some characters in names,
// keeps no Unix modes (everything shows as 0777) and, through exfat-fuse,
// keeps modification times to the second.
type ExfatDisk struct {
	// Dir is where the disk is mounted.
	Dir     string
	image   string
	loop    string
	mounted bool
}

// exfatTools are the commands MountExfat needs, with the Debian package
// that has each.
var exfatTools = [][2]string{
	{"mkfs.exfat", "exfatprogs"},
	{"mount.exfat-fuse", "exfat-fuse"},
	{"losetup", "mount"},
	{"truncate", "coreutils"},
}

// MountExfat makes an exFAT file system of sizeMiB in a loop file, mounts
// it and returns it; the disk is unmounted and its loop device detached
// when the test ends, also when it fails. Like New, it skips the test when
// the machine cannot do it (not root, tools missing), except with CI=true:
// then it fails.
func MountExfat(t testing.TB, sizeMiB int) *ExfatDisk {
	t.Helper()
	if err := exfatUsable(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("netlab: an exFAT disk is required in CI: %v", err)
		}
		t.Skipf("netlab: no exFAT disk (run as root with exfat-fuse and exfatprogs, or CI=true to fail instead): %v", err)
	}
	base := t.TempDir()
	d := &ExfatDisk{Dir: filepath.Join(base, "exfat"), image: filepath.Join(base, "exfat.img")}
	if err := os.Mkdir(d.Dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.destroy)
	run := func(name string, args ...string) string {
		t.Helper()
		out, err := exec.Command(name, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("netlab: %s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(string(out))
	}
	run("truncate", "-s", fmt.Sprintf("%dM", sizeMiB), d.image)
	run("mkfs.exfat", d.image)
	d.loop = run("losetup", "-f", "--show", d.image)
	d.Mount(t)
	return d
}

func exfatUsable() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("not root")
	}
	for _, tool := range exfatTools {
		if _, err := exec.LookPath(tool[0]); err != nil {
			return fmt.Errorf("no %s (install %s): %w", tool[0], tool[1], err)
		}
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		return fmt.Errorf("no FUSE: %w", err)
	}
	return nil
}

// Mount mounts the disk at Dir again after Unmount.
func (d *ExfatDisk) Mount(t testing.TB) {
	t.Helper()
	if out, err := exec.Command("mount.exfat-fuse", d.loop, d.Dir).CombinedOutput(); err != nil {
		t.Fatalf("netlab: mount.exfat-fuse %s %s: %v\n%s", d.loop, d.Dir, err, out)
	}
	d.mounted = true
	// exfat-fuse serves the mount from a daemon of its own: wait until
	// the kernel lists it before anything is written there.
	Eventually(t, 10*time.Second, "exFAT disk mounted at "+d.Dir, func() (bool, string) {
		return d.isMounted(), "not in /proc/self/mounts"
	})
}

// Unmount unmounts the disk; the loop device and what the disk holds
// stay, for Mount.
func (d *ExfatDisk) Unmount(t testing.TB) {
	t.Helper()
	if out, err := exec.Command("umount", d.Dir).CombinedOutput(); err != nil {
		t.Fatalf("netlab: umount %s: %v\n%s", d.Dir, err, out)
	}
	d.mounted = false
	Eventually(t, 10*time.Second, "exFAT disk unmounted from "+d.Dir, func() (bool, string) {
		return !d.isMounted(), "still in /proc/self/mounts"
	})
}

func (d *ExfatDisk) isMounted() bool {
	b, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[1] == d.Dir {
			return true
		}
	}
	return false
}

// destroy unmounts the disk (lazily if something still holds it) and
// detaches its loop device.
func (d *ExfatDisk) destroy() {
	if d.mounted || d.isMounted() {
		if exec.Command("umount", d.Dir).Run() != nil {
			exec.Command("umount", "-l", d.Dir).Run()
		}
		for i := 0; i < 100 && d.isMounted(); i++ {
			time.Sleep(20 * time.Millisecond)
		}
	}
	if d.loop != "" {
		exec.Command("losetup", "-d", d.loop).Run()
	}
}
