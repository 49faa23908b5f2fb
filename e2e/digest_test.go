package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/drive-node/drive-node/internal/netlab"
	"github.com/drive-node/drive-node/node"
)

// differences returns the paths and reasons status lists for the one
// peer, as "path: why".
func differences(st node.Status) []string {
	var out []string
	if len(st.Peers) == 1 && st.Peers[0].State != nil {
		for _, d := range st.Peers[0].State.Differences {
			out = append(out, d.Path+": "+d.Why)
		}
	}
	return out
}

// TestStateDigest: after a sync `status --json` on each host shows one
// state and says identical, and `status` says so in words; a file of A's
// that B's own rule keeps out makes the states differ, and each host
// lists that path with why as it sees it; a change made while B is
// stopped is listed on A as one B has not caught up with.
func TestStateDigest(t *testing.T) {
	hp := newHistPairPrepared(t, nil, nil, func(p *pair) {
		if err := os.WriteFile(filepath.Join(p.dirB, ".drive-node", "ignore"), []byte("*.log\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	})
	writeFile(t, filepath.Join(hp.dirA, "run.sh"), []byte("#!/bin/sh\n"))
	if err := os.Chmod(filepath.Join(hp.dirA, "run.sh"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(hp.dirA, "docs/report.txt"), []byte("the report\n"))
	arrives(t, "A's report reaches B", filepath.Join(hp.dirB, "docs/report.txt"), []byte("the report\n"), 20*time.Second)

	identical := func(h *netlab.Host, dir string) node.Status {
		t.Helper()
		var st node.Status
		netlab.Eventually(t, 20*time.Second, h.Name+" says identical", func() (bool, string) {
			var err error
			st, err = readStatus(h, hp.bin, dir)
			ok := err == nil && st.State != nil && len(st.Peers) == 1 && st.Peers[0].State != nil && st.Peers[0].State.Identical
			return ok, fmt.Sprintf("state %+v, peers %+v, %v", st.State, st.Peers, err)
		})
		return st
	}
	stA, stB := identical(hp.a, hp.dirA), identical(hp.b, hp.dirB)
	if stA.State.Root != stB.State.Root || stA.State.Files != 3 { // run.sh, docs, docs/report.txt
		t.Fatalf("A's state %+v, B's %+v; want one state of 3 records", stA.State, stB.State)
	}
	out, _, code := hp.cli(t, hp.a, "status", "--folder", hp.dirA)
	if want := "identical to B (state " + stA.State.Short() + "…)"; code != 0 || !strings.Contains(out, want) {
		t.Fatalf("status exited %d, lacks %q:\n%s", code, want, out)
	}

	// A file B's rule keeps out.
	writeFile(t, filepath.Join(hp.dirA, "logs/x.log"), []byte("log\n"))
	wantDiffs := func(h *netlab.Host, dir string, want []string) node.Status {
		t.Helper()
		var st node.Status
		netlab.Eventually(t, 20*time.Second, "the differences "+h.Name+" lists", func() (bool, string) {
			var err error
			st, err = readStatus(h, hp.bin, dir)
			got := differences(st)
			return err == nil && slices.Equal(got, want), fmt.Sprintf("%q, want %q (%v)", got, want, err)
		})
		return st
	}
	stB = wantDiffs(hp.b, hp.dirB, []string{"logs/x.log: " + node.WhyIgnored})
	stA = wantDiffs(hp.a, hp.dirA, []string{"logs/x.log: " + node.WhyOnPeer})
	if stA.State.Root == stB.State.Root || stA.Peers[0].State.Identical || stB.Peers[0].State.Identical {
		t.Fatalf("the states do not differ: A %+v, B %+v", stA.State, stB.State)
	}

	// B stops; A's change is one B has not caught up with.
	if err := hp.pb.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if _, err := hp.pb.Wait(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(hp.dirA, "later.txt"), []byte("later\n"))
	wantDiffs(hp.a, hp.dirA, []string{"later.txt: " + node.WhyPeerBehind})
}
