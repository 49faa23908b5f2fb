package node

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand"
	"os"
	"path"
	"runtime"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/drive-node/drive-node/certs"
	"github.com/drive-node/drive-node/content"
	"github.com/drive-node/drive-node/internal/clock"
	"github.com/drive-node/drive-node/oplog"
)

// The simulation runs real nodes (see replica) under a seeded schedule of
// edits, deletes, renames, type changes, partitions, heals, reordered
// messages, crashes (between placing files and recording them too) and
// failing writes, renames and fsyncs. No sleeps, no network: a seed
// replays exactly, down to the order of every change to every folder
// (TestSimulationReplays checks it), so a failure's seed reproduces it.

// simSteps is the length of a seed's schedule.
const simSteps = 50

var (
	simSeeds = flag.Int("sim.seeds", 2000, "simulation seeds to run")
	simSeed  = flag.Int64("sim.seed", -1, "run only this seed")
	simFault = flag.Bool("sim.faults", true, "crash devices, also in the middle of applies, and fail their writes")
	// Content whose every copy is gone (written, kept as a conflict copy
	// and removed before any peer fetched it; or lost with unsynced data
	// in a crash) leaves ops that wait for it; without this flag a store
	// of every content written stands in for a device that has it.
	simStrictContent = flag.Bool("sim.strictcontent", false, "fetch content only from connected devices")
	simReplays       = flag.Int("sim.replays", 200, "seeds run twice to check that a seed replays")
)

// A user's edits. "d3" is both a file and a directory name, so a path
// changes type, locally and concurrently on several replicas.
var (
	simFiles = []string{"a.txt", "b.txt", "report.doc", "d1/x.txt", "d1/y.txt", "d2/z.txt", "d1/sub/w.txt", "d3", "d3/v.txt"}
	simDirs  = []string{"d1", "d2", "d1/sub", "d3"}
)

// canMkdirAll reports whether every directory above p is a directory or
// missing: MkdirAll fails on a file in the way.
func canMkdirAll(files map[string]simEntry, p string) bool {
	for d := path.Dir(p); d != "."; d = path.Dir(d) {
		if e, ok := files[d]; ok && !e.dir {
			return false
		}
	}
	return true
}

// chunkedBase is the bulk of the simulation's large contents: every
// device's large files are it with a small change, so a device that
// receives one finds most of its chunks in what it holds.
var chunkedBase = func() []byte {
	b := make([]byte, 3*content.MinChunk)
	rand.New(rand.NewSource(42)).Read(b)
	return b
}()

// chunkedContent is a content of several chunks: chunkedBase with the
// device's byte and the step put in at a place the step picks, so the
// chunks around it are new.
func chunkedContent(device byte, step int) string {
	at := (step * 7919) % len(chunkedBase)
	return string(chunkedBase[:at]) + fmt.Sprintf("%x-%d", device, step) + string(chunkedBase[at:])
}

