package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drive-node/drive-node/internal/netlab"
)

// pair is two paired hosts on a lab LAN, each with a folder and a
// running daemon.
type pair struct {
	lab        *netlab.Lab
	bin        string
	a, b       *netlab.Host
	dirA, dirB string
	pa, pb     *netlab.Process
	extra      func(dir string) []string // location flags for dir, or nil
}

// start starts a daemon for dir on h.
func (p *pair) start(t *testing.T, h *netlab.Host, dir, name string) *netlab.Process {
	return startDaemon(t, h, p.bin, dir, name, p.loc(dir)...)
}

// loc returns the flags that locate dir's state for a command.
func (p *pair) loc(dir string) []string {
	if p.extra == nil {
		return nil
	}
	return p.extra(dir)
}

// newPair builds a two-host lab, pairs the hosts and starts both daemons.
// Their logs are printed if the test fails.
func newPair(t *testing.T) *pair { return newPairWith(t, false) }

// newPairWith is newPair; with outsideState each host keeps its state next
// to the folder (--state DIR.state), as a NAS install does.
func newPairWith(t *testing.T, outsideState bool) *pair {
	t.Helper()
	return newPairIn(t, netlab.New(t, 2), outsideState)
}

// newPairIn is newPairWith on lab, whose hosts 0 and 1 become A and B;
// the test has the others to itself.
func newPairIn(t *testing.T, lab *netlab.Lab, outsideState bool) *pair {
	t.Helper()
	p := &pair{bin: netlab.BuildBinary(t, "github.com/drive-node/drive-node/cmd/drive-node"), lab: lab}
	p.a, p.b = p.lab.Host(0), p.lab.Host(1)
	p.dirA, p.dirB = filepath.Join(t.TempDir(), "A"), filepath.Join(t.TempDir(), "B")
	os.MkdirAll(p.dirA, 0o755)
	os.MkdirAll(p.dirB, 0o755)
	if outsideState {
		p.extra = func(dir string) []string { return []string{"--state", dir + ".state"} }
	}
	pairHosts(t, p.bin, p.a, p.b, p.dirA, p.dirB, p.extra)
	p.pa = p.start(t, p.a, p.dirA, "A")
	p.pb = p.start(t, p.b, p.dirB, "B")
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("A's log:\n%s\nB's log:\n%s", p.pa.Log(), p.pb.Log())
		}
	})
	return p
}

// pairHosts creates both identities and pairs each host with the other;
// extra, if not nil, gives each folder's state location flags.
func pairHosts(t *testing.T, bin string, a, b *netlab.Host, dirA, dirB string, extra func(string) []string) {
	t.Helper()
	loc := func(dir string) []string {
		args := []string{"--folder", dir}
		if extra != nil {
			args = append(args, extra(dir)...)
		}
		return args
	}
	idA := lastLine(a.Run(t, bin, append([]string{"id"}, loc(dirA)...)...))
	idB := lastLine(b.Run(t, bin, append([]string{"id"}, loc(dirB)...)...))
	a.Run(t, bin, append(append([]string{"pair"}, loc(dirA)...), "--name", "B", idB)...)
	b.Run(t, bin, append(append([]string{"pair"}, loc(dirB)...), "--name", "A", idA)...)
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

func startDaemon(t *testing.T, h *netlab.Host, bin, dir, name string, extra ...string) *netlab.Process {
	t.Helper()
	args := append([]string{"--folder", dir, "--name", name, "--listen", ":22000", "--log-level", "debug"}, extra...)
	return h.Start(t, bin, args...)
}

// randomBytes returns n bytes drawn from t's seeded source (see testSeed).
func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	rng := testRand(t)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// converge waits until both folders are the same, logging how long it took.
func converge(t *testing.T, step, a, b string, deadline time.Duration) {
	t.Helper()
	took := netlab.Eventually(t, deadline, step, func() (bool, string) {
		d := treeDiff(a, b)
		return d == "", d
	})
	t.Logf("%-60s %6.2fs", step, took.Seconds())
}

// TestSeedScenario is the proof every change must keep passing: two hosts
// on a LAN, a change on A reaches B; with the internet gone it still does;
// B off while A changes, B back on catches up; and a change on B reaches A.
func TestSeedScenario(t *testing.T) {
	p := newPair(t)
	lab, bin, b, dirA, dirB := p.lab, p.bin, p.b, p.dirA, p.dirB

	// (1) A file created on A appears on B.
	writeFile(t, filepath.Join(dirA, "hello.txt"), []byte("hello from A\n"))
	converge(t, "(1) create on A reaches B", dirA, dirB, 20*time.Second)

	// (2) Modify it and add a 3 MB file in a subfolder.
	writeFile(t, filepath.Join(dirA, "hello.txt"), []byte("hello again from A, modified\n"))
	writeFile(t, filepath.Join(dirA, "photos/2026/big.bin"), randomBytes(t, 3<<20))
	converge(t, "(2) modify + 3 MB file in a subfolder", dirA, dirB, 20*time.Second)

	// (3) The internet goes away; the LAN stays.
	lab.InternetDown(t)
	writeFile(t, filepath.Join(dirA, "offline.txt"), []byte("written with no internet\n"))
	converge(t, "(3) edit with no default route reaches B", dirA, dirB, 20*time.Second)

	// (4) B is killed; A changes a lot; B comes back and catches up.
	before, err := readStatus(p.a, bin, dirA)
	if err != nil {
		t.Fatal(err)
	}
	p.pb.Kill()
	writeFile(t, filepath.Join(dirA, "hello.txt"), []byte("changed while B was off\n"))
	for i := 0; i < 200; i++ {
		writeFile(t, filepath.Join(dirA, fmt.Sprintf("batch/dir%02d/file%03d.txt", i%10, i)), []byte(fmt.Sprintf("file %d\n", i)))
	}
	if err := os.Remove(filepath.Join(dirA, "offline.txt")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dirA, "photos/2026/big.bin"), filepath.Join(dirA, "photos/big-renamed.bin")); err != nil {
		t.Fatal(err)
	}
	// A records the 203 changes (an edit, 200 files, a delete, a rename)
	// while B is away.
	netlab.Eventually(t, 20*time.Second, "A records the changes made while B is off", func() (bool, string) {
		st, err := readStatus(p.a, bin, dirA)
		return err == nil && st.Ops >= before.Ops+203, fmt.Sprintf("%d ops, %d before, %v", st.Ops, before.Ops, err)
	})
	p.pb = startDaemon(t, b, bin, dirB, "B")
	converge(t, "(4) B restarted after kill -9 catches up", dirA, dirB, 30*time.Second)

	// (5) A change on B reaches A.
	writeFile(t, filepath.Join(dirB, "from-b.txt"), []byte("B was here\n"))
	converge(t, "(5) edit on B reaches A", dirA, dirB, 20*time.Second)

	// Both logs agree, and status reports the peer connected.
	st := b.Run(t, bin, "status", "--folder", dirB)
	if !strings.Contains(st, "connected") {
		t.Fatalf("status on B does not show A connected:\n%s", st)
	}
}
