package e2e

import (
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/drive-node/drive-node/internal/netlab"
)

// putWhole writes data to path through a temp file beside it renamed into
// place, as an editor saves.
func putWhole(t *testing.T, path string, data []byte) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), ".save-"+filepath.Base(path))
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// TestDeltaTransfer changes a synced 64 MiB file the ways people do and
// checks, by the bytes A's interface sent until B matched, that only what
// changed crossed the link: an overwrite in place, an editor's save with
// one byte inserted, an append, a copy to a new name (no content at all:
// B has it) and a rename.
func TestDeltaTransfer(t *testing.T) {
	const size = 64 << 20
	p := newPair(t)
	data := randomBytes(t, size)
	putWhole(t, filepath.Join(p.dirA, "disk.img"), data)
	converge(t, "the 64 MiB file", p.dirA, p.dirB, 2*time.Minute)

	const mib = 1 << 20
	changes := []struct {
		name  string
		apply func()
		limit int64 // bytes A may send: list, touched chunks, ops, keep-alives
	}{
		{"overwrite 4 KiB in place", func() {
			f, err := os.OpenFile(filepath.Join(p.dirA, "disk.img"), os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteAt(fresh(4096), 20*mib); err != nil {
				t.Fatal(err)
			}
			f.Close()
		}, 2 * mib},
		{"insert 1 byte, saved through a temp file", func() {
			data = slices.Insert(data, 30*mib, 'x')
			putWhole(t, filepath.Join(p.dirA, "disk.img"), data)
		}, 2 * mib},
		{"append 1 MiB", func() {
			f, err := os.OpenFile(filepath.Join(p.dirA, "disk.img"), os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.Write(fresh(mib)); err != nil {
				t.Fatal(err)
			}
			f.Close()
		}, 3 * mib},
		{"copy to a new name", func() {
			b, err := os.ReadFile(filepath.Join(p.dirA, "disk.img"))
			if err != nil {
				t.Fatal(err)
			}
			putWhole(t, filepath.Join(p.dirA, "copy.img"), b)
		}, mib / 4},
		{"rename", func() {
			if err := os.Rename(filepath.Join(p.dirA, "copy.img"), filepath.Join(p.dirA, "moved.img")); err != nil {
				t.Fatal(err)
			}
		}, mib / 4},
	}
	for _, c := range changes {
		before := p.a.IfaceCounter(t, "tx_bytes")
		start := time.Now()
		c.apply()
		converge(t, c.name, p.dirA, p.dirB, 2*time.Minute)
		sent := p.a.IfaceCounter(t, "tx_bytes") - before
		t.Logf("%s: A sent %.3f MiB, B matched after %v", c.name, float64(sent)/mib, time.Since(start).Round(time.Millisecond))
		if sent > c.limit {
			t.Errorf("%s: A sent %.2f MiB, want at most %.2f MiB", c.name, float64(sent)/mib, float64(c.limit)/mib)
		}
	}
}

// TestDeltaResumesAfterAKill kills B with SIGKILL while it assembles a
// new 96 MiB file over a 100 Mbit/s link, restarts it, and requires that
// B ends with the file and that the chunks it had before the kill were not
// fetched again.
func TestDeltaResumesAfterAKill(t *testing.T) {
	const size = 96 << 20
	p := newPair(t)
	p.lab.Shape(t, "100mbit")
	writeFile(t, filepath.Join(p.dirA, "hello.txt"), []byte("connected\n"))
	converge(t, "connected", p.dirA, p.dirB, 20*time.Second)

	before := p.a.IfaceCounter(t, "tx_bytes")
	putWhole(t, filepath.Join(p.dirA, "video.mov"), randomBytes(t, size))
	var partial int64
	netlab.Eventually(t, time.Minute, "B assembling the file", func() (bool, string) {
		entries, _ := os.ReadDir(filepath.Join(p.dirB, stagingDir))
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), ".drive-node-tmp-") {
				// Runs are written at their offsets, several at once;
				// what has arrived shows in the blocks allocated.
				partial = allocated(t, filepath.Join(p.dirB, stagingDir, e.Name()))
				return partial > size/4, fmt.Sprintf("%s, %d bytes allocated", e.Name(), partial)
			}
		}
		return false, "no temp file"
	})
	p.pb.Kill()
	p.pb = p.start(t, p.b, p.dirB, "B")
	converge(t, "after B was killed mid-assembly", p.dirA, p.dirB, 3*time.Minute)
	sent := p.a.IfaceCounter(t, "tx_bytes") - before
	t.Logf("B had %d MiB when killed; A sent %.1f MiB for the %d MiB file", partial>>20, float64(sent)/(1<<20), size>>20)
	if limit := int64(size) + size/10; sent > limit {
		t.Fatalf("A sent %d MiB for a %d MiB file: what B had assembled was fetched again", sent>>20, size>>20)
	}
}

