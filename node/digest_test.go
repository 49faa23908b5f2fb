package node

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/drive-node/drive-node/certs"
	"github.com/drive-node/drive-node/content"
	"github.com/drive-node/drive-node/node/internal/digest"
	"github.com/drive-node/drive-node/oplog"
	"github.com/drive-node/drive-node/state"
)

// fastDigests makes a node compute its digest after 50 ms of quiet.
func fastDigests(n *Node) { n.digests.quiet = 50 * time.Millisecond }

// digestsAgree returns "" once a and b have computed equal digests and
// each has heard the other's, or what is not there yet.
func digestsAgree(a, b *runningNode) string {
	da, okA := a.CurrentDigest()
	db, okB := b.CurrentDigest()
	switch {
	case !okA || !okB:
		return "no digest yet"
	case da.Root != db.Root:
		return fmt.Sprintf("roots differ: %s vs %s", da.Short(), db.Short())
	}
	for _, p := range []struct {
		n    *runningNode
		peer certs.DeviceID
		want string
	}{{a, b.ID(), db.Root}, {b, a.ID(), da.Root}} {
		got := p.n.peerDigestRoot(p.peer)
		if got != p.want {
			return fmt.Sprintf("%s heard %q from its peer, want %s", p.n.folder, got, p.want)
		}
	}
	return ""
}

// peerDigestRoot is the root the peer last announced here, in hex.
func (n *Node) peerDigestRoot(peer certs.DeviceID) string {
	n.peersMu.Lock()
	defer n.peersMu.Unlock()
	if ps, ok := n.peers[peer]; ok && ps.digest != nil {
		return fmt.Sprintf("%x", ps.digest.Root[:])
	}
	return ""
}

// TestDigestsAgreeAfterSync: two devices that synced have one digest,
// each hears the other's, and status says identical; a change makes them
// differ until it is synced.
func TestDigestsAgreeAfterSync(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	pairFolders(t, a, b)
	write(t, filepath.Join(a, "docs/report.txt"), "report")
	write(t, filepath.Join(a, "run.sh"), "#!/bin/sh\n")
	if err := os.Chmod(filepath.Join(a, "run.sh"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(a, "empty/dir"), 0o755)
	addrA, addrB := freeUDPPort(t), freeUDPPort(t)
	ra := startNodeWith(t, a, addrA, fastDigests, addrB)
	rb := startNodeWith(t, b, addrB, fastDigests, addrA)
	waitFor(t, "sync", func() string { return sameTree(a, b) })
	waitFor(t, "equal digests, each heard by the other", func() string { return digestsAgree(ra, rb) })

	st, err := ReadStatus(context.Background(), ra.StateDir())
	if err != nil {
		t.Fatal(err)
	}
	if st.State == nil || len(st.Peers) != 1 || st.Peers[0].State == nil || !st.Peers[0].State.Identical {
		t.Fatalf("status does not say identical: state %+v, peers %+v", st.State, st.Peers)
	}
	if st.State.Files != 5 { // docs, docs/report.txt, run.sh, empty, empty/dir
		t.Errorf("the digest covers %d records, want 5", st.State.Files)
	}
	if d, err := ra.Differences(context.Background(), rb.ID(), 0); err != nil || len(d) != 0 {
		t.Fatalf("differences between identical devices: %v, %v", d, err)
	}

	// A mode change alone makes the digests differ, and syncs.
	before, _ := ra.CurrentDigest()
	if err := os.Chmod(filepath.Join(a, "run.sh"), 0o700); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a digest that covers the mode", func() string {
		if d, _ := ra.CurrentDigest(); d.Root == before.Root {
			return "unchanged"
		}
		return ""
	})
	waitFor(t, "equal digests again", func() string { return digestsAgree(ra, rb) })
}

