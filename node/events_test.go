package node

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/drive-node/drive-node/internal/clock"
	"github.com/drive-node/drive-node/oplog"
)

// nextWithin returns the subscription's next event, failing the test if
// none comes within 20 s.
func nextWithin(t *testing.T, s *Subscription) Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ev, err := s.Next(ctx)
	if err != nil {
		t.Fatalf("no event: %v", err)
	}
	return ev
}

func TestEventRingResumesAndTellsGaps(t *testing.T) {
	clk := clock.NewFake(time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC))
	e := NewEvents(4, 100, clk.Now)
	if e.Last() != 99 {
		t.Fatalf("last before any event: %d", e.Last())
	}
	fromNow := e.Subscribe(e.Last())
	for i := range 3 {
		e.Publish(EventLocalChange, EventFields{Path: fmt.Sprint(i)})
	}
	// Resumed from an ID: the events after it, in order.
	s := e.Subscribe(100)
	for want := uint64(101); want <= 102; want++ {
		if ev := nextWithin(t, s); ev.ID != want || ev.Path != fmt.Sprint(want-100) || !ev.Time.Equal(clk.Now()) {
			t.Fatalf("want %d, got %+v", want, ev)
		}
	}
	if s.Ready() {
		t.Fatal("ready with nothing new")
	}
	if ev := nextWithin(t, fromNow); ev.ID != 100 {
		t.Fatalf("from before the first event: %+v", ev)
	}
	// Past the ring: a gap naming what was missed, then the oldest held.
	for i := 3; i < 10; i++ {
		e.Publish(EventApplied, EventFields{Path: fmt.Sprint(i)})
	}
	ev := nextWithin(t, fromNow)
	if ev.Type != EventGap || ev.From != 101 || ev.To != 105 || ev.ID != 105 {
		t.Fatalf("gap: %+v", ev)
	}
	for want := uint64(106); want <= 109; want++ {
		if ev := nextWithin(t, fromNow); ev.ID != want {
			t.Fatalf("after the gap want %d, got %+v", want, ev)
		}
	}
	// An ID of an earlier run (before this run's first) is a gap too.
	if ev := nextWithin(t, e.Subscribe(50)); ev.Type != EventGap || ev.Reason != "from an earlier run" || ev.To != 105 {
		t.Fatalf("earlier run: %+v", ev)
	}
	// Since 0: every event held, no gap.
	if ev := nextWithin(t, e.Subscribe(0)); ev.ID != 106 {
		t.Fatalf("since 0: %+v", ev)
	}
	// Next waits for an event, until its context ends.
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan Event, 1)
	go func() {
		ev, _ := fromNow.Next(ctx)
		got <- ev
	}()
	e.Publish(EventPaused, EventFields{Reason: "r"})
	select {
	case ev := <-got:
		if ev.ID != 110 || ev.Reason != "r" {
			t.Fatalf("waited for %+v", ev)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("a waiting subscriber was not woken")
	}
	cancel()
	if _, err := fromNow.Next(ctx); err == nil {
		t.Fatal("next on an ended context")
	}
}

func TestSlowSubscriberNeverBlocks(t *testing.T) {
	e := NewEvents(EventRingSize, 1, time.Now)
	slow := e.Subscribe(0) // never reads while events are published
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 10 * EventRingSize {
			e.Publish(EventLocalChange, EventFields{Path: fmt.Sprint(i)})
		}
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("publishing waited for a subscriber")
	}
	ev := nextWithin(t, slow)
	if ev.Type != EventGap || ev.From != 1 || ev.To != 9*EventRingSize {
		t.Fatalf("the slow subscriber was not told of its gap: %+v", ev)
	}
	if ev := nextWithin(t, slow); ev.ID != 9*EventRingSize+1 {
		t.Fatalf("after the gap: %+v", ev)
	}
}

// collect reads events from s until one satisfies done, or 20 s pass.
func collect(t *testing.T, s *Subscription, done func([]Event) bool) []Event {
	t.Helper()
	var out []Event
	for !done(out) {
		out = append(out, nextWithin(t, s))
	}
	return out
}

// lastIs tells collect to stop at an event of type typ.
func lastIs(typ EventType) func([]Event) bool {
	return func(evs []Event) bool { return len(evs) > 0 && evs[len(evs)-1].Type == typ }
}

