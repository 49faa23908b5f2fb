package node

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/drive-node/drive-node/certs"
	"github.com/drive-node/drive-node/content"
	"github.com/drive-node/drive-node/internal/clock"
	"github.com/drive-node/drive-node/oplog"
	"github.com/drive-node/drive-node/quicnet"
)

func TestStallWatchNeedsTheWholeWaitWithoutProgress(t *testing.T) {
	var w stallWatch
	t0 := time.Unix(1000, 0)
	steps := []struct {
		at       time.Duration
		progress uint64
		idle     time.Duration
	}{
		{0, 5, 0},                               // first look
		{30 * time.Second, 5, 30 * time.Second}, // nothing moved
		{60 * time.Second, 6, 0},                // one op or byte: the wait starts over
		{89 * time.Second, 6, 29 * time.Second},
		{150 * time.Second, 6, 90 * time.Second},
	}
	for _, s := range steps {
		if got := w.idleFor(t0.Add(s.at), s.progress); got != s.idle {
			t.Fatalf("at %s with progress %d: idle %s, want %s", s.at, s.progress, got, s.idle)
		}
	}
	w.reset(t0.Add(150 * time.Second))
	if got := w.idleFor(t0.Add(160*time.Second), 6); got != 10*time.Second {
		t.Fatalf("after a reset: idle %s, want 10s", got)
	}
}

func TestStuckOnNamesPeersThatHaveThePendingOps(t *testing.T) {
	a, b, c := certs.DeviceID{1}, certs.DeviceID{2}, certs.DeviceID{3}
	logged := map[certs.DeviceID]uint64{a: 10, b: 4}
	cases := []struct {
		name    string
		applied map[certs.DeviceID]uint64
		peers   map[certs.DeviceID]map[certs.DeviceID]uint64
		settled map[certs.DeviceID]bool
		want    []certs.DeviceID
	}{
		{"all applied", map[certs.DeviceID]uint64{a: 10, b: 4}, map[certs.DeviceID]map[certs.DeviceID]uint64{a: {a: 10}}, nil, nil},
		{"the origin itself has them", map[certs.DeviceID]uint64{a: 7, b: 4}, map[certs.DeviceID]map[certs.DeviceID]uint64{a: {a: 10}}, nil, []certs.DeviceID{a}},
		{"a relay has them", map[certs.DeviceID]uint64{a: 7, b: 4}, map[certs.DeviceID]map[certs.DeviceID]uint64{c: {a: 8}}, nil, []certs.DeviceID{c}},
		{"the connected peer lacks them", map[certs.DeviceID]uint64{a: 7, b: 4}, map[certs.DeviceID]map[certs.DeviceID]uint64{c: {a: 7, b: 4}}, nil, nil},
		{"an op that cannot be applied here", map[certs.DeviceID]uint64{a: 7, b: 4}, map[certs.DeviceID]map[certs.DeviceID]uint64{a: {a: 10}}, map[certs.DeviceID]bool{a: true}, nil},
		{"no peer", map[certs.DeviceID]uint64{a: 7}, nil, nil, nil},
	}
	if got := stuckOn(a, logged, map[certs.DeviceID]uint64{a: 7, b: 4}, map[certs.DeviceID]map[certs.DeviceID]uint64{c: {a: 10}}, nil); got != nil {
		t.Errorf("this device's own pending ops: got %v, want none (no peer can help)", got)
	}
	for _, c := range cases {
		got := stuckOn(certs.DeviceID{9}, logged, c.applied, c.peers, c.settled)
		slices.SortFunc(got, func(x, y certs.DeviceID) int { return strings.Compare(string(x[:]), string(y[:])) })
		if !slices.Equal(got, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, got, c.want)
		}
	}
}