// TestDigestDifferencesExplained: a path one device ignores is listed,
// by the walk, as ignored there and as not taken by that peer here; a
// change made while the peer is away is listed, from the ops, as one the
// peer has not caught up with.
func TestDigestDifferencesExplained(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	pairFolders(t, a, b)
	write(t, filepath.Join(DefaultStateDir(b, ""), DeviceIgnoreName), "*.log\n")
	write(t, filepath.Join(a, "keep.txt"), "keep")
	write(t, filepath.Join(a, "logs/x.log"), "log")
	addrA, addrB := freeUDPPort(t), freeUDPPort(t)
	ra := startNodeWith(t, a, addrA, fastDigests, addrB)
	rb := startNodeWith(t, b, addrB, fastDigests, addrA)
	waitFor(t, "keep.txt reaches B", func() string { return fileIs(filepath.Join(b, "keep.txt"), "keep") })
	waitFor(t, "digests known both ways", func() string {
		da, _ := ra.CurrentDigest()
		db, _ := rb.CurrentDigest()
		if ra.peerDigestRoot(rb.ID()) != db.Root || rb.peerDigestRoot(ra.ID()) != da.Root || da.Root == "" || db.Root == "" {
			return "not yet"
		}
		if applied, err := rb.db.Applied(context.Background()); err != nil || ra.ops.Highest(ra.ID()) != applied[ra.ID()] {
			return "B has not applied everything"
		}
		return ""
	})
	ctx := context.Background()
	want := func(n *runningNode, peer certs.DeviceID, want []Difference) {
		t.Helper()
		waitFor(t, "differences of "+filepath.Base(n.folder), func() string {
			got, err := n.Differences(ctx, peer, 0)
			if err != nil {
				return err.Error()
			}
			if !slices.Equal(got, want) {
				return fmt.Sprintf("%+v, want %+v", got, want)
			}
			return ""
		})
	}
	want(rb, ra.ID(), []Difference{{Path: "logs/x.log", Here: "absent", There: "file", Why: WhyIgnored}})
	want(ra, rb.ID(), []Difference{{Path: "logs/x.log", Here: "file", There: "absent", Why: WhyOnPeer}})

	// B goes away; A's change is one B has not caught up with.
	rb.stop(t)
	write(t, filepath.Join(a, "later.txt"), "later")
	waitFor(t, "A records later.txt", func() string {
		if !recorded(t, ra, "later.txt") {
			return "not yet"
		}
		return ""
	})
	want(ra, rb.ID(), []Difference{{Path: "later.txt", Why: WhyPeerBehind}})
	st, err := ReadStatus(ctx, ra.StateDir())
	if err != nil {
		t.Fatal(err)
	}
	if ps := st.Peers[0].State; ps == nil || ps.Identical {
		t.Fatalf("status of A says %+v for the peer that lacks later.txt", ps)
	}
}

// TestWhyPendingAndHeld: an op received and not applied is "pending
// here", or "held by the brake" from the run's first op on; a path
// nothing here explains is the peer's doing.
func TestWhyPendingAndHeld(t *testing.T) {
	n := newNode(Config{})
	origin := certs.DeviceID{7}
	pending := []oplog.Op{{Origin: origin, Seq: 3, Path: "a/b.txt"}, {Origin: origin, Seq: 5, Path: "old", NewPath: "new"}}
	why := func(p string, held map[certs.DeviceID]uint64) string {
		x, verdict := newTouchIndex([]Difference{{Path: p}}), make([]string, 1)
		for _, op := range pending {
			x.notePending(op, held, verdict)
		}
		return n.why(Difference{Path: p}, verdict[0], nil, nil, nil, false, false)
	}
	for _, c := range []struct {
		path string
		held map[certs.DeviceID]uint64
		want string
	}{
		{"a/b.txt", nil, WhyPending},
		{"a", nil, WhyPending},
		{"a/b.txt/c", nil, WhyPending},
		{"new", nil, WhyPending},
		{"new", map[certs.DeviceID]uint64{origin: 4}, WhyHeld},
		{"a/b.txt", map[certs.DeviceID]uint64{origin: 4}, WhyPending},
		{"other", nil, WhyOnPeer},
		{"a/b", nil, WhyOnPeer},
	} {
		if got := why(c.path, c.held); got != c.want {
			t.Errorf("%s (held %v): %q, want %q", c.path, c.held, got, c.want)
		}
	}
	if got := n.why(Difference{Path: "x"}, "", []Unplaced{{Path: "x", Kind: "refused-name"}}, nil, nil, false, false); got != WhyUnplaced+" (refused-name)" {
		t.Errorf("unplaced: %q", got)
	}
	if got := n.why(Difference{Path: "x"}, "", nil, map[string]string{"x": whySendOnly}, nil, false, false); got != WhySetAside+" (send-only)" {
		t.Errorf("set aside: %q", got)
	}
	if got := n.why(Difference{Path: "x"}, "", nil, nil, nil, true, true); got != WhyPeerBehind {
		t.Errorf("peer behind: %q", got)
	}
	if got := n.why(Difference{Path: "x"}, "", nil, nil, nil, false, true); got != WhyNotReceived {
		t.Errorf("not received: %q", got)
	}
}