// edit makes one random change to r's folder, as a user, and reports it.
func (s *sim) edit(ctx context.Context, r *replica, step int) error {
	pick := func(list []string) string { return list[s.rng.Intn(len(list))] }
	files := r.files()
	var existing []string
	for p, e := range files {
		if !e.dir {
			existing = append(existing, p)
		}
	}
	sort.Strings(existing)
	names, dirs := simFiles, simDirs
	if s.mixed {
		names, dirs = mixedFiles, mixedDirs
	}
	switch k := s.rng.Intn(10); {
	case k < 5 || len(existing) == 0: // create or modify
		p := pick(names)
		if r.refuses(p) {
			return nil // the user's program is told no, and nothing changes
		}
		if e, ok := files[p]; ok && e.dir {
			if err := r.removeTree(ctx, p); err != nil { // a directory replaced by a file
				return err
			}
		}
		if !canMkdirAll(files, p) {
			return nil // a file where p's directory would go
		}
		if (step+int(r.id[0]))%16 == 0 { // not drawn: the schedules stay as they were
			return r.write(ctx, p, chunkedContent(r.id[0], step))
		}
		return r.write(ctx, p, fmt.Sprintf("%x-%d", r.id[0], step))
	case k < 7:
		p := existing[s.rng.Intn(len(existing))]
		if err := r.folder.Remove(p); err != nil {
			return err
		}
		return r.report(ctx, p)
	case k < 9:
		from, to := existing[s.rng.Intn(len(existing))], pick(names)
		if e, ok := files[to]; from == to || ok && e.dir || !canMkdirAll(files, to) || strings.HasPrefix(to, from+"/") || r.refuses(to) {
			return nil
		}
		return r.move(ctx, from, to)
	default: // mkdir or rm -rf
		d := pick(dirs)
		if !canMkdirAll(files, d) {
			return nil
		}
		e, ok := files[d]
		if ok && e.dir {
			return r.removeTree(ctx, d)
		}
		if ok { // a file replaced by a directory
			if err := r.folder.Remove(d); err != nil {
				return err
			}
		}
		if err := r.folder.MkdirAll(d+"/x", 0o755); err != nil {
			return err
		}
		var touched []string
		for q := d + "/x"; q != "."; q = path.Dir(q) {
			touched = append(touched, q)
		}
		return r.report(ctx, touched...)
	}
}

type message struct {
	from, to int
	ops      []oplog.Op
}

type sim struct {
	rng   *rand.Rand
	clock *clock.Fake
	reps  []*replica
	up    [][]bool                            // link i<->j up
	sent  []map[int]map[certs.DeviceID]uint64 // what i believes j has, per connection
	net   []message
	log   []string
	// conflicts counts the conflict copies in the final folders.
	conflicts int
	// faults crashes devices, also in the middle of applies, and fails
	// their writes (see step).
	faults bool
	// mixed puts devices 1 and 2 on disks that fold names (see
	// mixedDisks) and has users write names that only differ in case or
	// Unicode form, and names exFAT refuses.
	mixed bool
	// roles makes device 1 receive-only and gives device 2 rules of its
	// own that ignore part of the folder (see rolesSetup); toggles has
	// device 2's user add and remove those rules as the schedule goes,
	// and remove them before the devices settle.
	roles, toggles bool
	// trace, if set, hears what device i decided and observed: for
	// following one seed while debugging it.
	trace func(i int, what string)
	// unplaced counts the files of device 0 a folding device could not
	// hold and listed (see checkMixed); localChanges and setAside what a
	// roles simulation's mirror kept and its device with rules set
	// aside.
	unplaced, localChanges, setAside, toggled int
}

func (s *sim) tracef(format string, args ...any) { s.log = append(s.log, fmt.Sprintf(format, args...)) }

// connected lists the devices i is connected to now.
func (s *sim) connected(i int) []*replica {
	var out []*replica
	if i >= len(s.up) {
		return nil // still being made
	}
	for j, up := range s.up[i] {
		if up && j < len(s.reps) {
			out = append(out, s.reps[j])
		}
	}
	return out
}

// connect resets what i believes j has to j's log, as a Hello does.
func (s *sim) connect(i, j int) {
	s.sent[i][j] = s.reps[j].vector()
	s.sent[j][i] = s.reps[i].vector()
}

// send queues, from i to j, the ops j lacks as far as i knows.
func (s *sim) send(ctx context.Context, i, j int) error {
	var ops []oplog.Op
	for o, highest := range s.reps[i].vector() {
		have := s.sent[i][j][o]
		if highest > have {
			more, err := s.reps[i].opsAfter(ctx, o, have)
			if err != nil {
				return err
			}
			ops = append(ops, more...)
			s.sent[i][j][o] = highest
		}
	}
	if len(ops) > 0 {
		s.net = append(s.net, message{i, j, ops})
	}
	return nil
}

// drop loses every message between i and j (a connection that died).
func (s *sim) drop(i, j int) {
	kept := s.net[:0]
	for _, m := range s.net {
		if !(m.from == i && m.to == j || m.from == j && m.to == i) {
			kept = append(kept, m)
		}
	}
	s.net = kept
}

