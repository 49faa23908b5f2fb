package node

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"io"
	"maps"
	"path"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/drive-node/drive-node/certs"
	"github.com/drive-node/drive-node/content"
	"github.com/drive-node/drive-node/oplog"
	"github.com/drive-node/drive-node/quicnet"
	"github.com/drive-node/drive-node/state"
	"github.com/drive-node/drive-node/vclock"
)

// readCount stands between a node and its log and database, and counts
// the ops read from the log: in all, and at most between two batches the
// database records (what a pass holds at once cannot be more).
type readCount struct {
	opLog
	stateStore
	mu                      sync.Mutex
	read, sinceRecord, most int
}

// countReads puts a readCount between r's node and its stores.
func countReads(r *replica) *readCount {
	c := &readCount{opLog: r.node.ops, stateStore: r.node.db}
	r.node.ops, r.node.db = c, c
	return c
}

func (c *readCount) Iterate(ctx context.Context, origin certs.DeviceID, from uint64, fn func(oplog.Op) error) error {
	return c.opLog.Iterate(ctx, origin, from, func(op oplog.Op) error {
		c.mu.Lock()
		c.read++
		c.sinceRecord++
		c.most = max(c.most, c.sinceRecord)
		c.mu.Unlock()
		return fn(op)
	})
}

func (c *readCount) Apply(ctx context.Context, b state.Batch) error {
	c.mu.Lock()
	c.sinceRecord = 0
	c.mu.Unlock()
	return c.stateStore.Apply(ctx, b)
}

// reset starts a new count.
func (c *readCount) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.read, c.sinceRecord, c.most = 0, 0, 0
}

// counts returns the ops read in all and at most between two records.
func (c *readCount) counts() (read, most int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.read, c.most
}

// Close closes neither store: the replica owns them.
func (c *readCount) Close() error { return nil }

// pendingOps returns the ops in the replica's log its database has not
// applied, by origin.
func (r *replica) pendingOps(ctx context.Context) ([]oplog.Op, error) {
	applied, err := r.db.Applied(ctx)
	if err != nil {
		return nil, err
	}
	var out []oplog.Op
	for _, origin := range slices.SortedFunc(maps.Keys(r.vector()), compareIDs) {
		ops, err := r.opsAfter(ctx, origin, applied[origin])
		if err != nil {
			return nil, err
		}
		out = append(out, ops...)
	}
	return out, nil
}

// peerOps makes n writes by a made-up origin, as a peer would send them:
// file i at name(i), its content data(i), one Lamport clock from lamport
// on for each.
func peerOps(origin certs.DeviceID, from uint64, n int, lamport uint64, name, data func(i int) string) []oplog.Op {
	ops := make([]oplog.Op, n)
	for i := range ops {
		b := []byte(data(i))
		ops[i] = oplog.Op{Origin: origin, Seq: from + uint64(i), Lamport: lamport + uint64(i), Kind: oplog.KindWrite,
			Path: name(i), Hash: content.Sum(b), Size: int64(len(b)), Mode: 0o644, MTime: 1}
	}
	return ops
}

// insert puts ops in r's log, as a peer's Ops frame does, without
// applying them.
func insert(t testing.TB, r *replica, ops []oplog.Op) {
	t.Helper()
	sealRuns(t, ops, func(o certs.DeviceID) crypto.Signer {
		if i := slices.IndexFunc(simKeys, func(k oplog.OriginKey) bool { return k.ID == o }); i >= 0 {
			return simKey(i)
		}
		return nil
	}, prevIn(t, r.ops))
	if got, err := r.ops.Insert(context.Background(), ops[0].Origin, ops...); err != nil || len(got) != len(ops) {
		t.Fatalf("the log took %d of %d ops: %v", len(got), len(ops), err)
	}
}

// uniqueRun numbers what unique returns.
var uniqueRun atomic.Int64

// unique returns what, made unlike anything another test or run (-count)
// writes: sharedContent keeps every content for the whole process.
func unique(what string) string { return fmt.Sprintf("%s (%d)", what, uniqueRun.Add(1)) }

// made returns the ID of a device other than the scenario's replicas
// (they are 0 and 1), whose ops every replica's log takes.
func made(b byte) certs.DeviceID { return simKeys[maxSimReplicas-int(b)].ID }