// TestTouchIndexAgreesWithTouches: the index finds, for every op, exactly
// the differences touches says the op touches.
func TestTouchIndexAgreesWithTouches(t *testing.T) {
	names := []string{"a", "b", "ab", "a.b", "", ".."} // "" makes "/x", "a//b" and "x/": a peer's paths need not be clean
	rng := rand.New(rand.NewSource(1))
	randomPath := func() string {
		parts := make([]string, 1+rng.Intn(3))
		for i := range parts {
			parts[i] = names[rng.Intn(len(names))]
		}
		return strings.Join(parts, "/")
	}
	for round := 0; round < 200; round++ {
		diffs := make([]Difference, 1+rng.Intn(6))
		for i := range diffs {
			diffs[i].Path = randomPath()
		}
		x := newTouchIndex(diffs)
		for k := 0; k < 20; k++ {
			op := oplog.Op{Path: randomPath()}
			if rng.Intn(2) == 0 {
				op.NewPath = randomPath()
			}
			got := make([]bool, len(diffs))
			x.each(op, func(i int) { got[i] = true })
			for i, d := range diffs {
				if want := touches(op, d.Path); got[i] != want {
					t.Fatalf("op %q -> %q and difference %q: the index says %v, touches %v", op.Path, op.NewPath, d.Path, got[i], want)
				}
			}
		}
	}
}

