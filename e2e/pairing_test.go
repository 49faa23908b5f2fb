package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/drive-node/drive-node/internal/netlab"
	"github.com/drive-node/drive-node/node"
)

// pairingLab is hosts with running daemons that are paired with nobody.
type pairingLab struct {
	*histPair
	hosts []*netlab.Host
	dirs  []string
	procs []*netlab.Process
	ids   []string
}

// newPairingLab makes n hosts of a LAN, named A, B, ..., each with a
// folder paired with nobody, and starts their daemons if daemons.
func newPairingLab(t *testing.T, n int, daemons bool) *pairingLab {
	t.Helper()
	lab := netlab.New(t, n)
	pl := &pairingLab{histPair: &histPair{pair: &pair{bin: netlab.BuildBinary(t, "github.com/drive-node/drive-node/cmd/drive-node"), lab: lab}}}
	for i := range n {
		h := lab.Host(i)
		name := string(rune('A' + i))
		dir := filepath.Join(t.TempDir(), name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		pl.hosts = append(pl.hosts, h)
		pl.dirs = append(pl.dirs, dir)
		pl.ids = append(pl.ids, lastLine(h.Run(t, pl.bin, "id", "--folder", dir)))
	}
	if daemons {
		pl.startDaemons(t)
	}
	return pl
}

// startDaemons starts every host's daemon and waits until they are ready.
func (pl *pairingLab) startDaemons(t *testing.T) {
	t.Helper()
	for i, h := range pl.hosts {
		pl.procs = append(pl.procs, startDaemon(t, h, pl.bin, pl.dirs[i], string(rune('A'+i))))
	}
	t.Cleanup(func() {
		if t.Failed() {
			for i, p := range pl.procs {
				t.Logf("%s's log (last lines):\n%s", pl.hosts[i].Name, lastLines(p.Log(), 80))
			}
		}
	})
	for i, h := range pl.hosts {
		pl.waitReady(t, h, pl.dirs[i])
	}
}

// invite starts `drive-node invite` on host i and returns it with the
// code it printed.
func (pl *pairingLab) invite(t *testing.T, i int, extra ...string) (*netlab.Process, string) {
	t.Helper()
	p := pl.hosts[i].Start(t, pl.bin, append([]string{"invite", "--folder", pl.dirs[i]}, extra...)...)
	re := regexp.MustCompile(`Pairing code: (\S+)`)
	var code string
	netlab.Eventually(t, 10*time.Second, "invite prints a code", func() (bool, string) {
		m := re.FindStringSubmatch(p.Log())
		if m != nil {
			code = m[1]
		}
		return m != nil, p.Log()
	})
	return p, code
}

// peers reads `drive-node peers --json` of host i.
func (pl *pairingLab) peers(t *testing.T, i int) node.PeerList {
	t.Helper()
	out, errOut, code := pl.cli(t, pl.hosts[i], "peers", "--folder", pl.dirs[i], "--json")
	if code != 0 {
		t.Fatalf("peers on %s exited %d: %s", pl.hosts[i].Name, code, errOut)
	}
	var l node.PeerList
	if err := json.Unmarshal([]byte(out), &l); err != nil {
		t.Fatalf("peers on %s: %v: %s", pl.hosts[i].Name, err, out)
	}
	return l
}

// paired lists the IDs host i has paired.
func (pl *pairingLab) paired(t *testing.T, i int) []string {
	var ids []string
	for _, p := range pl.peers(t, i).Paired {
		ids = append(ids, p.ID)
	}
	return ids
}

// exited waits for p to end and returns its exit code and output.
func exited(t *testing.T, p *netlab.Process, what string) (int, string) {
	t.Helper()
	code, err := p.Wait(20 * time.Second)
	if err != nil {
		t.Fatalf("%s: %v\n%s", what, err, p.Log())
	}
	return code, p.Log()
}

// TestPairingInviteJoin: a third host that overhears the invite's number
// on the LAN and guesses the words burns the invite and pairs with
// nothing; a new invite on A, `join CODE` on B (found over mDNS) pairs
// both at once and A's file reaches B; `unpair` on A drops B at once.
func TestPairingInviteJoin(t *testing.T) {
	pl := newPairingLab(t, 3, true)
	const A, B, C = 0, 1, 2

	// C guesses: same number (announced on the LAN), other words.
	inv, code := pl.invite(t, A)
	parts := strings.SplitN(code, "-", 2)
	guess := parts[0] + "-academy-acrobat-active"
	if guess == code {
		guess = parts[0] + "-actor-adam-admiral"
	}
	out, errOut, rc := pl.cli(t, pl.hosts[C], "join", "--folder", pl.dirs[C], guess)
	if rc == 0 || !strings.Contains(errOut, "wrong pairing code") {
		t.Fatalf("join with a guessed code on C: exit %d: %s%s", rc, out, errOut)
	}
	rc, log := exited(t, inv, "invite on A after a wrong code")
	if rc == 0 || !strings.Contains(log, "wrong pairing code") {
		t.Fatalf("invite on A after a wrong code: exit %d:\n%s", rc, log)
	}
	// The burnt code does not work for B either (A no longer announces
	// it, so B asks A's address directly).
	if _, errOut, rc := pl.cli(t, pl.hosts[B], "join", "--folder", pl.dirs[B], "--peer", pl.hosts[A].Addr.String()+":22000", code); rc == 0 {
		t.Fatalf("the burnt code paired B: %s", errOut)
	}
	for _, i := range []int{A, B, C} {
		if ids := pl.paired(t, i); len(ids) != 0 {
			t.Fatalf("%s paired %v after the attempts", pl.hosts[i].Name, ids)
		}
	}

	// A new invite; B joins and gets A's file.
	first := []byte("waiting on A before the join\n")
	writeFile(t, filepath.Join(pl.dirs[A], "first.txt"), first)
	inv, code = pl.invite(t, A)
	start := time.Now()
	out, errOut, rc = pl.cli(t, pl.hosts[B], "join", "--folder", pl.dirs[B], code)
	if rc != 0 || !strings.Contains(out, "Paired with A ("+pl.ids[A]+")") {
		t.Fatalf("join on B: exit %d: %s%s", rc, out, errOut)
	}
	joined := time.Since(start)
	arrives(t, "A's file reaches B after the join", filepath.Join(pl.dirs[B], "first.txt"), first, 20*time.Second)
	t.Logf("join took %.3fs; join to first synced file %.3fs", joined.Seconds(), time.Since(start).Seconds())
	if rc, log := exited(t, inv, "invite on A"); rc != 0 || !strings.Contains(log, "Paired with B ("+pl.ids[B]+")") {
		t.Fatalf("invite on A: exit %d:\n%s", rc, log)
	}
	if a, b, c := pl.paired(t, A), pl.paired(t, B), pl.paired(t, C); fmt.Sprint(a, b, c) != fmt.Sprint([]string{pl.ids[B]}, []string{pl.ids[A]}, []string(nil)) {
		t.Fatalf("paired: A %v, B %v, C %v", a, b, c)
	}
	// C tried with a wrong code only: it never became a peer of anyone.
	writeFile(t, filepath.Join(pl.dirs[B], "from-b.txt"), []byte("B's\n"))
	arrives(t, "B's file reaches A", filepath.Join(pl.dirs[A], "from-b.txt"), []byte("B's\n"), 20*time.Second)
	absent(t, "C", pl.dirs[C], "first.txt", "from-b.txt")

	// Unpair: A drops B at once, and B's next attempt is listed on A.
	start = time.Now()
	if out, errOut, rc := pl.cli(t, pl.hosts[A], "unpair", "--folder", pl.dirs[A], pl.ids[B][:9]); rc != 0 {
		t.Fatalf("unpair on A: exit %d: %s%s", rc, out, errOut)
	}
	netlab.Eventually(t, 10*time.Second, "B sees the connection to A dropped", func() (bool, string) {
		l := pl.peers(t, B)
		return len(l.Paired) == 1 && !l.Paired[0].Connected, fmt.Sprintf("%+v", l.Paired)
	})
	t.Logf("unpair to connection dropped on B: %.3fs", time.Since(start).Seconds())
	netlab.Eventually(t, 20*time.Second, "A lists B among the refused devices", func() (bool, string) {
		l := pl.peers(t, A)
		return len(l.Unpaired) > 0 && l.Unpaired[0].ID == pl.ids[B] && len(l.Paired) == 0, fmt.Sprintf("%+v", l)
	})
	writeFile(t, filepath.Join(pl.dirs[A], "after-unpair.txt"), []byte("not for B\n"))
	// B is not paired on A: nothing reaches it, and `peers` shows it is
	// not connected (checked once A recorded the new file).
	netlab.Eventually(t, 10*time.Second, "A records its new file", func() (bool, string) {
		st, err := readStatus(pl.hosts[A], pl.bin, pl.dirs[A])
		return err == nil && st.Files >= 3, fmt.Sprintf("%d files, %v", st.Files, err)
	})
	absent(t, "B", pl.dirs[B], "after-unpair.txt")
}

// TestPairingWithoutDaemons: devices are paired before their daemons ever
// ran: `invite` answers on a listener of its own and announces over mDNS,
// `join` finds it; the daemons started afterwards connect and sync.
func TestPairingWithoutDaemons(t *testing.T) {
	pl := newPairingLab(t, 2, false)
	const A, B = 0, 1
	inv, code := pl.invite(t, A, "--name", "A")
	start := time.Now()
	out, errOut, rc := pl.cli(t, pl.hosts[B], "join", "--folder", pl.dirs[B], "--name", "B", code)
	if rc != 0 || !strings.Contains(out, "Paired with A ("+pl.ids[A]+")") {
		t.Fatalf("join on B: exit %d: %s%s\ninvite's output:\n%s", rc, out, errOut, inv.Log())
	}
	t.Logf("join without daemons took %.3fs", time.Since(start).Seconds())
	if rc, log := exited(t, inv, "invite on A"); rc != 0 || !strings.Contains(log, "Paired with B ("+pl.ids[B]+")") {
		t.Fatalf("invite on A: exit %d:\n%s", rc, log)
	}
	if a, b := pl.paired(t, A), pl.paired(t, B); fmt.Sprint(a, b) != fmt.Sprint([]string{pl.ids[B]}, []string{pl.ids[A]}) {
		t.Fatalf("paired: A %v, B %v", a, b)
	}
	data := []byte("paired before the daemons ran\n")
	writeFile(t, filepath.Join(pl.dirs[A], "doc.txt"), data)
	pl.startDaemons(t)
	arrives(t, "A's file reaches B once the daemons run", filepath.Join(pl.dirs[B], "doc.txt"), data, 20*time.Second)
}

// TestPairingMesh: B and C join A, then D joins B. Introductions pair
// every device with every other, so a file made on D reaches A, B and C,
// and one made on C reaches D. `unpair D` on A is carried to C, which had
// D by introduction: C drops D (its peers no longer list it, and it lists
// D among the refused devices), while B, which paired D by join, keeps it.
func TestPairingMesh(t *testing.T) {
	pl := newPairingLab(t, 4, true)
	const A, B, C, D = 0, 1, 2, 3
	join := func(inviter, joiner int) {
		t.Helper()
		inv, code := pl.invite(t, inviter)
		if out, errOut, rc := pl.cli(t, pl.hosts[joiner], "join", "--folder", pl.dirs[joiner], code); rc != 0 {
			t.Fatalf("join on %s: exit %d: %s%s", pl.hosts[joiner].Name, rc, out, errOut)
		}
		if rc, log := exited(t, inv, "invite on "+pl.hosts[inviter].Name); rc != 0 {
			t.Fatalf("invite on %s: exit %d:\n%s", pl.hosts[inviter].Name, rc, log)
		}
	}
	join(A, B)
	join(A, C)
	join(B, D)
	// Every device pairs, and connects to, every other.
	netlab.Eventually(t, 20*time.Second, "a full mesh of connections", func() (bool, string) {
		var missing []string
		for i := range pl.hosts {
			connected := map[string]bool{}
			for _, p := range pl.peers(t, i).Paired {
				connected[p.ID] = p.Connected
			}
			for j := range pl.hosts {
				if j != i && !connected[pl.ids[j]] {
					missing = append(missing, pl.hosts[i].Name+"→"+pl.hosts[j].Name)
				}
			}
		}
		return len(missing) == 0, fmt.Sprint("not connected: ", missing)
	})
	byIntro := func(i, j int) node.PeerStatus {
		for _, p := range pl.peers(t, i).Paired {
			if p.ID == pl.ids[j] {
				return p
			}
		}
		return node.PeerStatus{}
	}
	// C learns D from B, or from A once A learned it: whichever comes
	// first.
	if p := byIntro(C, D); p.PairedBy != "introduction" || (p.IntroducedBy != pl.ids[B] && p.IntroducedBy != pl.ids[A]) {
		t.Fatalf("C has D paired by %q, introduced by %q; want by B's or A's introduction", p.PairedBy, p.IntroducedBy)
	}
	fromD := []byte("made on D\n")
	writeFile(t, filepath.Join(pl.dirs[D], "from-d.txt"), fromD)
	for _, i := range []int{A, B, C} {
		arrives(t, "D's file reaches "+pl.hosts[i].Name, filepath.Join(pl.dirs[i], "from-d.txt"), fromD, 20*time.Second)
	}
	fromC := []byte("made on C\n")
	writeFile(t, filepath.Join(pl.dirs[C], "from-c.txt"), fromC)
	arrives(t, "C's file reaches D", filepath.Join(pl.dirs[D], "from-c.txt"), fromC, 20*time.Second)

	// Unpair D on A: carried to C, not to B (which paired D itself).
	if out, errOut, rc := pl.cli(t, pl.hosts[A], "unpair", "--folder", pl.dirs[A], pl.ids[D][:9]); rc != 0 {
		t.Fatalf("unpair on A: exit %d: %s%s", rc, out, errOut)
	}
	netlab.Eventually(t, 20*time.Second, "C drops D and refuses its handshakes", func() (bool, string) {
		l := pl.peers(t, C)
		for _, p := range l.Paired {
			if p.ID == pl.ids[D] {
				return false, "C still lists D as paired"
			}
		}
		for _, u := range l.Unpaired {
			if u.ID == pl.ids[D] {
				return true, ""
			}
		}
		return false, fmt.Sprintf("D not among C's refused devices: %+v", l.Unpaired)
	})
	if p := byIntro(B, D); p.PairedBy != "code" {
		t.Fatalf("B has D paired by %q after A's revocation; want kept, by code", p.PairedBy)
	}
	for _, i := range []int{A, C} {
		for _, id := range pl.paired(t, i) {
			if id == pl.ids[D] {
				t.Fatalf("%s paired D again after the revocation", pl.hosts[i].Name)
			}
		}
	}
}