func TestPendingOfSaysWhyPerOrigin(t *testing.T) {
	a, b, c := certs.DeviceID{1}, certs.DeviceID{2}, certs.DeviceID{3}
	logged := map[certs.DeviceID]uint64{a: 10, b: 4, c: 2}
	applied := map[certs.DeviceID]uint64{a: 7, c: 2}
	why := map[certs.DeviceID]string{a: pendingReason(fmt.Errorf("content x: %w: no connected peer", ErrContentUnavailable))}
	got := pendingOf(logged, applied, why, "")
	want := []Pending{
		{Origin: a.String(), Logged: 10, Applied: 7, Ops: 3, Reason: "waiting for content: content x: content not available: no connected peer"},
		{Origin: b.String(), Logged: 4, Applied: 0, Ops: 4, Reason: reasonApplying},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
	if got := pendingOf(logged, applied, nil, reasonPaused); got[0].Reason != reasonPaused || got[1].Reason != reasonPaused {
		t.Fatalf("paused: %+v", got)
	}
	if r := pendingReason(fmt.Errorf("place: %w", ErrDiskFull)); r != reasonDiskFull {
		t.Fatalf("disk full: %q", r)
	}
	if r := pendingReason(os.ErrPermission); !strings.HasPrefix(r, reasonFailed+": ") {
		t.Fatalf("other failure: %q", r)
	}
}

// TestStatusCountsOpsWaitingForContent: a peer sends three ops of which it
// can serve only the first. The second waits for a peer that has its
// content, and the third behind it; status says so, per origin, with the
// reason, and not "nothing to do". Once the content can be had, both apply and status
// shows nothing pending.
func TestStatusCountsOpsWaitingForContent(t *testing.T) {
	folder := t.TempDir()
	peer := pairedPeer(t, folder, "peer")
	n := startNode(t, folder, freeUDPPort(t))
	one, two, three := []byte("one"), []byte("two, served late"), []byte("three")
	src := &memSource{data: map[content.Hash][]byte{content.Sum(one): one, content.Sum(three): three}}
	var ops []oplog.Op
	for i, data := range [][]byte{one, two, three} {
		ops = append(ops, oplog.Op{Origin: peer.ID, Seq: uint64(i + 1), Lamport: uint64(i + 1), Kind: oplog.KindWrite,
			Path: fmt.Sprintf("f%d.txt", i+1), Hash: content.Sum(data), Size: int64(len(data)), Mode: 0o644, MTime: time.Now().UnixNano()})
	}
	sendAsPeer(t, peer, n, src, ops)
	stateDir := DefaultStateDir(folder, "")
	waitFor(t, "status naming the ops that wait for content", func() string {
		st, err := ReadStatus(context.Background(), stateDir)
		if err != nil {
			return err.Error()
		}
		if st.PendingOps != 2 || len(st.Pending) != 1 {
			return fmt.Sprintf("pending %d: %+v", st.PendingOps, st.Pending)
		}
		p := st.Pending[0]
		if p.Origin != peer.ID.String() || p.Name != "peer" || p.Applied != 1 || p.Logged != 3 || p.Reason != reasonNowhere {
			return fmt.Sprintf("pending %+v", p)
		}
		return ""
	})
	src.mu.Lock()
	src.data[content.Sum(two)] = two
	src.mu.Unlock()
	waitFor(t, "every op applied and status showing nothing pending", func() string {
		st, err := ReadStatus(context.Background(), stateDir)
		if err != nil {
			return err.Error()
		}
		if st.PendingOps != 0 || len(st.Pending) != 0 {
			return fmt.Sprintf("pending %d: %+v", st.PendingOps, st.Pending)
		}
		if b, err := os.ReadFile(filepath.Join(folder, "f3.txt")); err != nil || string(b) != "three" {
			return "f3.txt not there"
		}
		return ""
	})
}

// hangingFetcher fetches through p, except while the node has not reset a
// stalled sync yet: until then every transfer hangs until its connection
// ends, as one on a connection with no stream credit left did.
type hangingFetcher struct {
	p *quicnet.Peer
	n *Node
}

func (f hangingFetcher) hang() bool {
	if f.n.stallResets.Load() > 0 {
		return false
	}
	<-f.p.Context().Done()
	return true
}

func (f hangingFetcher) Fetch(ctx context.Context, h content.Hash, offset int64, dst io.Writer) (int64, error) {
	if f.hang() {
		return 0, fmt.Errorf("fetch %s: connection closed", h.Short())
	}
	return f.p.Fetch(ctx, h, offset, dst)
}

func (f hangingFetcher) FetchBatch(ctx context.Context, hs []content.Hash, each func(int, int64, io.Reader) error) error {
	if f.hang() {
		return fmt.Errorf("fetch %d contents: connection closed", len(hs))
	}
	return f.p.FetchBatch(ctx, hs, each)
}

// TestStalledSyncResetsItsConnection: every transfer b starts hangs until
// b has reset a stalled sync. With nothing applied and no byte received
// for the (shortened) stall bound while a has the ops, b logs why at
// WARN, resets the connection, and the sync completes on the next one.
func TestStalledSyncResetsItsConnection(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	pairFolders(t, a, b)
	for i := range 40 {
		write(t, filepath.Join(a, fmt.Sprintf("d%d/f%d.txt", i%4, i)), fmt.Sprintf("file %d", i))
	}
	addrA, addrB := freeUDPPort(t), freeUDPPort(t)
	startNode(t, a, addrA, addrB)
	nb := startNodeWith(t, b, addrB, func(n *Node) {
		n.stallAfter, n.stallCheck = time.Second, 50*time.Millisecond
		n.contentFrom = func(peers []*quicnet.Peer) []contentFetcher {
			out := make([]contentFetcher, len(peers))
			for i, p := range peers {
				out[i] = hangingFetcher{p: p, n: n}
			}
			return out
		}
	}, addrA)
	waitFor(t, "b to catch up after its stalled connection was reset", func() string { return sameTree(a, b) })
	if !strings.Contains(nb.logs.String(), "received changes made no progress; resetting the connection") {
		t.Fatalf("b never reset its stalled connection; logs:\n%s", nb.logs)
	}
}

// TestCheckStallWaitsTheWholeBound drives checkStall with a fake clock on
// an opened node that has one op of a peer pending, which the (fake)
// connected peer has. The reset comes only after the whole bound without
// progress counted from when the op was pending, not from the last quiet
// look; a pause, long local work and a content no peer has each hold it
// off; an explanation older than the bound no longer does.
func TestCheckStallWaitsTheWholeBound(t *testing.T) {
	folder := t.TempDir()
	peer := pairedPeer(t, folder, "peer")
	ctx := context.Background()
	clk := clock.NewFake(time.Unix(1_000_000, 0))
	n, err := Open(ctx, Config{Folder: folder, Listen: "127.0.0.1:0", NoDiscovery: true, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	var w stallWatch
	tick := func(d time.Duration) uint64 {
		clk.Advance(d)
		n.checkStall(ctx, &w)
		return n.stallResets.Load()
	}
	for range 17 { // a quiet 170 s: nothing pending
		if tick(10*time.Second) != 0 {
			t.Fatal("reset with nothing pending")
		}
	}
	op := oplog.Op{Origin: peer.ID, Seq: 1, Lamport: 1, Kind: oplog.KindWrite, Path: "f.txt",
		Hash: content.Sum([]byte("x")), Size: 1, Mode: 0o644, MTime: clk.Now().UnixNano()}
	insertFrom(t, n.ops, peer, op)
	if err := n.pending.write(ctx, n, nil, nil, ""); err != nil {
		t.Fatal(err)
	}
	n.peers[peer.ID] = &peerState{have: map[certs.DeviceID]uint64{peer.ID: 1}}
	waitResets := func(what string, want uint64, ticks int, exact bool) {
		t.Helper()
		for i := 1; i <= ticks; i++ {
			if got := tick(10 * time.Second); got == want {
				if exact && i != ticks {
					t.Fatalf("%s: reset after %d s, want %d s", what, 10*i, 10*ticks)
				}
				return
			}
		}
		t.Fatalf("%s: no reset after %d s", what, 10*ticks)
	}
	waitResets("after a quiet spell", 1, 9, true)

	n.paused.Store(true)
	for range 20 {
		if tick(10*time.Second) != 1 {
			t.Fatal("reset while paused")
		}
	}
	n.paused.Store(false)
	waitResets("after a pause", 2, 9, true)

	done := n.busyWith()
	for range 20 {
		if tick(10*time.Second) != 2 {
			t.Fatal("reset during long local work")
		}
	}
	done()
	waitResets("after long local work", 3, 9, true)

	why := map[certs.DeviceID]string{peer.ID: pendingReason(fmt.Errorf("x: %w", ErrContentNowhere))}
	if err := n.pending.write(ctx, n, nil, why, ""); err != nil {
		t.Fatal(err)
	}
	for range 20 {
		n.pending.passEnded(clk.Now()) // passes keep ending, each explaining the wait
		if tick(10*time.Second) != 3 {
			t.Fatal("reset although no peer has the content")
		}
	}
	// At most twice the bound: the wait and the explanation each run out.
	waitResets("once no pass has ended for the whole bound", 4, 18, false)
}
