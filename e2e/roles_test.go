package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drive-node/drive-node/internal/netlab"
	"github.com/drive-node/drive-node/node"
)

// statusOf waits until the status of the daemon for dir on h satisfies
// ok, and returns it.
func statusOf(t *testing.T, hp *histPair, h *netlab.Host, dir, what string, ok func(node.Status) bool) node.Status {
	t.Helper()
	var st node.Status
	netlab.Eventually(t, 20*time.Second, what, func() (bool, string) {
		var err error
		st, err = readStatus(h, hp.bin, dir)
		return err == nil && ok(st), fmt.Sprintf("role %q, local %+v, differing %+v, %v", st.Role, st.LocalChanges, st.Differing, err)
	})
	return st
}

// TestReceiveOnlyMirror: a receive-only B applies A's files, keeps its
// own edit and new file out of A and lists them; `revert` puts A's
// version back.
func TestReceiveOnlyMirror(t *testing.T) {
	hp := newHistPair(t, nil, []string{"--role", "receive-only"})
	writeFile(t, filepath.Join(hp.dirA, "doc.txt"), []byte("A's document\n"))
	arrives(t, "A's file reaches the receive-only B", filepath.Join(hp.dirB, "doc.txt"), []byte("A's document\n"), 20*time.Second)

	writeFile(t, filepath.Join(hp.dirB, "doc.txt"), []byte("edited on the mirror\n"))
	writeFile(t, filepath.Join(hp.dirB, "mine.txt"), []byte("made on the mirror\n"))
	st := statusOf(t, hp, hp.b, hp.dirB, "B lists its 2 local changes", func(st node.Status) bool { return st.LocalChangeCount == 2 })
	if st.Role != "receive-only" || st.LocalChanges[0].Path != "doc.txt" || st.LocalChanges[1].Path != "mine.txt" {
		t.Fatalf("B's status: role %q, local changes %+v", st.Role, st.LocalChanges)
	}
	writeFile(t, filepath.Join(hp.dirA, "later.txt"), []byte("later on A\n"))
	arrives(t, "A's later file reaches B", filepath.Join(hp.dirB, "later.txt"), []byte("later on A\n"), 20*time.Second)
	if got, _ := os.ReadFile(filepath.Join(hp.dirA, "doc.txt")); string(got) != "A's document\n" {
		t.Fatalf("B's local edit reached A: %q", got)
	}
	absent(t, "A", hp.dirA, "mine.txt")

	out, errOut, code := hp.cli(t, hp.b, "revert", "--folder", hp.dirB)
	if code != 0 {
		t.Fatalf("revert exited %d: %s%s", code, out, errOut)
	}
	if !strings.Contains(out, "restored 1, removed 1") {
		t.Fatalf("revert printed %q; want 1 restored and 1 removed", out)
	}
	converge(t, "B matches A after the revert", hp.dirA, hp.dirB, 20*time.Second)
	statusOf(t, hp, hp.b, hp.dirB, "B lists no local change", func(st node.Status) bool { return st.LocalChangeCount == 0 })
}

// TestSendOnlyMaster: a send-only A publishes; B's edit and new file are
// not applied on A, and A's status lists them; `override` makes B match
// A again.
func TestSendOnlyMaster(t *testing.T) {
	hp := newHistPair(t, []string{"--role", "send-only"}, nil)
	writeFile(t, filepath.Join(hp.dirA, "price-list.txt"), []byte("the master's list\n"))
	arrives(t, "the master's file reaches B", filepath.Join(hp.dirB, "price-list.txt"), []byte("the master's list\n"), 20*time.Second)

	writeFile(t, filepath.Join(hp.dirB, "price-list.txt"), []byte("B changed the prices\n"))
	writeFile(t, filepath.Join(hp.dirB, "extra.txt"), []byte("B's own file\n"))
	st := statusOf(t, hp, hp.a, hp.dirA, "A lists the 2 paths B changed", func(st node.Status) bool { return st.DifferingCount == 2 })
	if st.Role != "send-only" || st.Differing[0].Path != "extra.txt" || st.Differing[1].Path != "price-list.txt" {
		t.Fatalf("A's status: role %q, differing %+v", st.Role, st.Differing)
	}
	if got, _ := os.ReadFile(filepath.Join(hp.dirA, "price-list.txt")); string(got) != "the master's list\n" {
		t.Fatalf("the send-only A applied B's edit: %q", got)
	}
	absent(t, "A", hp.dirA, "extra.txt")

	out, errOut, code := hp.cli(t, hp.a, "override", "--folder", hp.dirA)
	if code != 0 || !strings.Contains(out, "2 paths") {
		t.Fatalf("override exited %d: %s%s", code, out, errOut)
	}
	converge(t, "B matches the master after the override", hp.dirA, hp.dirB, 20*time.Second)
	statusOf(t, hp, hp.a, hp.dirA, "A lists nothing differing", func(st node.Status) bool { return st.DifferingCount == 0 })
}