// reasonsOf returns what status lists as waiting, per origin: how many
// ops and why.
func reasonsOf(t *testing.T, r *replica) map[certs.DeviceID]string {
	t.Helper()
	rows, _, err := readPending(context.Background(), r.db, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	out := map[certs.DeviceID]string{}
	for _, p := range rows {
		id, err := certs.ParseDeviceID(p.Origin)
		if err != nil {
			t.Fatal(err)
		}
		out[id] = fmt.Sprintf("%d: %s", p.Ops, p.Reason)
	}
	return out
}

// A pass over far more pending ops than a window holds reads them a
// window at a time (today's pass read all 20,000 before applying one),
// applies every one, and leaves both folders alike.
func TestApplyReadsPendingOpsInWindows(t *testing.T) {
	sc, a, b := newScenario(t)
	const files = 5 * applyWindowOps
	var touched []string
	for i := range files {
		p, data := fmt.Sprintf("d%02d/f%05d", i%100, i), fmt.Sprintf("window test file %d", i)
		sharedContent.put([]byte(data))
		sc.must(a.folder.MkdirAll(parentDir(p), 0o755))
		sc.must(a.folder.WriteFile(p, []byte(data), 0o644))
		touched = append(touched, p)
	}
	for d := range 100 {
		touched = append(touched, fmt.Sprintf("d%02d", d))
	}
	sc.must(a.report(sc.ctx, touched...))
	sc.receive(a, b)
	reads := countReads(b)
	sc.must(b.node.applyPending(sc.ctx))
	// The window, the op after it (where the read stops) and, when the
	// pass starts, the first pending op of the one origin.
	read, most := reads.counts()
	if limit := applyWindowOps + 2; most > limit {
		t.Fatalf("the pass read %d ops between two records of the database, over the window's %d", most, limit)
	}
	if pending := len(touched); read < pending {
		t.Fatalf("the pass read %d ops of %d pending", read, pending)
	}
	sc.converged(a, b)
}

// A peer's 20,000 ops behind one whose content no device has: the pass
// that finds it blocked reads the rest once (for an op that would replace
// it); every retry after that reads one window, where it read all 20,000
// every 3 s. Status says what waits, and once the content comes, every
// op is applied.
func TestRetryOfABlockedOriginReadsOneWindow(t *testing.T) {
	sc, _, b := newScenario(t)
	const ops = 5 * applyWindowOps
	peer := made(1)
	first := unique("the first file, whose content no device has yet")
	sharedContent.put([]byte("every other file"))
	insert(t, b, peerOps(peer, 1, ops, 1, func(i int) string { return fmt.Sprintf("f%05d", i) }, func(i int) string {
		if i == 0 {
			return first
		}
		return "every other file"
	}))
	reads := countReads(b)
	if err := b.node.applyPending(sc.ctx); !errors.Is(err, ErrContentNowhere) {
		t.Fatalf("the first pass ended with %v, want the content missing", err)
	}
	for pass := range 3 {
		reads.reset()
		if err := b.node.applyPending(sc.ctx); !errors.Is(err, ErrContentNowhere) {
			t.Fatalf("retry %d ended with %v, want the content missing", pass, err)
		}
		// The first op of the origin when the pass starts, then the
		// window and the op after it.
		if read, _ := reads.counts(); read > applyWindowOps+2 {
			t.Fatalf("retry %d read %d ops, over a window of %d", pass, read, applyWindowOps)
		}
	}
	want := map[certs.DeviceID]string{peer: fmt.Sprintf("%d: %s", ops, reasonNowhere)}
	if got := reasonsOf(t, b); !maps.Equal(got, want) {
		t.Fatalf("status lists %v as waiting, want %v", got, want)
	}
	sharedContent.put([]byte(first))
	sc.must(b.node.applyPending(sc.ctx))
	if applied, _ := b.db.Applied(sc.ctx); applied[peer] != ops {
		t.Fatalf("applied %d of the peer's %d ops once the content came", applied[peer], ops)
	}
	if got := len(b.files()); got != ops {
		t.Fatalf("the folder holds %d files, want %d", got, ops)
	}
	if got := reasonsOf(t, b); len(got) != 0 {
		t.Fatalf("status lists %v as waiting after everything was applied", got)
	}
}

// An origin blocked in one window stays out of the pass's later windows,
// and holds back no other origin's ops there: the other origin's ops,
// interleaved with its own, are all applied, and status says which waits
// and why.
func TestBlockedOriginDoesNotHoldBackOthersAcrossWindows(t *testing.T) {
	sc, _, b := newScenario(t)
	b.node.windowOps = 50
	const ops = 200
	stuck, free := made(1), made(2)
	missing, there := unique("content no device has, for the window test"), "content every device has, for the window test"
	sharedContent.put([]byte(there))
	// Lamport clocks 1, 3, 5… and 2, 4, 6…: every window holds both.
	for k, origin := range []certs.DeviceID{stuck, free} {
		batch := peerOps(origin, 1, ops, 0, func(i int) string { return fmt.Sprintf("o%d/f%03d", k, i) }, func(i int) string {
			if i == 0 && origin == stuck {
				return missing
			}
			return there
		})
		for i := range batch {
			batch[i].Lamport = uint64(2*i + 1 + k)
		}
		insert(t, b, batch)
	}
	if err := b.node.applyPending(sc.ctx); !errors.Is(err, ErrContentNowhere) {
		t.Fatalf("the pass ended with %v, want the content missing", err)
	}
	applied, err := b.db.Applied(sc.ctx)
	sc.must(err)
	if applied[free] != ops || applied[stuck] != 0 {
		t.Fatalf("applied %d of the free origin's ops and %d of the blocked one's, want %d and 0", applied[free], applied[stuck], ops)
	}
	want := map[certs.DeviceID]string{stuck: fmt.Sprintf("%d: %s", ops, reasonNowhere)}
	if got := reasonsOf(t, b); !maps.Equal(got, want) {
		t.Fatalf("status lists %v as waiting, want %v", got, want)
	}
	sharedContent.put([]byte(missing))
	sc.must(b.node.applyPending(sc.ctx))
	if ok, err := b.applied(sc.ctx); err != nil || !ok {
		t.Fatalf("not everything applied once the content came (%v)", err)
	}
	if got := len(b.files()); got != 2*ops+2 { // and the directories o0 and o1
		t.Fatalf("the folder holds %d entries, want %d", got, 2*ops+2)
	}
}

// A device built files and removed them all, and their contents are gone
// with them: one pass over every pending op skipped the writes; passes in
// windows must not wait for those contents for ever, nor skip one write
// per pass. The pass that finds a write blocked reads on to the removals,
// for the writes its window held, and asks for the next pass at once,
// which skips them all: a window of writes per pass.
func TestOpsReplacedBeyondTheWindowDoNotBlock(t *testing.T) {
	sc, _, b := newScenario(t)
	b.node.windowOps = 50
	peer := made(1)
	const built = 120 // files written then removed: more than two windows
	name := func(i int) string { return fmt.Sprintf("obj/%03d.o", i) }
	ops := peerOps(peer, 1, built, 1, name, func(i int) string { return fmt.Sprintf("object %d, removed since", i) })
	for i := range built {
		ops = append(ops, oplog.Op{Origin: peer, Seq: uint64(built + i + 1), Lamport: uint64(built + i + 1), Kind: oplog.KindDelete,
			Path: name(i), Parent: vclock.Vector{{Device: peer, Counter: uint64(i + 1)}}})
	}
	insert(t, b, ops)
	passes := 0
	for ; passes < 5; passes++ {
		err := b.node.applyPending(sc.ctx)
		if ok, aerr := b.applied(sc.ctx); aerr != nil || ok {
			sc.must(aerr)
			sc.must(err)
			break
		}
		if !errors.Is(err, ErrContentNowhere) {
			t.Fatalf("pass %d ended with %v, want a content missing", passes+1, err)
		}
		select {
		case <-b.node.applyKick.C():
		default:
			t.Fatalf("pass %d left ops blocked and asked for no other pass", passes+1)
		}
	}
	// Passes 1 and 2 block at the first and the 51st write, pass 3 at the
	// 101st; pass 4 skips the last writes and applies the removals.
	if applied, _ := b.db.Applied(sc.ctx); applied[peer] != 2*built || passes != 3 {
		t.Fatalf("%d passes applied %d of %d ops, want all in 4", passes+1, applied[peer], 2*built)
	}
	if files := b.files(); len(files) != 1 { // the directory obj
		t.Fatalf("the folder holds %v, want only the empty directory", files)
	}
}

// simWindowOps, when set, bounds the simulated nodes' apply windows
// (Node.windowOps).
var simWindowOps int

// TestSimulationInSmallWindows runs the simulation with windows of three
// ops: nearly every pass is cut into windows, and a window ends between
// an op and the ops that build on it or replace it, in every way the
// schedule makes; every seed must still converge.
func TestSimulationInSmallWindows(t *testing.T) {
	simWindowOps = 3
	t.Cleanup(func() { simWindowOps = 0 })
	var seeds []int64
	for i := range min(*simSeeds, 200) {
		seeds = append(seeds, int64(i))
	}
	if *simSeed >= 0 {
		seeds = []int64{*simSeed}
	}
	for _, r := range runSeeds(t, seeds, *simFault) {
		if r.err != nil {
			r.fail(t)
		}
	}
}

// gatedSync holds the first SyncFS of a folder, which a chunk of small
// fetched files calls before it places any of them, until release is
// closed; entered is closed when it starts to wait.
type gatedSync struct {
	Folder
	once             sync.Once
	entered, release chan struct{}
}

func (g *gatedSync) SyncFS() error {
	g.once.Do(func() {
		close(g.entered)
		<-g.release
	})
	return g.Folder.SyncFS()
}

// noteFetch serves contents from sharedContent and sends each hash asked
// for on asked.
type noteFetch struct{ asked chan content.Hash }

func (f noteFetch) Fetch(ctx context.Context, h content.Hash, offset int64, dst io.Writer) (int64, error) {
	f.asked <- h
	return sharedContent.Fetch(ctx, h, offset, dst)
}

// A pass's pipeline does not stop between windows: the contents of the
// next window's first chunk are fetched while the window before is
// applied. What was fetched for ops the next window then leaves out (an
// origin blocked meanwhile) is removed with it.
func TestNextWindowFetchedWhileOneIsApplied(t *testing.T) {
	sc, _, b := newScenario(t)
	b.node.windowOps = 10
	const ops = 20
	stuck, free := made(1), made(2)
	// Lamport clocks 1, 3, 5… and 2, 4, 6…: each window holds five ops
	// of each origin, and the stuck origin's first op waits for a content
	// no device has.
	var ahead []content.Hash // the second window's, read ahead
	var missing string
	for k, origin := range []certs.DeviceID{stuck, free} {
		data := make([]string, ops)
		for i := range data {
			data[i] = unique(fmt.Sprintf("lead test file %d of origin %d", i, k))
			if i > 0 || origin == free {
				sharedContent.put([]byte(data[i]))
			} else {
				missing = data[i]
			}
		}
		batch := peerOps(origin, 1, ops, 0, func(i int) string { return fmt.Sprintf("o%d/f%03d", k, i) }, func(i int) string { return data[i] })
		for i := range batch {
			batch[i].Lamport = uint64(2*i + 1 + k)
		}
		insert(t, b, batch)
		for _, op := range batch[5:10] {
			ahead = append(ahead, op.Hash)
		}
	}
	fetches := noteFetch{make(chan content.Hash, 4*ops)}
	b.node.contentFrom = func([]*quicnet.Peer) []contentFetcher { return []contentFetcher{fetches} }
	gate := &gatedSync{Folder: b.folder, entered: make(chan struct{}), release: make(chan struct{})}
	b.node.setFolder(gate)
	passed := make(chan error, 1)
	go func() { passed <- b.node.applyPending(sc.ctx) }()

	// The first window's files are fetched, and wait to be placed.
	deadline := time.After(10 * time.Second)
	select {
	case <-gate.entered:
	case <-deadline:
		t.Fatal("the first window's files were never flushed")
	}
	// Meanwhile the second window's contents are fetched.
	wanted := map[content.Hash]bool{}
	for _, h := range ahead {
		wanted[h] = true
	}
	for len(wanted) > 0 {
		select {
		case h := <-fetches.asked:
			delete(wanted, h)
		case <-deadline:
			close(gate.release)
			<-passed
			t.Fatalf("%d contents of the next window were not fetched while the first one was applied", len(wanted))
		}
	}
	close(gate.release)
	if err := <-passed; !errors.Is(err, ErrContentNowhere) {
		t.Fatalf("the pass ended with %v, want the content missing", err)
	}
	applied, err := b.db.Applied(sc.ctx)
	sc.must(err)
	if applied[free] != ops || applied[stuck] != 0 {
		t.Fatalf("applied %d of the free origin's ops and %d of the blocked one's, want %d and 0", applied[free], applied[stuck], ops)
	}
	// The stuck origin's contents fetched ahead are not left behind; the
	// missing content's empty start is, for the next try to resume.
	d, err := b.folder.Open(stagingDir)
	sc.must(err)
	left, err := d.Readdirnames(-1)
	d.Close()
	sc.must(err)
	if resumed := path.Base(stagedName(content.Sum([]byte(missing)))); len(left) != 1 || left[0] != resumed {
		t.Fatalf("the staging directory holds %v after the pass, want only %s", left, resumed)
	}
}