// startTwo runs two paired nodes that dial each other; between the two
// starts, between(a) is called.
func startTwo(t *testing.T, between func(*runningNode)) (a, b string, na, nb *runningNode) {
	a, b = t.TempDir(), t.TempDir()
	pairFolders(t, a, b)
	addrA, addrB := freeUDPPort(t), freeUDPPort(t)
	na = startNode(t, a, addrA, addrB)
	if between != nil {
		between(na)
	}
	return a, b, na, startNode(t, b, addrB, addrA)
}

func TestEventsOfASync(t *testing.T) {
	var atA *Subscription
	a, b, na, nb := startTwo(t, func(na *runningNode) { atA = na.Events().Subscribe(na.Events().Last()) })
	atB := nb.Events().Subscribe(0)
	if ev := collect(t, atA, lastIs(EventPeerConnected)); ev[len(ev)-1].Peer != nb.ID().String() {
		t.Fatalf("a's connection event: %+v", ev)
	}

	// Two versions of one file and another file, one after the other.
	steps := []struct{ path, data string }{{"x.txt", "one"}, {"y.txt", "other"}, {"x.txt", "two, longer"}}
	for _, s := range steps {
		write(t, filepath.Join(a, s.path), s.data)
		waitFor(t, "sync of "+s.path, func() string { return sameTree(a, b) })
	}
	applied := func(evs []Event) (out []Event) {
		for _, ev := range evs {
			if ev.Type == EventApplied {
				out = append(out, ev)
			}
		}
		return out
	}
	evs := collect(t, atB, func(evs []Event) bool { return len(applied(evs)) == len(steps) })
	for i, ev := range evs {
		if i > 0 && ev.ID != evs[i-1].ID+1 {
			t.Fatalf("events out of order or missing at %d: %+v", i, evs)
		}
	}
	for i, ev := range applied(evs) {
		if ev.Path != steps[i].path || ev.Device != na.ID().String() || ev.Kind != oplog.KindWrite.String() {
			t.Fatalf("applied %d: %+v, want %s from a", i, ev, steps[i].path)
		}
	}
	// Each content applied was fetched first, from a.
	fetched := map[string]bool{}
	for _, ev := range evs {
		if ev.Type == EventTransferFinished && ev.Error == "" && ev.Peer == na.ID().String() {
			fetched[fmt.Sprint(ev.Size)] = true
		}
	}
	for _, s := range steps {
		if !fetched[fmt.Sprint(len(s.data))] {
			t.Fatalf("no transfer of %d bytes before it was applied: %+v", len(s.data), evs)
		}
	}
	local := collect(t, atA, func(evs []Event) bool {
		n := 0
		for _, ev := range evs {
			if ev.Type == EventLocalChange {
				n++
			}
		}
		return n == len(steps)
	})
	k := 0
	for _, ev := range local {
		if ev.Type == EventLocalChange {
			if ev.Path != steps[k].path || ev.Device != na.ID().String() {
				t.Fatalf("local change %d: %+v", k, ev)
			}
			k++
		}
	}
	// A session that ends is reported on both sides.
	nb.stop(t)
	collect(t, atA, lastIs(EventPeerDisconnected))
}