// TestReceiveOnlyRelayChain: in a chain 1 – 2 – 3 whose middle is a
// receive-only NAS, a change on 1 reaches 3 and one on 3 reaches 1,
// through 2; a change made on 2 reaches neither.
func TestReceiveOnlyRelayChain(t *testing.T) {
	c := startChain(t, [3]string{"laptop-1", "nas", "laptop-3"}, [3][]string{1: {"--role", "receive-only"}})
	bin, lab, dirs := c.bin, c.lab, c.dirs
	writeFile(t, filepath.Join(dirs[0], "from-1.txt"), []byte("made on laptop 1\n"))
	arrives(t, "a change on 1 reaches 3 through the NAS", filepath.Join(dirs[2], "from-1.txt"), []byte("made on laptop 1\n"), 30*time.Second)
	writeFile(t, filepath.Join(dirs[2], "from-3.txt"), []byte("made on laptop 3\n"))
	arrives(t, "a change on 3 reaches 1 through the NAS", filepath.Join(dirs[0], "from-3.txt"), []byte("made on laptop 3\n"), 30*time.Second)
	writeFile(t, filepath.Join(dirs[1], "from-nas.txt"), []byte("made on the NAS\n"))
	netlab.Eventually(t, 20*time.Second, "the NAS lists its local change", func() (bool, string) {
		st, err := readStatus(lab.Host(1), bin, dirs[1])
		return err == nil && st.LocalChangeCount == 1, fmt.Sprintf("%+v %v", st.LocalChanges, err)
	})
	writeFile(t, filepath.Join(dirs[0], "after.txt"), []byte("after the NAS's change\n"))
	arrives(t, "a later change on 1 reaches 3", filepath.Join(dirs[2], "after.txt"), []byte("after the NAS's change\n"), 30*time.Second)
	absent(t, "laptop 1", dirs[0], "from-nas.txt")
	absent(t, "laptop 3", dirs[2], "from-nas.txt")
	converge(t, "laptops 1 and 3 alike", dirs[0], dirs[2], 20*time.Second)
}

// TestSendOnlyMasterTwoReceivers: a send-only master paired with two
// receive-only devices, which do not see each other, keeps both identical
// to itself: its changes reach both, and a local change on one reaches
// neither the master nor the other.
func TestSendOnlyMasterTwoReceivers(t *testing.T) {
	bin := netlab.BuildBinary(t, "github.com/drive-node/drive-node/cmd/drive-node")
	lab := netlab.New(t, 3)
	var dirs [3]string
	for i := range dirs {
		dirs[i] = filepath.Join(t.TempDir(), fmt.Sprint(i))
		if err := os.MkdirAll(dirs[i], 0o755); err != nil {
			t.Fatal(err)
		}
	}
	pairHosts(t, bin, lab.Host(0), lab.Host(1), dirs[0], dirs[1], nil)
	pairHosts(t, bin, lab.Host(0), lab.Host(2), dirs[0], dirs[2], nil)
	procs := []*netlab.Process{
		startDaemon(t, lab.Host(0), bin, dirs[0], "master", "--role", "send-only"),
		startDaemon(t, lab.Host(1), bin, dirs[1], "receiver-1", "--role", "receive-only"),
		startDaemon(t, lab.Host(2), bin, dirs[2], "receiver-2", "--role", "receive-only"),
	}
	t.Cleanup(func() {
		if t.Failed() {
			for i, p := range procs {
				t.Logf("log of %d (last lines):\n%s", i, lastLines(p.Log(), 80))
			}
		}
	})
	writeFile(t, filepath.Join(dirs[0], "catalogue/prices.txt"), []byte("the master's prices\n"))
	writeFile(t, filepath.Join(dirs[0], "catalogue/items.txt"), []byte("the master's items\n"))
	converge(t, "receiver 1 matches the master", dirs[0], dirs[1], 30*time.Second)
	converge(t, "receiver 2 matches the master", dirs[0], dirs[2], 30*time.Second)

	writeFile(t, filepath.Join(dirs[1], "catalogue/prices.txt"), []byte("changed on receiver 1\n"))
	writeFile(t, filepath.Join(dirs[0], "catalogue/news.txt"), []byte("the master's news\n"))
	arrives(t, "the master's next change reaches receiver 2", filepath.Join(dirs[2], "catalogue/news.txt"), []byte("the master's news\n"), 30*time.Second)
	arrives(t, "and receiver 1", filepath.Join(dirs[1], "catalogue/news.txt"), []byte("the master's news\n"), 30*time.Second)
	converge(t, "receiver 2 still matches the master", dirs[0], dirs[2], 30*time.Second)
	for i, dir := range []string{dirs[0], dirs[2]} {
		if got, _ := os.ReadFile(filepath.Join(dir, "catalogue/prices.txt")); string(got) != "the master's prices\n" {
			t.Fatalf("receiver 1's local change reached device %d: %q", []int{0, 2}[i], got)
		}
	}
	writeFile(t, filepath.Join(dirs[0], "catalogue/prices.txt"), []byte("the master's new prices\n"))
	converge(t, "the master's edit replaces receiver 1's local one", dirs[0], dirs[1], 30*time.Second)
	converge(t, "and reaches receiver 2", dirs[0], dirs[2], 30*time.Second)
}
