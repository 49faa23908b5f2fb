package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drive-node/drive-node/internal/netlab"
	"github.com/drive-node/drive-node/node"
)

// eventsIn parses the JSON lines `drive-node events` printed.
func eventsIn(log string) []node.Event {
	var out []node.Event
	for _, line := range strings.Split(log, "\n") {
		var ev node.Event
		if json.Unmarshal([]byte(line), &ev) == nil && ev.ID != 0 {
			out = append(out, ev)
		}
	}
	return out
}

// appliedPaths returns the paths of the applied events among evs.
func appliedPaths(evs []node.Event) map[string]bool {
	out := map[string]bool{}
	for _, ev := range evs {
		if ev.Type == node.EventApplied {
			out[ev.Path] = true
		}
	}
	return out
}

// peerProgress returns the progress status shows for the one peer, or nil.
func peerProgress(h *netlab.Host, bin, dir string) (*node.PeerProgress, string) {
	st, err := readStatus(h, bin, dir)
	if err != nil || len(st.Peers) != 1 || st.Peers[0].PeerProgress == nil {
		return nil, fmt.Sprintf("%+v %v", st.Peers, err)
	}
	p := st.Peers[0].PeerProgress
	return p, fmt.Sprintf("%+v", *p)
}

// TestLiveAPI follows a sync through the command line's live view: B's
// event stream (in order, and the same when resumed from an ID), the
// progress status shows while B is paused and after it resumes, pause
// holding back both what B applies and what it sends, and B's metrics.
func TestLiveAPI(t *testing.T) {
	lab := netlab.New(t, 2)
	p := &pair{bin: netlab.BuildBinary(t, "github.com/drive-node/drive-node/cmd/drive-node"), lab: lab}
	p.a, p.b = lab.Host(0), lab.Host(1)
	p.dirA, p.dirB = filepath.Join(t.TempDir(), "A"), filepath.Join(t.TempDir(), "B")
	os.MkdirAll(p.dirA, 0o755)
	os.MkdirAll(p.dirB, 0o755)
	pairHosts(t, p.bin, p.a, p.b, p.dirA, p.dirB, nil)
	p.pa = p.start(t, p.a, p.dirA, "A")
	p.pb = startDaemon(t, p.b, p.bin, p.dirB, "B", "--metrics", "127.0.0.1:9464")
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("A's log:\n%s\nB's log:\n%s", p.pa.Log(), p.pb.Log())
		}
	})
	bin, a, b, dirA, dirB := p.bin, p.a, p.b, p.dirA, p.dirB
	netlab.Eventually(t, 20*time.Second, "both connected", func() (bool, string) {
		pa, da := peerProgress(a, bin, dirA)
		pb, db := peerProgress(b, bin, dirB)
		return pa != nil && pb != nil, da + " / " + db
	})
	follow := b.Start(t, bin, "events", "--folder", dirB, "--since", "0")

	// Paused, B takes A's changes into its log but applies none of them
	// and sends none of its own; status counts what waits.
	out := b.Run(t, bin, "pause", "--folder", dirB)
	if !strings.HasPrefix(out, "Paused") {
		t.Fatalf("pause: %q", out)
	}
	const files = 20
	var bytes uint64
	for i := range files {
		data := fmt.Appendf(nil, "file %d %s\n", i, strings.Repeat("x", i*50))
		bytes += uint64(len(data))
		writeFile(t, filepath.Join(dirA, fmt.Sprintf("f%02d.txt", i)), data)
	}
	writeFile(t, filepath.Join(dirB, "from-b.txt"), []byte("made on B while paused\n"))
	netlab.Eventually(t, 20*time.Second, "B counts A's changes as waiting", func() (bool, string) {
		pp, d := peerProgress(b, bin, dirB)
		return pp != nil && pp.ToReceiveFiles == files && pp.ToReceiveBytes == bytes && pp.ToSendFiles == 1, d
	})
	if _, err := os.Stat(filepath.Join(dirB, "f00.txt")); err == nil {
		t.Fatal("a paused daemon applied a change")
	}
	if _, err := os.Stat(filepath.Join(dirA, "from-b.txt")); err == nil {
		t.Fatal("a paused daemon sent a change")
	}
	if pp, d := peerProgress(a, bin, dirA); pp == nil || pp.ToSendFiles != files {
		t.Fatalf("A's progress while B is paused: %s, want %d to send", d, files)
	}
	b.Run(t, bin, "resume", "--folder", dirB)
	converge(t, "after resume both hold the same", dirA, dirB, 20*time.Second)
	for _, side := range []struct {
		h   *netlab.Host
		dir string
	}{{a, dirA}, {b, dirB}} {
		netlab.Eventually(t, 20*time.Second, "progress at zero on "+side.h.Name, func() (bool, string) {
			pp, d := peerProgress(side.h, bin, side.dir)
			return pp != nil && *pp == node.PeerProgress{RateBytesPerS: pp.RateBytesPerS, ETAS: pp.ETAS} && pp.ETAS != nil && *pp.ETAS == 0, d
		})
	}

	// The stream saw every change applied, in order of ID, none missing.
	var evs []node.Event
	netlab.Eventually(t, 20*time.Second, "applied events", func() (bool, string) {
		evs = eventsIn(follow.Log())
		return len(appliedPaths(evs)) == files, fmt.Sprintf("%d applied of %d", len(appliedPaths(evs)), files)
	})
	for i := 1; i < len(evs); i++ {
		if evs[i].ID != evs[i-1].ID+1 {
			t.Fatalf("event %d has ID %d after %d", i, evs[i].ID, evs[i-1].ID)
		}
	}
	var kinds []string
	for _, ev := range evs {
		kinds = append(kinds, string(ev.Type))
	}
	seq := strings.Join(kinds, " ")
	for _, want := range []string{"paused", "local_change", "resumed", "transfer_finished", "applied"} {
		if !strings.Contains(seq, want) {
			t.Fatalf("no %s event in %s", want, seq)
		}
	}
	if strings.Index(seq, "resumed") > strings.Index(seq, "applied") {
		t.Fatalf("applied before resumed: %s", seq)
	}
	// Resumed from an ID in the middle: the same events after it.
	mid := evs[len(evs)/2]
	again := b.Start(t, bin, "events", "--folder", dirB, "--since", fmt.Sprint(mid.ID))
	last := evs[len(evs)-1].ID
	var got []node.Event
	netlab.Eventually(t, 20*time.Second, "resumed stream", func() (bool, string) {
		got = eventsIn(again.Log())
		return len(got) > 0 && got[len(got)-1].ID >= last, fmt.Sprintf("%d events", len(got))
	})
	again.Kill()
	want := evs[len(evs)/2+1:]
	for i, ev := range want {
		if got[i].ID != ev.ID || got[i].Type != ev.Type || got[i].Path != ev.Path {
			t.Fatalf("resumed event %d: %+v, first stream had %+v", i, got[i], ev)
		}
	}

	// B's metrics, on loopback inside its host.
	metrics := b.Run(t, "curl", "-sf", "http://127.0.0.1:9464/metrics")
	for _, name := range []string{"drive_node_ops_recorded_total 1", fmt.Sprintf("drive_node_ops_applied_total %d", files), "drive_node_peers_connected 1",
		"drive_node_content_received_bytes_total", "drive_node_content_sent_bytes_total", "drive_node_pending_ops 0", "drive_node_held_ops 0",
		"drive_node_conflict_copies_total 0", `drive_node_peer_lag_ops{direction="receive"`} {
		if !strings.Contains(metrics, name) {
			t.Fatalf("no %q in the metrics:\n%s", name, metrics)
		}
	}
}
