package node

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/drive-node/drive-node/certs"
	"github.com/drive-node/drive-node/content"
	"github.com/drive-node/drive-node/oplog"
	"github.com/drive-node/drive-node/vclock"
)

// rewriteRounds writes every file of a folder of files rounds times
// over, waiting after each round until r has recorded it (so each round
// is an op per file, not merged with the next) and until synced, if set.
func rewriteRounds(t *testing.T, r *runningNode, files, rounds int, synced func() string) {
	t.Helper()
	for round := 0; round < rounds; round++ {
		body := func(i int) string { return fmt.Sprintf("file %d, round %d of %p", i, round, &round) }
		for i := 0; i < files; i++ {
			write(t, filepath.Join(r.folder, fileName(i)), body(i))
		}
		waitFor(t, fmt.Sprintf("round %d recorded", round), func() string {
			for i := 0; i < files; i++ {
				rec, ok, err := r.db.File(context.Background(), fileName(i))
				if err != nil || !ok || rec.Hash != content.Sum([]byte(body(i))) {
					return fmt.Sprintf("%s not recorded (%v)", fileName(i), err)
				}
			}
			return ""
		})
		if synced != nil {
			waitFor(t, fmt.Sprintf("round %d synced", round), synced)
		}
	}
}

func fileName(i int) string { return fmt.Sprintf("d%d/f%03d.txt", i%4, i) }