func (s *sim) deliver(ctx context.Context, k int) error {
	m := s.net[k]
	s.net = append(s.net[:k], s.net[k+1:]...)
	if !s.up[m.from][m.to] {
		return nil
	}
	_, err := s.reps[m.to].ops.Insert(ctx, s.reps[m.from].id, m.ops...)
	if errors.Is(err, oplog.ErrGap) {
		// A reordered delivery: the connection is reset and the Hello
		// exchange starts over from what is durable.
		s.tracef("gap %d->%d: reset", m.from, m.to)
		s.drop(m.from, m.to)
		s.connect(m.from, m.to)
		return nil
	}
	return err
}

// apply runs replica i's apply step; fault, if set, arms its folder first.
func (s *sim) apply(ctx context.Context, i int, fault func(*replica)) error {
	r := s.reps[i]
	if fault == nil {
		return ignoreWaiting(r.node.applyPending(ctx))
	}
	fault(r)
	err := r.node.applyPending(ctx)
	r.folder.ClearFaults()
	r.failing.failApply = false
	if r.folder.Crashed() {
		s.tracef("crashed %d while applying (%v)", i, err)
		return s.crash(ctx, i)
	}
	return nil // a failed write leaves its op pending, retried later
}

// ignoreWaiting drops the errors of ops left pending for a reason a later
// pass settles: content that no connected device has now (it may come
// with a reconnection, or a later op may supersede the op that wants it).
func ignoreWaiting(err error) error {
	if err == nil || errors.Is(err, ErrContentUnavailable) || errors.Is(err, ErrContentNowhere) {
		return nil
	}
	return err
}

// crash stops replica i: messages in flight to or from it are lost, its
// folder keeps only what was durable, and a new node opens over its log,
// database and folder and scans the folder.
func (s *sim) crash(ctx context.Context, i int) error {
	r := s.reps[i]
	r.crashes++
	for j := range s.reps {
		if j != i {
			s.drop(i, j)
			if s.up[i][j] {
				s.connect(i, j)
			}
		}
	}
	r.folder.Restart()
	if err := r.crashLog(s.rng); err != nil {
		return fmt.Errorf("crash %d: %w", i, err)
	}
	if err := r.start(ctx); err != nil {
		return fmt.Errorf("reopen %d: %w", i, err)
	}
	return r.scan(ctx)
}

// close closes every replica's log and database.
func (s *sim) close() {
	for _, r := range s.reps {
		r.close()
	}
}

// runSim runs one seed's schedule on n replicas and checks the outcome.
// The caller closes the returned sim, which is there even on an error.
func runSim(ctx context.Context, seed int64, n, steps int, faults bool, dbDir string) (s *sim, err error) {
	return runSimOn(ctx, &sim{rng: rand.New(rand.NewSource(seed)), clock: newSimClock(), faults: faults}, n, steps, dbDir)
}

// runSimOn runs s, made by the caller, on n replicas.
func runSimOn(ctx context.Context, s *sim, n, steps int, dbDir string) (*sim, error) {
	for i := 0; i < n; i++ {
		r, err := newReplica(ctx, i, dbDir, s.clock, func() []*replica { return s.connected(i) })
		if err != nil {
			return s, err
		}
		if s.mixed {
			mixedDisks(ctx, i, r)
		}
		if s.roles {
			rolesSetup(i, r)
		}
		if s.trace != nil {
			i := i
			r.trace = func(w string) { s.trace(i, w) }
		}
		s.reps = append(s.reps, r)
		s.up = append(s.up, make([]bool, n))
		s.sent = append(s.sent, map[int]map[certs.DeviceID]uint64{})
	}
	for i := 0; i < n; i++ {
		for j := 0; j < n; j++ {
			s.up[i][j] = i != j
			s.sent[i][j] = map[certs.DeviceID]uint64{}
		}
	}
	for step := 1; step <= steps; step++ {
		s.clock.Advance(time.Second)
		if s.mixed {
			// Times a second apart: a disk that keeps them to the second
			// still tells one step's writes from the next's.
			for _, r := range s.reps {
				r.folder.CatchUp(s.clock.Now())
			}
		}
		if err := s.step(ctx, step, n); err != nil {
			return s, fmt.Errorf("step %d: %w", step, err)
		}
	}
	if s.toggles && s.reps[2].rules != "" {
		if err := s.toggleRules(ctx); err != nil {
			return s, err
		}
	}
	if err := s.settle(ctx); err != nil {
		return s, err
	}
	switch {
	case s.mixed:
		return s, s.checkMixed(ctx)
	case s.roles:
		return s, s.checkRoles(ctx)
	}
	return s, s.check(ctx)
}