// BenchmarkDigestOf100k sums the digest of 100,000 live records in
// 1,000 directories, as the daemon does after a quiet period: whole (the
// first time, read from the database), and after one file was edited
// (from the saved tree).
func BenchmarkDigestOf100k(b *testing.B) {
	ctx := context.Background()
	db, err := state.Open(ctx, filepath.Join(b.TempDir(), "state.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	const files = 100_000
	origin := certs.DeviceID{1}
	for start := 0; start < files; start += 10_000 {
		batch := state.Batch{Applied: map[certs.DeviceID]uint64{origin: uint64(start + 10_000)}}
		for i := start; i < start+10_000; i++ {
			p := fmt.Sprintf("dir%03d/sub/file%07d.dat", i/100, i)
			batch.Files = append(batch.Files, state.File{Path: p, Hash: content.Sum([]byte(p)), Size: int64(i), Mode: 0o644,
				MTime: int64(i), Origin: origin, Seq: uint64(i + 1)})
		}
		if err := db.Apply(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	n := newNode(Config{})
	n.db = db
	sum := func(b *testing.B) {
		d, err := n.computeDigest(ctx)
		if err != nil || d.Files != files {
			b.Fatalf("digest of %d records, %v", d.Files, err)
		}
	}
	b.Run("whole", func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			if err := db.SaveDigestTree(ctx, state.DigestTreeUpdate{Reset: true}); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			sum(b)
		}
	})
	b.Run("one edit", func(b *testing.B) {
		sum(b) // the tree saved
		i := 0
		for b.Loop() {
			b.StopTimer()
			i++
			p := fmt.Sprintf("dir%03d/sub/file%07d.dat", i%1000, i%1000*100)
			edit := state.File{Path: p, Hash: content.Sum([]byte(fmt.Sprint(i))), Mode: 0o644, Origin: origin, Seq: uint64(files + i)}
			if err := db.Apply(ctx, state.Batch{Files: []state.File{edit}, Applied: map[certs.DeviceID]uint64{origin: uint64(files + i)}}); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			sum(b)
		}
	})
}

// TestPausedPeerAnswersWalks: a peer paused on request sends no ops, but
// still answers walk requests, so the other side learns where the two
// differ at once rather than after its deadline.
func TestPausedPeerAnswersWalks(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	pairFolders(t, a, b)
	write(t, filepath.Join(a, "first.txt"), "first")
	addrA, addrB := freeUDPPort(t), freeUDPPort(t)
	ra := startNodeWith(t, a, addrA, fastDigests, addrB)
	rb := startNodeWith(t, b, addrB, fastDigests, addrA)
	waitFor(t, "first.txt reaches B", func() string { return fileIs(filepath.Join(b, "first.txt"), "first") })
	if !rb.Pause(context.Background()) {
		t.Fatal("B was paused already")
	}
	write(t, filepath.Join(b, "only-b.txt"), "made while paused")
	waitFor(t, "B records its file", func() string {
		if st, err := rb.Status(context.Background()); err != nil || st.Files != 2 {
			return fmt.Sprintf("%d files, %v", st.Files, err)
		}
		return ""
	})
	waitFor(t, "A lists the file only B has", func() string {
		ctx, cancel := context.WithTimeout(context.Background(), digestAskTimeout/2)
		defer cancel()
		got, err := ra.Differences(ctx, rb.ID(), 0)
		if err != nil {
			return err.Error()
		}
		for _, d := range got {
			if d.Path == "only-b.txt" {
				return ""
			}
		}
		return fmt.Sprintf("%+v", got)
	})
}

// TestDigestByDirectoryIsTheTreesRoot: the daemon sums its records one
// directory at a time; the root must be the one digest.Root gives from
// every entry at once, with directories known only from what they hold,
// names that sort around a directory's ("a b", "a.txt", "a0"), empty
// directories and tombstones.
func TestDigestByDirectoryIsTheTreesRoot(t *testing.T) {
	ctx := context.Background()
	db, err := state.Open(ctx, filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	origin := certs.DeviceID{1}
	var batch state.Batch
	add := func(p string, dir, deleted bool) {
		f := state.File{Path: p, Dir: dir, Deleted: deleted, Mode: 0o640, Origin: origin, Seq: uint64(len(batch.Files) + 1)}
		if !dir {
			f.Hash = content.Sum([]byte(p))
		}
		batch.Files = append(batch.Files, f)
	}
	add("a", true, false)
	for _, p := range []string{"a b", "a.txt", "a/x", "a/y/z", "a0", "implied/deeper/f", "implied/g", "z"} {
		add(p, false, false)
	}
	add("empty", true, false)
	add("a/gone", false, true)
	for i := range 600 { // more than one page of children
		add(fmt.Sprintf("many/f%03d", i), false, false)
	}
	if err := db.Apply(ctx, batch); err != nil {
		t.Fatal(err)
	}
	n := newNode(Config{})
	n.db = db
	entries, err := n.digestEntries(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	d, err := n.computeDigest(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := digest.Root(entries); d.Root != want || d.Files != uint64(len(entries)) {
		t.Fatalf("digest by directory %s over %d records, want %s over %d", d.Root.Short(), d.Files, want.Short(), len(entries))
	}
	// A walk's answer for each directory, implied ones included.
	for _, dir := range []string{"", "a", "a/y", "implied", "implied/deeper", "many", "empty"} {
		got, err := n.treeDir(ctx, dir)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := digest.Children(entries, dir)
		if !slices.Equal(got, want) {
			t.Fatalf("children of %q by directory:\n%v\nwant\n%v", dir, got, want)
		}
	}
}

// digestEntries reads the live records under dir ("" for all) in the
// order digest.Children takes: the whole tree at once, which the daemon
// never does, to check what it computes a directory at a time.
func (n *Node) digestEntries(ctx context.Context, dir string) ([]digest.Entry, error) {
	var entries []digest.Entry
	err := n.db.LiveEntries(ctx, dir, func(e state.LiveEntry) error {
		k := digest.File
		if e.Dir {
			k = digest.Dir
		}
		entries = append(entries, digest.Entry{Path: e.Path, Kind: k, Content: e.Hash, Mode: e.Mode})
		return nil
	})
	if err != nil {
		return nil, err
	}
	digest.Sort(entries)
	return entries, nil
}

// TestRestartTakesTheStoredDigest: a restart that finds the records as
// the last run left them takes the digest it stored rather than summing
// them again; once the start-up scan records a file edited while the
// daemon was down, the digest is computed anew.
func TestRestartTakesTheStoredDigest(t *testing.T) {
	folder := t.TempDir()
	write(t, filepath.Join(folder, "x.txt"), "first")
	first := startNodeWith(t, folder, freeUDPPort(t), fastDigests)
	waitFor(t, "a digest of x.txt", func() string {
		if d, ok := first.CurrentDigest(); !ok || d.Files != 1 {
			return fmt.Sprintf("%+v", d)
		}
		return ""
	})
	stored, _ := first.CurrentDigest()
	first.stop(t)

	again := startNodeWith(t, folder, freeUDPPort(t), fastDigests)
	if d, ok := again.CurrentDigest(); !ok || d.Root != stored.Root {
		// Ready means the start-up scan is done; the stored digest is
		// taken before the loop's first tick.
		waitFor(t, "the stored digest", func() string {
			if d, ok := again.CurrentDigest(); !ok || d.Root != stored.Root {
				return fmt.Sprintf("%+v, want %s", d, stored.Root)
			}
			return ""
		})
	}
	if !strings.Contains(again.logs.String(), "state digest as stored") {
		t.Fatal("the restart summed the records again")
	}
	again.stop(t)

	write(t, filepath.Join(folder, "x.txt"), "edited while the daemon was down")
	third := startNodeWith(t, folder, freeUDPPort(t), fastDigests)
	waitFor(t, "a new digest", func() string {
		d, ok := third.CurrentDigest()
		if !ok || d.Root == stored.Root {
			return "still the stored one"
		}
		want, err := third.computeDigest(context.Background())
		if err != nil || d.Root != want.Root.String() {
			return fmt.Sprintf("%s, computed %v (%v)", d.Root, want, err)
		}
		return ""
	})
}
