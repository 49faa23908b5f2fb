package bench

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// mountExfat puts a real exFAT file system on dir: a 1 GiB loop file
// (beside dir, on the disk the test's temporary files are on) made with
// mkfs.exfat and mounted through exfat-fuse, as a USB disk on a small
// board often is. The function it returns unmounts the disk and detaches
// its loop device; call it once whatever runs there has stopped (run
// defers it, so a failing benchmark cleans up too).
func mountExfat(b *testing.B, dir string) (unmount func()) {
	b.Helper()
	for _, tool := range []string{"truncate", "mkfs.exfat", "losetup", "mount.exfat-fuse", "umount"} {
		if _, err := exec.LookPath(tool); err != nil {
			b.Fatalf("-lan.exfat needs %s (bench/lan.sh installs exfat-fuse and exfatprogs): %v", tool, err)
		}
	}
	image := dir + ".exfat.img"
	run := func(name string, args ...string) string {
		b.Helper()
		out, err := exec.Command(name, args...).CombinedOutput()
		if err != nil {
			b.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(string(out))
	}
	run("truncate", "-s", "1G", image)
	run("mkfs.exfat", image)
	loop := run("losetup", "-f", "--show", image)
	unmount = func() {
		if mounted(dir) && exec.Command("umount", dir).Run() != nil {
			// Something still holds it: detach it now, it goes when
			// released.
			exec.Command("umount", "-l", dir).Run()
		}
		for i := 0; i < 100 && mounted(dir); i++ {
			time.Sleep(20 * time.Millisecond)
		}
		exec.Command("losetup", "-d", loop).Run()
		os.Remove(image)
	}
	if out, err := exec.Command("mount.exfat-fuse", loop, dir).CombinedOutput(); err != nil {
		unmount()
		b.Fatalf("mount.exfat-fuse %s %s: %v\n%s", loop, dir, err, out)
	}
	// exfat-fuse serves the mount from a process of its own: wait until
	// the kernel lists it before anything is written there.
	for start := time.Now(); !mounted(dir); time.Sleep(10 * time.Millisecond) {
		if time.Since(start) > 10*time.Second {
			unmount()
			b.Fatalf("exFAT disk not mounted at %s after 10 s", dir)
		}
	}
	return unmount
}

// mounted reports whether a file system is mounted at dir.
func mounted(dir string) bool {
	dir = filepath.Clean(dir)
	data, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[1] == dir {
			return true
		}
	}
	return false
}