// step runs one scheduled event.
func (s *sim) step(ctx context.Context, step, n int) error {
	if s.toggles && s.rng.Intn(12) == 0 {
		return s.toggleRules(ctx)
	}
	i, j := s.rng.Intn(n), s.rng.Intn(n)
	switch k := s.rng.Intn(100); {
	case k < 40:
		s.tracef("%d: edit on %d", step, i)
		if !s.faults || s.rng.Intn(25) != 0 {
			return s.edit(ctx, s.reps[i], step)
		}
		// The op log cannot take the change: the daemon stops (the log
		// is never written after a failure) and, restarted, finds the
		// change on disk.
		s.reps[i].failing.failAppend = true
		err := s.edit(ctx, s.reps[i], step)
		s.reps[i].failing.failAppend = false
		if !errors.Is(err, errInjected) {
			return err // nothing was recorded (or it failed otherwise)
		}
		s.tracef("%d: the log of %d refused the edit: restart", step, i)
		s.reps[i].faults++
		return s.crash(ctx, i)
	case k < 60:
		if i != j && s.up[i][j] {
			return s.send(ctx, i, j)
		}
	case k < 78:
		if len(s.net) > 0 {
			return s.deliver(ctx, s.rng.Intn(len(s.net))) // any order: reordering
		}
	case k < 86:
		return s.apply(ctx, i, nil)
	case k < 90 && !s.faults:
		return s.apply(ctx, i, nil)
	case k < 88:
		// A write, rename or fsync of the apply fails: the op waits.
		s.reps[i].faults++
		if s.rng.Intn(4) == 0 {
			// The database fails to record a batch whose files are
			// placed: the ops wait, and the placed files must not be
			// taken for local edits on the next pass.
			s.tracef("%d: the database of %d fails to record an apply", step, i)
			return s.apply(ctx, i, func(r *replica) { r.failing.failApply = true })
		}
		at := 1 + s.rng.Intn(12)
		s.tracef("%d: change %d of the apply on %d fails", step, at, i)
		return s.apply(ctx, i, func(r *replica) { r.folder.FailAt(at, syscall.EIO) })
	case k < 90:
		// The machine stops in the middle of an apply: between placing
		// files and recording them, or before they were durable.
		at := 1 + s.rng.Intn(12)
		s.tracef("%d: crash %d at change %d of an apply", step, i, at)
		return s.apply(ctx, i, func(r *replica) { r.folder.CrashAt(at) })
	case k < 94:
		if i != j && s.up[i][j] {
			s.up[i][j], s.up[j][i] = false, false
			s.drop(i, j)
			s.tracef("%d: cut %d-%d", step, i, j)
		}
	case k < 98:
		if i != j && !s.up[i][j] {
			s.up[i][j], s.up[j][i] = true, true
			s.connect(i, j)
			s.tracef("%d: heal %d-%d", step, i, j)
		}
	case !s.faults:
	default:
		s.tracef("%d: crash %d", step, i)
		return s.crash(ctx, i)
	}
	return nil
}