// A log folded while one device was away and before another was paired:
// both catch up from the ops that were kept, across the gaps, and end
// with the same folder; the folded devices' logs shrink to about the
// folder's size.
func TestFoldedLogCatchesUpReturningAndNewDevices(t *testing.T) {
	ctx := context.Background()
	a, b, c := t.TempDir(), t.TempDir(), t.TempDir()
	pairFolders(t, a, b)
	pairFolders(t, a, c)
	const files = 60
	addrA, addrB, addrC := freeUDPPort(t), freeUDPPort(t), freeUDPPort(t)
	noAutoFold := func(cfg *Config) { cfg.FoldAfter, cfg.FoldAge = -1, -1 }
	na := startNodeConfig(t, a, addrA, noAutoFold, nil, addrB)
	nb := startNodeConfig(t, b, addrB, noAutoFold, nil, addrA)
	rewriteRounds(t, na, files, 1, func() string { return sameTree(a, b) })
	nb.stop(t)

	rewriteRounds(t, na, files, 3, nil)
	waitFor(t, "a records its rewrites", func() string {
		applied, err := na.db.Applied(ctx)
		if err != nil {
			return err.Error()
		}
		if got := applied[na.ID()]; got < na.ops.Highest(na.ID()) || na.ops.Highest(na.ID()) < 4*files {
			return fmt.Sprintf("applied %d of %d ops", got, na.ops.Highest(na.ID()))
		}
		return ""
	})
	// Status, asked before the fold, has indexed every op.
	toSend := func() uint64 {
		t.Helper()
		applied, err := na.db.Applied(ctx)
		if err != nil {
			t.Fatal(err)
		}
		p, err := na.progressWith(ctx, na.ops.Vector(), applied, map[certs.DeviceID]uint64{})
		if err != nil {
			t.Fatal(err)
		}
		return p.ToSendFiles
	}
	toSend()
	res, err := na.foldPass(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Of four writes per file, three are superseded; one op per Append
	// call may stay to keep runs proven, and the last op stays.
	if res.Folded < 2*files {
		t.Fatalf("folded %d of %d ops read; want at least %d", res.Folded, res.Read, 2*files)
	}
	t.Logf("a folded %d of the %d ops it read", res.Folded, res.Read)
	if na.ops.Folded(na.ID()) == 0 {
		t.Fatal("a's log does not say it is folded")
	}
	if err := na.ops.(*oplog.Log).Check(ctx); err != nil {
		t.Fatalf("a's folded log: %v", err)
	}
	// What status tells a device that has nothing: the ops a holds.
	held := 0
	for o := range na.ops.Vector() {
		if err := na.ops.Iterate(ctx, o, 1, func(oplog.Op) error { held++; return nil }); err != nil {
			t.Fatal(err)
		}
	}
	if got := toSend(); got != uint64(held) {
		t.Fatalf("status counts %d ops to send to a new device, want the %d held", got, held)
	}

	nb = startNodeConfig(t, b, addrB, noAutoFold, nil, addrA)
	waitFor(t, "the device that was away catches up", func() string { return sameTree(a, b) })
	nc := startNodeConfig(t, c, addrC, noAutoFold, nil, addrA)
	waitFor(t, "a device paired after the fold catches up", func() string { return sameTree(a, c) })
	for name, r := range map[string]*runningNode{"b": nb, "c": nc} {
		if got, want := r.ops.Highest(na.ID()), na.ops.Highest(na.ID()); got != want {
			t.Fatalf("%s holds a's ops up to %d, want %d", name, got, want)
		}
	}
	if nc.ops.Folded(na.ID()) == 0 {
		t.Fatal("c took a's folded ops without noting the gaps")
	}

	// Edits after the fold still flow both ways.
	replace(t, filepath.Join(c, "from-c.txt"), "after the fold")
	waitFor(t, "a change from c", func() string { return sameTree(a, c) })
	waitFor(t, "and on to b", func() string { return sameTree(a, b) })
}

// Folding never undoes what restore --at and the version store promise.
// Within the fold age nothing recent is folded; a device whose version
// store keeps a replaced content keeps the op that wrote it; and where
// the log was folded, restoring to a time whose state it no longer holds
// leaves the path as it is instead of removing it.
func TestFoldKeepsWhatRestoreNeeds(t *testing.T) {
	ctx := context.Background()
	a, b := t.TempDir(), t.TempDir()
	pairFolders(t, a, b)
	addrA, addrB := freeUDPPort(t), freeUDPPort(t)
	noAutoFold := func(cfg *Config) { cfg.FoldAfter = -1 }
	na := startNodeConfig(t, a, addrA, noAutoFold, nil, addrB)
	nb := startNodeConfig(t, b, addrB, noAutoFold, nil, addrA)
	const files = 8
	rewriteRounds(t, na, files, 1, func() string { return sameTree(a, b) })
	mid := time.Now()
	waitFor(t, "the clock passes the first round", func() string {
		if !time.Now().After(mid) {
			return "same instant"
		}
		return ""
	})
	rewriteRounds(t, na, files, 2, func() string { return sameTree(a, b) })
	write(t, filepath.Join(a, "new.txt"), "made after mid")
	waitFor(t, "new.txt synced", func() string { return sameTree(a, b) })

	// Everything was superseded within the hour: nothing goes.
	if res, err := na.foldPass(ctx); err != nil || res.Folded != 0 {
		t.Fatalf("within the fold age: folded %d of %d (%v), want none", res.Folded, res.Read, err)
	}
	na.cfg.FoldAge, nb.cfg.FoldAge = -1, -1 // the loop is off: nothing else reads them

	// B's version store keeps what A's rewrites replaced there.
	vs, err := nb.db.Versions(ctx, "", true)
	if err != nil || len(vs) == 0 {
		t.Fatalf("b keeps %d versions (%v); the test needs some", len(vs), err)
	}
	if res, err := nb.foldPass(ctx); err != nil {
		t.Fatal(err)
	} else if res.Folded > files {
		t.Fatalf("b folded %d of %d ops although its store keeps %d versions", res.Folded, res.Read, len(vs))
	}
	for _, v := range vs {
		if ok, err := nb.versionNeeds(ctx, oplog.Op{Kind: oplog.KindWrite, Path: v.Path, Hash: v.Hash}); err != nil || !ok {
			t.Fatalf("b's version %s of %s does not hold its op back (%v)", v.Hash.Short(), v.Path, err)
		}
	}

	res, err := na.foldPass(ctx)
	if err != nil || res.Folded < files {
		t.Fatalf("a folded %d of %d (%v), want at least %d", res.Folded, res.Read, err, files)
	}
	restored, err := na.Restore(ctx, RestoreRequest{Paths: []string{"."}, At: mid})
	if err != nil {
		t.Fatal(err)
	}
	outcome := map[string]string{}
	for _, r := range restored {
		outcome[r.Path] = r.Outcome
	}
	if outcome["new.txt"] != Removed {
		t.Fatalf("new.txt, made after the time restored to: %q, want removed (%v)", outcome["new.txt"], restored)
	}
	for i := 0; i < files; i++ {
		p := fileName(i)
		if outcome[p] == Removed {
			t.Fatalf("%s was removed by a restore to a time its log no longer tells (%v)", p, restored)
		}
		if _, err := os.Stat(filepath.Join(a, p)); err != nil {
			t.Fatalf("%s after the restore: %v", p, err)
		}
	}
}

// A pass that finds ops superseded too recently to fold runs again once
// they are old enough, though the log does not grow.
func TestFoldRunsAgainWhenOpsAge(t *testing.T) {
	// Past two foldQuiet (a wait cut short by the last round, then the
	// one before the first pass): that pass finds them young.
	const age = 15 * time.Second
	a := t.TempDir()
	na := startNodeConfig(t, a, freeUDPPort(t), func(cfg *Config) { cfg.FoldAfter, cfg.FoldAge = 1, age }, nil)
	rewriteRounds(t, na, 8, 3, nil)
	grown := na.ops.Count()
	deadline := time.Now().Add(2*foldQuiet + age + 15*time.Second)
	for na.ops.Folded(na.ID()) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("nothing folded %v after the last rewrite\n%s", 2*foldQuiet+age+15*time.Second, na.logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if na.ops.Count() != grown {
		t.Fatalf("the log grew from %d to %d ops: the test needs it still", grown, na.ops.Count())
	}
	if !strings.Contains(na.logs.String(), "young=") || !regexp.MustCompile(`folded=0 young=[1-9]`).MatchString(na.logs.String()) {
		t.Fatalf("no pass found young ops before the one that folded:\n%s", na.logs)
	}
}

// restore --at cannot tell a path's state at a time when an op after it,
// even a late one that is not the first, was made on a version holding an
// op recorded by then and since folded; an op folded but recorded after
// the time changes nothing at it.
func TestFoldedAtSeesEveryLaterOp(t *testing.T) {
	ctx := context.Background()
	a := t.TempDir()
	na := startNodeConfig(t, a, freeUDPPort(t), func(cfg *Config) { cfg.FoldAfter, cfg.FoldAge = -1, -1 }, nil)
	rewriteRounds(t, na, 8, 3, nil)
	if _, err := na.foldPass(ctx); err != nil {
		t.Fatal(err)
	}
	self := na.ID()
	if na.ops.Folded(self) < 3 {
		t.Fatalf("a folded up to %d; the test needs its ops 1 to 3 counted as folded", na.ops.Folded(self))
	}
	var late certs.DeviceID
	late[0] = 0xee
	h := func(s string) content.Hash { return content.Sum([]byte(s)) }
	op := func(origin certs.DeviceID, seq uint64, kind oplog.Kind, p, to string, parent vclock.Vector) timedOp {
		return timedOp{Op: oplog.Op{Origin: origin, Seq: seq, Kind: kind, Path: p, NewPath: to, Hash: h(p + to), Size: 1, Lamport: seq, Parent: parent}}
	}
	now := time.Now().UnixNano()

	// self#1 renamed q to p; self#2, recorded by now, wrote p and is
	// folded; late#1, made on self#1's version, arrived after; self#3
	// merged the two. late#1 alone says nothing of self#2: self#3 does.
	renamed := op(self, 1, oplog.KindRename, "q", "p", nil)
	lateWrite := op(late, 1, oplog.KindWrite, "p", "", vclock.Vector{}.With(self, 1))
	merged := op(self, 3, oplog.KindWrite, "p", "", vclock.Vector{}.With(self, 2).With(late, 1))
	times, err := na.recordTimes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if unknown := na.foldedAt(times, []timedOp{renamed}, []timedOp{lateWrite, merged}, now); !unknown["p"] {
		t.Fatalf("p after a late op, then one made on a folded op: unknown %v, want p", unknown)
	}

	// self#1 wrote p before the time; self#2 (folded) and self#3 came
	// after it: p's state then is self#1's. Every op of a was recorded
	// after time 1.
	first := op(self, 1, oplog.KindWrite, "p", "", nil)
	third := op(self, 3, oplog.KindWrite, "p", "", vclock.Vector{}.With(self, 2))
	// self#2, between them, is folded: the log holds self#1 and self#3.
	if unknown := na.foldedAt(times, []timedOp{first}, []timedOp{third}, 1); unknown["p"] {
		t.Fatalf("p, whose folded op came after the time: unknown %v, want none", unknown)
	}
	if unknown := na.foldedAt(times, []timedOp{first}, []timedOp{third}, now); !unknown["p"] {
		t.Fatalf("p, whose folded op came before the time: unknown %v, want p", unknown)
	}
}

// A pass after a large first scan, where a record names every op, reads
// none of them: it would only confirm that none is superseded. Once
// files are rewritten it reads the log and folds what they superseded.
func TestFoldPassSkipsALogWithNothingSuperseded(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	const files = 40
	r := startNodeConfig(t, dir, freeUDPPort(t), func(cfg *Config) { cfg.FoldAfter, cfg.FoldAge = -1, -1 }, nil)
	rewriteRounds(t, r, files, 1, nil)
	res, err := r.foldPass(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.Read != 0 || res.Folded != 0 {
		t.Fatalf("a pass over a log of new files only read %d ops and folded %d; want none", res.Read, res.Folded)
	}
	rewriteRounds(t, r, files, 1, nil)
	if res, err = r.foldPass(ctx); err != nil {
		t.Fatal(err)
	}
	if res.Read == 0 || res.Folded == 0 {
		t.Fatalf("a pass after a rewrite read %d ops and folded %d; want the rewritten files' first ops folded", res.Read, res.Folded)
	}
}

func TestSeqSetCountThrough(t *testing.T) {
	set := make(seqSet, 3)
	for _, seq := range []uint64{0, 1, 2, 63, 64, 65, 127, 128, 130} { // 0 names no op: not counted
		set[seq/64] |= 1 << (seq % 64)
	}
	for _, c := range []struct{ last, want uint64 }{
		{0, 0}, {1, 1}, {2, 2}, {62, 2}, {63, 3}, {64, 4}, {126, 5}, {127, 6}, {128, 7}, {129, 7}, {130, 8}, {1000, 8},
	} {
		if got := set.countThrough(c.last); got != c.want {
			t.Errorf("countThrough(%d) = %d, want %d", c.last, got, c.want)
		}
	}
}

// The tail of a burst of changes, too short for a pass by half the
// folder (a pass in the burst's middle left it), is folded once the log
// has been quiet for foldSettle.
func TestFoldTakesABurstsTailOnceSettled(t *testing.T) {
	const files = 64
	a := t.TempDir()
	for i := range files {
		write(t, filepath.Join(a, fileName(i)), fmt.Sprint("first ", i))
	}
	na := startNodeConfig(t, a, freeUDPPort(t), func(cfg *Config) { cfg.FoldAfter, cfg.FoldAge = 4, -1 },
		func(n *Node) { n.foldSettle = 300 * time.Millisecond })
	// The start-up scan's ops are a pass's worth (half the folder): it
	// folds nothing, and the log's count is where the next counts from.
	waitFor(t, "a first pass", func() string {
		if last, err := na.lastFold(context.Background()); err != nil || last < files {
			return fmt.Sprintf("last fold at %d (%v)", last, err)
		}
		return ""
	})
	// Eight edits: more than a sixteenth of the folder and FoldAfter,
	// far less than half.
	for i := range 8 {
		write(t, filepath.Join(a, fileName(i)), fmt.Sprint("second ", i))
	}
	waitFor(t, "the edits folded once the log settled", func() string {
		if got := na.ops.Folded(na.ID()); got == 0 {
			return fmt.Sprintf("nothing folded; log of %d ops", na.ops.Count())
		}
		return ""
	})
}
