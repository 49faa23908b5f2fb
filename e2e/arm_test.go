package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/drive-node/drive-node/internal/netlab"
)

// TestARM64PeerUnderEmulation runs the linux/arm64 build on host A under
// qemu-aarch64-static and the native build on B: creates, modifications,
// deletes and renames flow both ways. Timings under emulation mean
// nothing; the deadlines are generous.
func TestARM64PeerUnderEmulation(t *testing.T) {
	qemu, err := exec.LookPath("qemu-aarch64-static")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("qemu-aarch64-static is required in CI (Debian's qemu-user-static)")
		}
		t.Skip("qemu-aarch64-static not installed (apt-get install qemu-user-static)")
	}
	native := netlab.BuildBinary(t, "github.com/drive-node/drive-node/cmd/drive-node")
	arm := netlab.BuildBinary(t, "github.com/drive-node/drive-node/cmd/drive-node", "GOARCH=arm64")
	lab := netlab.New(t, 2)
	a, b := lab.Host(0), lab.Host(1)
	dirA, dirB := filepath.Join(t.TempDir(), "A"), filepath.Join(t.TempDir(), "B")
	os.MkdirAll(dirA, 0o755)
	os.MkdirAll(dirB, 0o755)
	armArgs := func(args ...string) []string { return append([]string{arm}, args...) }
	if out := a.Run(t, qemu, armArgs("version")...); !regexpMatch(`linux/arm64`, out) {
		t.Fatalf("A does not run the arm64 build: %s", out)
	}
	idA := lastLine(a.Run(t, qemu, armArgs("id", "--folder", dirA)...))
	idB := lastLine(b.Run(t, native, "id", "--folder", dirB))
	a.Run(t, qemu, armArgs("pair", "--folder", dirA, idB)...)
	b.Run(t, native, "pair", "--folder", dirB, idA)
	// qemu-user cannot join multicast groups, so mDNS does not work for
	// the emulated process: the hosts use static addresses.
	pa := a.Start(t, qemu, armArgs("--folder", dirA, "--listen", ":22000", "--log-level", "debug", "--peer", b.Addr.String()+":22000")...)
	pb := startDaemon(t, b, native, dirB, "B", "--peer", a.Addr.String()+":22000")
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("A (arm64) log:\n%s\nB log:\n%s", lastLines(pa.Log(), 60), lastLines(pb.Log(), 60))
		}
	})
	const deadline = 2 * time.Minute

	writeFile(t, filepath.Join(dirA, "from-arm.txt"), []byte("made on arm64\n"))
	converge(t, "create on arm64 A reaches B", dirA, dirB, deadline)
	writeFile(t, filepath.Join(dirB, "docs/from-amd64.txt"), []byte("made on amd64\n"))
	converge(t, "create on amd64 B reaches A", dirA, dirB, deadline)
	writeFile(t, filepath.Join(dirA, "docs/from-amd64.txt"), []byte("modified on arm64\n"))
	converge(t, "modify on A reaches B", dirA, dirB, deadline)
	writeFile(t, filepath.Join(dirB, "from-arm.txt"), []byte("modified on amd64\n"))
	converge(t, "modify on B reaches A", dirA, dirB, deadline)
	if err := os.Rename(filepath.Join(dirA, "from-arm.txt"), filepath.Join(dirA, "renamed-on-arm.txt")); err != nil {
		t.Fatal(err)
	}
	converge(t, "rename on A reaches B", dirA, dirB, deadline)
	if err := os.Rename(filepath.Join(dirB, "docs/from-amd64.txt"), filepath.Join(dirB, "renamed-on-amd64.txt")); err != nil {
		t.Fatal(err)
	}
	converge(t, "rename on B reaches A", dirA, dirB, deadline)
	os.Remove(filepath.Join(dirA, "renamed-on-amd64.txt"))
	converge(t, "delete on A reaches B", dirA, dirB, deadline)
	os.Remove(filepath.Join(dirB, "renamed-on-arm.txt"))
	converge(t, "delete on B reaches A", dirA, dirB, deadline)
	if _, err := os.Stat(filepath.Join(dirA, "renamed-on-arm.txt")); err == nil {
		t.Fatal("delete did not reach A")
	}
}