// settle heals every link and runs every device until they agree.
func (s *sim) settle(ctx context.Context) error {
	for i := range s.reps {
		for j := range s.reps {
			if i != j && !s.up[i][j] {
				s.up[i][j] = true
				s.connect(i, j)
			}
		}
	}
	for round := 0; ; round++ {
		if round > 200 {
			return fmt.Errorf("did not settle:%s", s.describePending(ctx))
		}
		for i := range s.reps {
			// The watcher: what a failed apply left on disk unrecorded (a
			// conflict copy placed before a later effect failed) is
			// recorded, as the daemon's watcher would.
			if err := s.reps[i].scan(ctx); err != nil {
				return fmt.Errorf("scan %d: %w", i, err)
			}
			if err := s.apply(ctx, i, nil); err != nil {
				return err
			}
			for j := range s.reps {
				if i != j {
					if err := s.send(ctx, i, j); err != nil {
						return err
					}
				}
			}
		}
		if settled, err := s.settled(ctx); err != nil || len(s.net) == 0 && settled {
			return err
		}
		for len(s.net) > 0 {
			if err := s.deliver(ctx, s.rng.Intn(len(s.net))); err != nil {
				return err
			}
		}
	}
}

// describePending lists, per device, the ops it has not applied and why
// the last pass left them.
func (s *sim) describePending(ctx context.Context) string {
	var b strings.Builder
	for i, r := range s.reps {
		ops, err := r.pendingOps(ctx)
		if err != nil {
			fmt.Fprintf(&b, "\n%d: %v", i, err)
			continue
		}
		for _, op := range ops {
			fmt.Fprintf(&b, "\n%d: pending %s#%d %v %q %q %s", i, op.Origin.Short(), op.Seq, op.Kind, op.Path, op.NewPath, op.Hash.Short())
		}
		if len(ops) > 0 {
			fmt.Fprintf(&b, "\n%d: last pass: %v", i, r.node.applyPending(ctx))
		}
		fmt.Fprintf(&b, "\n%d: folder %s", i, r.describeFS())
	}
	return b.String()
}

// settled reports whether every log holds the same ops and every
// database has applied them.
func (s *sim) settled(ctx context.Context) (bool, error) {
	v0 := s.reps[0].vector()
	for _, r := range s.reps {
		v := r.vector()
		if len(v) != len(v0) {
			return false, nil
		}
		for o, n := range v0 {
			if v[o] != n {
				return false, nil
			}
		}
		if ok, err := r.applied(ctx); err != nil || !ok {
			return false, err
		}
	}
	return true, nil
}

// simDBDir is where a simulation's databases go: memory-backed where the
// system has /dev/shm.
func simDBDir(t testing.TB) string {
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		dir, err := os.MkdirTemp("/dev/shm", "drive-node-sim-")
		if err == nil {
			t.Cleanup(func() { os.RemoveAll(dir) })
			return dir
		}
	}
	return t.TempDir()
}

// seedOutcome is how one seed's run ended.
type seedOutcome struct {
	seed int64
	n    int
	sim  *sim
	err  error
}

// fail reports a seed that did not converge, with the schedule's last
// events and the command that replays it.
func (o seedOutcome) fail(t *testing.T) {
	var tail []string
	if o.sim != nil {
		tail = o.sim.log
	}
	if len(tail) > 40 {
		tail = tail[len(tail)-40:]
	}
	t.Fatalf("seed %d (%d replicas): %v\nlast events:\n%s\nrerun: go test ./node -run TestSimulation -sim.seed=%d", o.seed, o.n, o.err, strings.Join(tail, "\n"), o.seed)
}

// runSeeds runs every seed on 2 to 5 replicas, on every core; each seed
// is deterministic on its own.
func runSeeds(t testing.TB, seeds []int64, faults bool) []seedOutcome {
	return runSeedsOf(t, seeds, func(seed int64) *sim {
		return &sim{rng: rand.New(rand.NewSource(seed)), clock: newSimClock(), faults: faults}
	})
}