func TestProgressReachesZeroWithThePeer(t *testing.T) {
	a, b, na, nb := startTwo(t, nil)
	ctx := context.Background()
	progressOf := func(n *runningNode, peer *runningNode) (PeerProgress, bool) {
		p, err := n.Progress(ctx)
		if err != nil {
			t.Fatal(err)
		}
		pp, ok := p[peer.ID()]
		return pp, ok
	}
	waitFor(t, "connection", func() string {
		_, ok1 := progressOf(na, nb)
		_, ok2 := progressOf(nb, na)
		if !ok1 || !ok2 {
			return "not connected"
		}
		return ""
	})
	// b takes nothing in while paused: what a sends waits, counted.
	if !nb.Pause(ctx) || nb.Pause(ctx) {
		t.Fatal("pause did not report the change")
	}
	for i := range 20 {
		write(t, filepath.Join(a, fmt.Sprintf("d/f%02d", i)), fmt.Sprintf("content %d %s", i, string(make([]byte, i*100))))
	}
	write(t, filepath.Join(b, "from-b.txt"), "made while paused")
	waitFor(t, "b's own change recorded", func() string {
		if nb.ops.Highest(nb.ID()) == 0 {
			return "not yet"
		}
		return ""
	})
	waitFor(t, "a's ops at b", func() string {
		if top, got := na.ops.Highest(na.ID()), nb.ops.Highest(na.ID()); top < 21 || got != top {
			return fmt.Sprintf("b has %d of a's %d ops", got, top)
		}
		return ""
	})
	ops := na.ops.Highest(na.ID())
	var bytes uint64
	if err := na.ops.Iterate(ctx, na.ID(), 1, func(op oplog.Op) error {
		if op.Kind == oplog.KindWrite {
			bytes += uint64(op.Size)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	pb, _ := progressOf(nb, na)
	if pb.ToReceiveFiles != ops || pb.ToReceiveBytes != bytes || pb.ToSendFiles != 1 || pb.ToSendBytes != uint64(len("made while paused")) {
		t.Fatalf("b's progress while paused: %+v, want %d ops of %d bytes to receive, 1 to send", pb, ops, bytes)
	}
	if _, err := os.Stat(filepath.Join(b, "d/f00")); err == nil {
		t.Fatal("a paused node applied a change")
	}
	if na.ops.Highest(nb.ID()) != 0 {
		t.Fatal("a paused node sent its change")
	}
	st, err := nb.Status(ctx)
	if err != nil || st.Paused != reasonRequested || !st.Live.PausedOnRequest {
		t.Fatalf("status while paused: %q %+v %v", st.Paused, st.Live, err)
	}
	if !nb.Resume(ctx) || nb.Resume(ctx) {
		t.Fatal("resume did not report the change")
	}
	// Zero on both sides exactly when both hold everything.
	waitFor(t, "progress at zero", func() string {
		pa, _ := progressOf(na, nb)
		pb, _ := progressOf(nb, na)
		if pa.ToSendFiles+pa.ToSendBytes+pa.ToReceiveFiles+pa.ToReceiveBytes+pb.ToSendFiles+pb.ToSendBytes+pb.ToReceiveFiles+pb.ToReceiveBytes != 0 {
			return fmt.Sprintf("a %+v, b %+v", pa, pb)
		}
		return ""
	})
	if diff := sameTree(a, b); diff != "" {
		t.Fatalf("progress at zero before the trees are the same: %s", diff)
	}
	st, err = nb.Status(ctx)
	if err != nil || len(st.Peers) != 1 || st.Peers[0].PeerProgress == nil || st.Peers[0].ETAS == nil || *st.Peers[0].ETAS != 0 || st.Paused != "" {
		t.Fatalf("status: %+v %v", st, err)
	}
}

func TestStatusCountsTheStartUpScan(t *testing.T) {
	dir := t.TempDir()
	for i := range 5 {
		write(t, filepath.Join(dir, fmt.Sprintf("sub/f%d", i)), "x")
	}
	n := startNode(t, dir, freeUDPPort(t))
	st, err := n.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Live == nil || st.Live.Scanning || st.Live.ScannedFiles != 5 || st.Live.OpsRecorded != 6 || !st.Running {
		t.Fatalf("live status after the scan: %+v (running %v)", st.Live, st.Running)
	}
}

func TestConflictCopyIsAnEvent(t *testing.T) {
	a, b, na, nb := startTwo(t, nil)
	write(t, filepath.Join(a, "x.txt"), "first")
	waitFor(t, "initial sync", func() string { return sameTree(a, b) })
	nb.stop(t)
	write(t, filepath.Join(a, "x.txt"), "A's edit")
	waitFor(t, "A's edit recorded", func() string {
		if na.ops.Highest(na.ID()) < 2 {
			return "not yet"
		}
		return ""
	})
	write(t, filepath.Join(b, "x.txt"), "B's concurrent edit")
	atA := na.Events().Subscribe(na.Events().Last())
	nb = startNode(t, b, nb.addr, na.addr)
	atB := nb.Events().Subscribe(0)
	waitFor(t, "both hold the winner and the copy", func() string {
		copies, _ := filepath.Glob(filepath.Join(a, "x.conflict-*"))
		if len(copies) != 1 {
			return fmt.Sprintf("copies on A: %v", copies)
		}
		return sameTree(a, b)
	})
	copies, _ := filepath.Glob(filepath.Join(a, "x.conflict-*"))
	var seen []Event
	waitFor(t, "a conflict event on either device", func() string {
		for _, s := range []*Subscription{atA, atB} {
			for s.Ready() {
				if ev := nextWithin(t, s); ev.Type == EventConflict {
					seen = append(seen, ev)
				}
			}
		}
		if len(seen) == 0 {
			return "none yet"
		}
		return ""
	})
	for _, ev := range seen {
		if ev.Path != "x.txt" || ev.Copy != filepath.Base(copies[0]) || ev.Device == "" {
			t.Fatalf("conflict event %+v, copy %s", ev, copies[0])
		}
	}
}