// fresh returns n random bytes unlike any the test's seeded source made
// (randomBytes repeats itself from call to call).
func fresh(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// allocated returns the bytes of disk the file at path takes.
func allocated(t *testing.T, path string) int64 {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return 0
	}
	return st.Blocks * 512
}

// TestDeltaRefusesSpoiledChunks has a peer serve chunks that are not what
// the chunk list says (its copy of the file was damaged on its disk behind
// its back, size and mtime kept, as bit rot or a hostile device would):
// the receiver refuses them, keeps nothing of them, and takes the file
// from an honest peer once one is there.
func TestDeltaRefusesSpoiledChunks(t *testing.T) {
	const size = 24 << 20
	lab := netlab.New(t, 3)
	bin := netlab.BuildBinary(t, "github.com/drive-node/drive-node/cmd/drive-node")
	a, b, c := lab.Host(0), lab.Host(1), lab.Host(2)
	dirA, dirB, dirC := filepath.Join(t.TempDir(), "A"), filepath.Join(t.TempDir(), "B"), filepath.Join(t.TempDir(), "C")
	for _, d := range []string{dirA, dirB, dirC} {
		os.MkdirAll(d, 0o755)
	}
	pairHosts(t, bin, a, b, dirA, dirB, nil)
	pairHosts(t, bin, a, c, dirA, dirC, nil)
	pairHosts(t, bin, b, c, dirB, dirC, nil)
	stop := func(p *netlab.Process, who string) {
		t.Helper()
		p.Signal(syscall.SIGTERM)
		if code, err := p.Wait(20 * time.Second); code != 0 || err != nil {
			t.Fatalf("%s's stop: exit %d %v", who, code, err)
		}
	}

	// A makes the file and C takes it; B is off.
	pa := startDaemon(t, a, bin, dirA, "A")
	pc := startDaemon(t, c, bin, dirC, "C")
	data := fresh(size)
	putWhole(t, filepath.Join(dirA, "f.bin"), data)
	converge(t, "the file on C", dirA, dirC, time.Minute)
	stop(pa, "A")
	stop(pc, "C")

	// C's copy is damaged where each run of chunks B will ask for lies,
	// its size and mtime kept, so C still serves it as the file.
	spoiled := filepath.Join(dirC, "f.bin")
	st, err := os.Stat(spoiled)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(spoiled, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, off := range []int64{5 << 20, 20 << 20} {
		if _, err := f.WriteAt([]byte{data[off] ^ 0xff}, off); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()
	if err := os.Chtimes(spoiled, st.ModTime(), st.ModTime()); err != nil {
		t.Fatal(err)
	}

	pc = startDaemon(t, c, bin, dirC, "C")
	pb := startDaemon(t, b, bin, dirB, "B")
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("B's log:\n%s\nC's log:\n%s", pb.Log(), pc.Log())
		}
	})
	netlab.Eventually(t, time.Minute, "B refusing C's spoiled chunks", func() (bool, string) {
		return strings.Contains(pb.Log(), "does not match its hash"), "no refusal logged"
	})
	if _, err := os.Stat(filepath.Join(dirB, "f.bin")); err == nil {
		t.Fatal("B placed the file from the peer whose chunks it refused")
	}
	pa = startDaemon(t, a, bin, dirA, "A")
	netlab.Eventually(t, 2*time.Minute, "B has A's file", func() (bool, string) {
		got, err := os.ReadFile(filepath.Join(dirB, "f.bin"))
		if err != nil {
			return false, err.Error()
		}
		return slices.Equal(got, data), fmt.Sprintf("%d bytes, not A's", len(got))
	})
}