// runSeedsOf is runSeeds for sims that newSim makes.
func runSeedsOf(t testing.TB, seeds []int64, newSim func(seed int64) *sim) []seedOutcome {
	ctx := context.Background()
	base := simDBDir(t)
	results := make([]seedOutcome, len(seeds))
	next := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < runtime.GOMAXPROCS(0); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range next {
				seed := seeds[k]
				s := newSim(seed)
				n := 2 + int(seed%4)
				if s.roles {
					n = 4 + int(seed%2) // a reference, a mirror, a device with rules, and more
				}
				dir, err := os.MkdirTemp(base, "seed-")
				if err != nil {
					results[k] = seedOutcome{seed, n, nil, err}
					continue
				}
				s, err = runSimOn(ctx, s, n, simSteps, dir)
				s.close()
				os.RemoveAll(dir)
				results[k] = seedOutcome{seed, n, s, err}
			}
		}()
	}
	for k := range seeds {
		next <- k
	}
	close(next)
	wg.Wait()
	return results
}

// fingerprint sums up what a run did: its schedule's events, every
// change each folder saw, in order, and the ops each log holds.
func (s *sim) fingerprint() string {
	var b strings.Builder
	for _, e := range s.log {
		fmt.Fprintln(&b, e)
	}
	for i, r := range s.reps {
		changes, digest := r.folder.Journal()
		fmt.Fprintf(&b, "replica %d: %d changes, journal %016x, log %v\n", i, changes, digest, r.vector())
	}
	return b.String()
}

// simSeedList is seeds 0 to count-1, or only -sim.seed when it is set.
func simSeedList(count int) []int64 {
	if *simSeed >= 0 {
		return []int64{*simSeed}
	}
	seeds := make([]int64, count)
	for i := range seeds {
		seeds[i] = int64(i)
	}
	return seeds
}

// TestSimulation runs 2 to 5 real nodes over many seeded schedules; a
// failure prints the seed (rerun it with -sim.seed=N) and the schedule's
// last events.
func TestSimulation(t *testing.T) {
	seeds := simSeedList(*simSeeds)
	start := time.Now()
	results := runSeeds(t, seeds, *simFault)
	conflicts, forwarded, clashes, crashes, faults := 0, 0, 0, 0, 0
	for _, r := range results {
		if r.err != nil {
			r.fail(t)
		}
		for _, rep := range r.sim.reps {
			forwarded += rep.forwarded
			clashes += rep.clashes
			crashes += rep.crashes
			faults += rep.faults
		}
		conflicts += r.sim.conflicts
	}
	took := time.Since(start)
	t.Logf("%d seeds converged in %v (%.0f seeds/s); %d conflict copies kept in the final folders; %d edits carried to a rename's target; %d file/directory clashes; %d crashes; %d failed writes",
		len(seeds), took.Round(time.Millisecond), float64(len(seeds))/took.Seconds(), conflicts, forwarded, clashes, crashes, faults)
	if len(seeds) > 100 && (conflicts == 0 || forwarded == 0 || clashes == 0 || *simFault && (crashes == 0 || faults == 0)) {
		t.Fatal("no seed produced a conflict, a rename vs edit, a file vs directory clash, a crash or a failed write: the schedule does not exercise them")
	}
}

// TestSimulationReplays runs seeds twice and demands the same run: the
// same events, the same changes to every folder in the same order, the
// same logs. A seed that a failure prints must replay that failure.
func TestSimulationReplays(t *testing.T) {
	var seeds []int64
	for i := 0; i < *simReplays; i++ {
		seeds = append(seeds, int64(i))
	}
	first, second := runSeeds(t, seeds, true), runSeeds(t, seeds, true)
	for k := range seeds {
		a, b := first[k], second[k]
		if a.err != nil {
			a.fail(t)
		}
		if b.err != nil {
			b.fail(t)
		}
		if fa, fb := a.sim.fingerprint(), b.sim.fingerprint(); fa != fb {
			t.Fatalf("seed %d ran differently the second time:\n--- first\n%s--- second\n%s", a.seed, fa, fb)
		}
	}
}
