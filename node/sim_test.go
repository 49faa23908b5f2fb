package node

import (
	"flag"
	"fmt"
	"math/rand"
	"path"
	"sort"
	"strings"
	"testing"

	"github.com/drive-node/drive-node/certs"
	"github.com/drive-node/drive-node/content"
	"github.com/drive-node/drive-node/node/internal/core"
	"github.com/drive-node/drive-node/oplog"
	"github.com/drive-node/drive-node/state"
	"github.com/drive-node/drive-node/watcher"
)

// The simulation runs the engine's decisions — planLocal, recordsFor and
// planRemote, the same functions the node uses — on replicas whose folder,
// records and op log are in memory, under a seeded schedule of edits,
// partitions, heals, reordered messages and crashes. No sleeps, no network:
// a seed replays exactly.

var (
	simSeeds = flag.Int("sim.seeds", 2000, "simulation seeds to run")
	simSeed  = flag.Int64("sim.seed", -1, "run only this seed")
)

type simEntry struct {
	dir   bool
	hash  content.Hash
	mode  uint32
	mtime int64
}

type replica struct {
	id      certs.DeviceID
	log     map[certs.DeviceID][]oplog.Op // each origin's ops, seq 1..n
	lamport uint64
	records map[string]state.File
	applied map[certs.DeviceID]uint64
	fs      map[string]simEntry
	// forwarded counts edits carried to a rename's target, to show the
	// schedule exercises rename vs edit.
	forwarded int
	// stuck counts ops whose effects failed (kept pending).
	stuck int
	// clashes counts remote ops that put a file where a directory is, or
	// a directory where a file is, to show the schedule exercises them.
	clashes int
}

func newReplica(i int) *replica {
	var id certs.DeviceID
	id[0], id[1] = byte(i+1), 0x5a
	return &replica{id: id, log: map[certs.DeviceID][]oplog.Op{}, records: map[string]state.File{}, applied: map[certs.DeviceID]uint64{}, fs: map[string]simEntry{}}
}

func (r *replica) vector() map[certs.DeviceID]uint64 {
	v := map[certs.DeviceID]uint64{}
	for o, ops := range r.log {
		v[o] = uint64(len(ops))
	}
	return v
}

// fill gathers what the core needs from the replica's maps.
func (r *replica) fill(s *core.Snapshot, needs core.Needs) {
	for _, p := range needs.Records {
		s.Records[p] = nil
		if f, ok := r.records[p]; ok {
			s.Records[p] = &f
		}
	}
	for _, id := range needs.Ops {
		s.Ops[id] = nil
		if ops := r.log[id.Origin]; id.Seq > 0 && id.Seq <= uint64(len(ops)) {
			s.Ops[id] = &ops[id.Seq-1]
		}
	}
	for _, d := range needs.Occupied {
		s.Occupied[d] = r.liveUnder(d)
	}
}

// plan asks the core what op does on this replica.
func (r *replica) plan(op oplog.Op) core.RemotePlan {
	s := core.NewSnapshot()
	for {
		plan := core.PlanRemote(op, s, r.sourceUsable(op), 0)
		if plan.Needs.Empty() {
			return plan
		}
		r.fill(s, plan.Needs)
	}
}

// forwards reports whether op carries an edit to a rename's target.
func (r *replica) forwards(op oplog.Op) bool {
	s := core.NewSnapshot()
	for {
		to, needs := core.ForwardTarget(op, s)
		if needs.Empty() {
			return to != ""
		}
		r.fill(s, needs)
	}
}

// observe records the current state of paths as the watcher and
// recordLocal do: planLocal, then the ops are logged and recorded.
func (r *replica) observe(paths []string) {
	var obs []watcher.Observation
	seen := map[string]bool{}
	add := func(o watcher.Observation) {
		if !seen[o.Path] {
			seen[o.Path] = true
			obs = append(obs, o)
		}
	}
	for _, p := range paths {
		e, ok := r.fs[p]
		if !ok {
			add(watcher.Observation{Path: p})
			for q, rec := range r.records {
				if !rec.Deleted && strings.HasPrefix(q, p+"/") {
					add(watcher.Observation{Path: q})
				}
			}
			continue
		}
		add(watcher.Observation{Path: p, Exists: true, Dir: e.dir, Hash: e.hash, Mode: e.mode, MTime: e.mtime})
	}
	sort.Slice(obs, func(i, j int) bool { return obs[i].Path < obs[j].Path })
	known := map[string]state.File{}
	for _, o := range obs {
		if f, ok := r.records[o.Path]; ok {
			known[o.Path] = f
		}
	}
	plan := core.PlanLocal(obs, known)
	for _, m := range plan.MetaOnly {
		r.records[m.Path] = m
	}
	for _, op := range plan.Ops {
		r.lamport++
		op.Origin, op.Seq, op.Lamport = r.id, uint64(len(r.log[r.id])+1), r.lamport
		r.log[r.id] = append(r.log[r.id], op)
		for _, rec := range core.RecordsFor(op, 0) {
			r.records[rec.Path] = rec
		}
		r.applied[r.id] = op.Seq
	}
}

// insert stores ops like oplog.Insert: duplicates skipped, a gap stops.
func (r *replica) insert(ops []oplog.Op) (gap bool) {
	for _, op := range ops {
		have := uint64(len(r.log[op.Origin]))
		if op.Seq <= have {
			continue
		}
		if op.Seq != have+1 {
			return true
		}
		r.log[op.Origin] = append(r.log[op.Origin], op)
		r.lamport = max(r.lamport, op.Lamport)
	}
	return false
}

// applyPending mirrors Node.applyPending with every content available.
func (r *replica) applyPending() {
	var pending []oplog.Op
	for o, ops := range r.log {
		pending = append(pending, ops[r.applied[o]:]...)
	}
	sortCausal(pending)
	skip := core.SupersededInBatch(pending)
	for _, op := range pending {
		if op.Origin == r.id {
			for _, rec := range core.RecordsFor(op, 0) {
				r.records[rec.Path] = rec
			}
			r.applied[op.Origin] = op.Seq
		}
	}
	blocked := map[certs.DeviceID]bool{}
	for i, op := range pending {
		if op.Origin == r.id || blocked[op.Origin] {
			continue
		} else if !skip[i] {
			if r.forwards(op) {
				r.forwarded++
			}
			if r.clashesWith(op) {
				r.clashes++
			}
			plan := r.plan(op)
			follow := plan.Observe
			failed := false
			for _, e := range plan.Effects {
				stays, ok := r.run(e)
				if !ok {
					failed = true
					break
				}
				if stays {
					follow = append(follow, e.Path)
				}
			}
			if failed {
				// As on a node: the op stays pending, and so do its
				// origin's later ops.
				r.stuck++
				blocked[op.Origin] = true
				continue
			}
			for _, rec := range plan.Records {
				r.records[rec.Path] = rec
			}
			if len(follow) > 0 {
				r.observe(follow)
			}
		}
		r.applied[op.Origin] = op.Seq
	}
}

func (r *replica) sourceUsable(op oplog.Op) bool {
	if op.Kind != oplog.KindRename {
		return false
	}
	rec, ok := r.records[op.Path]
	e, onDisk := r.fs[op.Path]
	return ok && !rec.Deleted && rec.Hash == op.Hash && onDisk && !e.dir && e.hash == op.Hash
}

func (r *replica) mkdirAll(p string) {
	for d := path.Dir(p); d != "."; d = path.Dir(d) {
		if e, ok := r.fs[d]; !ok || !e.dir {
			r.fs[d] = simEntry{dir: true, mode: 0o755}
		}
	}
}

func (r *replica) hasChildren(p string) bool {
	for q := range r.fs {
		if strings.HasPrefix(q, p+"/") {
			return true
		}
	}
	return false
}

// run carries out an effect as runEffect does on a real folder. ok false
// is an effect that fails there (a file where a directory is needed, a
// directory with entries where a file goes): the op stays pending.
func (r *replica) run(e core.Effect) (stays, ok bool) {
	switch e.Kind {
	case core.Place:
		if cur, ok := r.fs[e.Path]; ok && cur.dir && r.hasChildren(e.Path) || !r.canMkdirAll(e.Path) {
			return false, false
		}
		r.mkdirAll(e.Path)
		r.fs[e.Path] = simEntry{hash: e.Op.Hash, mode: e.Op.Mode, mtime: e.Op.MTime}
	case core.Move, core.MoveAside:
		cur, ok := r.fs[e.Path]
		if !ok || cur.dir {
			return false, true
		}
		if to, ok := r.fs[e.To]; ok && to.dir && r.hasChildren(e.To) || !r.canMkdirAll(e.To) {
			return false, false
		}
		r.mkdirAll(e.To)
		r.fs[e.To] = cur
		delete(r.fs, e.Path)
	case core.Remove:
		if cur, ok := r.fs[e.Path]; ok && !cur.dir {
			delete(r.fs, e.Path)
		}
	case core.Rmdir:
		if cur, ok := r.fs[e.Path]; ok && cur.dir {
			if r.hasChildren(e.Path) {
				return true, true
			}
			delete(r.fs, e.Path)
		}
	case core.Mkdir:
		if !r.canMkdirAll(e.Path) {
			return false, false
		}
		r.mkdirAll(e.Path)
		r.fs[e.Path] = simEntry{dir: true, mode: e.Op.Mode}
	}
	return false, true
}

// clashesWith reports whether op creates a path of the other type than
// what the folder has there, or needs a directory where a file is.
func (r *replica) clashesWith(op oplog.Op) bool {
	target := op.Path
	if op.Kind == oplog.KindRename {
		target = op.NewPath
	}
	cur, ok := r.fs[target]
	switch op.Kind {
	case oplog.KindMkdir:
		return ok && !cur.dir || !r.canMkdirAll(target)
	case oplog.KindWrite, oplog.KindRename:
		return ok && cur.dir || !r.canMkdirAll(target)
	}
	return false
}

// canMkdirAll reports whether every directory above p is a directory or
// missing: MkdirAll fails on a file in the way.
func (r *replica) canMkdirAll(p string) bool {
	for d := path.Dir(p); d != "."; d = path.Dir(d) {
		if e, ok := r.fs[d]; ok && !e.dir {
			return false
		}
	}
	return true
}

// liveUnder reports whether a live record lies under dir.
func (r *replica) liveUnder(dir string) bool {
	for q, rec := range r.records {
		if !rec.Deleted && strings.HasPrefix(q, dir+"/") {
			return true
		}
	}
	return false
}

// A user's edits. "d3" is both a file and a directory name, so a path
// changes type, locally and concurrently on several replicas.
var (
	simFiles = []string{"a.txt", "b.txt", "report.doc", "d1/x.txt", "d1/y.txt", "d2/z.txt", "d1/sub/w.txt", "d3", "d3/v.txt"}
	simDirs  = []string{"d1", "d2", "d1/sub", "d3"}
)

// removeTree deletes p and everything under it from the folder and
// returns the paths it deleted.
func (r *replica) removeTree(p string) []string {
	gone := []string{p}
	for q := range r.fs {
		if strings.HasPrefix(q, p+"/") {
			delete(r.fs, q)
			gone = append(gone, q)
		}
	}
	delete(r.fs, p)
	return gone
}

func (r *replica) edit(rng *rand.Rand, step int) {
	pick := func(list []string) string { return list[rng.Intn(len(list))] }
	var existing []string
	for p, e := range r.fs {
		if !e.dir {
			existing = append(existing, p)
		}
	}
	sort.Strings(existing)
	var touched []string
	switch k := rng.Intn(10); {
	case k < 5 || len(existing) == 0: // create or modify
		p := pick(simFiles)
		if e, ok := r.fs[p]; ok && e.dir {
			touched = append(touched, r.removeTree(p)...) // a directory replaced by a file
		}
		if !r.canMkdirAll(p) {
			return // a file where p's directory would go
		}
		r.mkdirAll(p)
		r.fs[p] = simEntry{hash: content.Sum([]byte(fmt.Sprintf("%x-%d", r.id[0], step))), mode: 0o644, mtime: int64(step)}
		touched = append(touched, p)
		for d := path.Dir(p); d != "."; d = path.Dir(d) {
			touched = append(touched, d)
		}
	case k < 7:
		p := existing[rng.Intn(len(existing))]
		delete(r.fs, p)
		touched = append(touched, p)
	case k < 9:
		from, to := existing[rng.Intn(len(existing))], pick(simFiles)
		if e, ok := r.fs[to]; from == to || ok && e.dir || !r.canMkdirAll(to) || strings.HasPrefix(to, from+"/") {
			return
		}
		r.mkdirAll(to)
		r.fs[to] = r.fs[from]
		delete(r.fs, from)
		touched = append(touched, from, to)
		for d := path.Dir(to); d != "."; d = path.Dir(d) {
			touched = append(touched, d)
		}
	default: // mkdir or rm -rf
		d := pick(simDirs)
		if !r.canMkdirAll(d) {
			return
		}
		e, ok := r.fs[d]
		if ok && !e.dir {
			delete(r.fs, d) // a file replaced by a directory
			ok = false
		}
		if ok {
			touched = append(touched, r.removeTree(d)...)
		} else {
			r.mkdirAll(d + "/x")
			for q := d; q != "."; q = path.Dir(q) {
				touched = append(touched, q)
			}
		}
		touched = append(touched, d)
	}
	r.observe(touched)
}

type message struct {
	from, to int
	ops      []oplog.Op
}

type sim struct {
	rng  *rand.Rand
	reps []*replica
	up   [][]bool                            // link i<->j up
	sent []map[int]map[certs.DeviceID]uint64 // what i believes j has, per connection
	net  []message
	log  []string
}

func (s *sim) tracef(format string, args ...any) { s.log = append(s.log, fmt.Sprintf(format, args...)) }

// connect resets what i believes j has to j's log, as a Hello does.
func (s *sim) connect(i, j int) {
	s.sent[i][j] = s.reps[j].vector()
	s.sent[j][i] = s.reps[i].vector()
}

// send queues, from i to j, the ops j lacks as far as i knows.
func (s *sim) send(i, j int) {
	var ops []oplog.Op
	for o, list := range s.reps[i].log {
		have := s.sent[i][j][o]
		if uint64(len(list)) > have {
			ops = append(ops, list[have:]...)
			s.sent[i][j][o] = uint64(len(list))
		}
	}
	if len(ops) > 0 {
		s.net = append(s.net, message{i, j, ops})
	}
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

func (s *sim) deliver(k int) {
	m := s.net[k]
	s.net = append(s.net[:k], s.net[k+1:]...)
	if !s.up[m.from][m.to] {
		return
	}
	if s.reps[m.to].insert(m.ops) {
		// A gap (reordered delivery): the connection is reset and the
		// Hello exchange starts over from what is durable.
		s.tracef("gap %d->%d: reset", m.from, m.to)
		s.drop(m.from, m.to)
		s.connect(m.from, m.to)
	}
}

func runSim(seed int64, n, steps int) (*sim, error) {
	s := &sim{rng: rand.New(rand.NewSource(seed))}
	for i := 0; i < n; i++ {
		s.reps = append(s.reps, newReplica(i))
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
		i, j := s.rng.Intn(n), s.rng.Intn(n)
		switch k := s.rng.Intn(100); {
		case k < 40:
			s.reps[i].edit(s.rng, step)
			s.tracef("%d: edit on %d", step, i)
		case k < 60:
			if i != j && s.up[i][j] {
				s.send(i, j)
			}
		case k < 78:
			if len(s.net) > 0 {
				s.deliver(s.rng.Intn(len(s.net))) // any order: reordering
			}
		case k < 88:
			s.reps[i].applyPending()
		case k < 93:
			if i != j && s.up[i][j] {
				s.up[i][j], s.up[j][i] = false, false
				s.drop(i, j)
				s.tracef("%d: cut %d-%d", step, i, j)
			}
		case k < 97:
			if i != j && !s.up[i][j] {
				s.up[i][j], s.up[j][i] = true, true
				s.connect(i, j)
				s.tracef("%d: heal %d-%d", step, i, j)
			}
		default:
			// Crash: everything in flight to or from i is lost; its log,
			// folder and records are durable, and what it had received
			// but not applied is applied after the restart.
			for j := range s.reps {
				if j != i {
					s.drop(i, j)
					if s.up[i][j] {
						s.connect(i, j)
					}
				}
			}
			s.tracef("%d: crash %d", step, i)
		}
	}
	// Heal everything and let it settle.
	for i := range s.reps {
		for j := range s.reps {
			if i != j && !s.up[i][j] {
				s.up[i][j] = true
				s.connect(i, j)
			}
		}
	}
	for round := 0; ; round++ {
		if round > 1000 {
			return s, fmt.Errorf("did not settle")
		}
		for i := range s.reps {
			s.reps[i].applyPending()
			for j := range s.reps {
				if i != j {
					s.send(i, j)
				}
			}
		}
		if len(s.net) == 0 && s.settled() {
			break
		}
		for len(s.net) > 0 {
			s.deliver(s.rng.Intn(len(s.net)))
		}
	}
	return s, s.check()
}

func (s *sim) settled() bool {
	v0 := s.reps[0].vector()
	for _, r := range s.reps {
		v := r.vector()
		if len(v) != len(v0) {
			return false
		}
		for o, n := range v0 {
			if v[o] != n || r.applied[o] != n {
				return false
			}
		}
	}
	return true
}

func describeFS(r *replica) string {
	var parts []string
	for p, e := range r.fs {
		if e.dir {
			parts = append(parts, p+"/")
		} else {
			parts = append(parts, p+"="+e.hash.Short()[:6])
		}
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}

func describeRecords(r *replica) string {
	var parts []string
	for p, f := range r.records {
		s := fmt.Sprintf("%s:%v:%s:%v:%d:%x:%v", p, f.Deleted, f.Hash.Short(), f.Version, f.Lamport, f.Origin[0], f.Heads)
		parts = append(parts, s)
	}
	sort.Strings(parts)
	return strings.Join(parts, "\n")
}

// check: every replica has the same folder and the same records, and
// every accepted write is still somewhere unless a later op made after
// seeing it replaced it.
func (s *sim) check() error {
	want, wantRec := describeFS(s.reps[0]), describeRecords(s.reps[0])
	for i, r := range s.reps[1:] {
		if got := describeFS(r); got != want {
			return fmt.Errorf("folders differ:\nreplica 0: %s\nreplica %d: %s", want, i+1, got)
		}
		if got := describeRecords(r); got != wantRec {
			return fmt.Errorf("records differ:\nreplica 0:\n%s\nreplica %d:\n%s", wantRec, i+1, got)
		}
	}
	present := map[content.Hash]bool{}
	for _, e := range s.reps[0].fs {
		present[e.hash] = true
	}
	var all []oplog.Op
	for _, ops := range s.reps[0].log {
		all = append(all, ops...)
	}
	// A write is safe when its content is in the folder, when an op on its
	// path was made after seeing it (a knowing overwrite or delete), or
	// when a copy of it (a conflict copy, a rename) is safe.
	byHash := map[content.Hash][]oplog.Op{}
	for _, w := range all {
		if w.Kind == oplog.KindWrite || w.Kind == oplog.KindRename {
			byHash[w.Hash] = append(byHash[w.Hash], w)
		}
	}
	memo := map[state.OpID]bool{}
	var safe func(w oplog.Op) bool
	safe = func(w oplog.Op) bool {
		id := state.OpID{Origin: w.Origin, Seq: w.Seq}
		if v, ok := memo[id]; ok {
			return v
		}
		memo[id] = false // cycles through copies prove nothing
		p := w.Path
		if w.Kind == oplog.KindRename {
			p = w.NewPath
		}
		ok := present[w.Hash]
		for _, o := range all {
			if ok {
				break
			}
			ok = o.Path == p && !(o.Origin == w.Origin && o.Seq == w.Seq) && o.Parent.Dominates(w.Version())
		}
		for _, c := range byHash[w.Hash] {
			if ok {
				break
			}
			if c.Origin != w.Origin || c.Seq != w.Seq {
				ok = safe(c)
			}
		}
		memo[id] = ok
		return ok
	}
	for _, w := range all {
		if (w.Kind == oplog.KindWrite || w.Kind == oplog.KindRename) && !safe(w) {
			return fmt.Errorf("accepted write lost: %s (content %s) is nowhere and nothing replaced it knowingly", w, w.Hash.Short())
		}
	}
	return nil
}

// TestSimulation runs the engine's decisions on 2 to 5 replicas over many
// seeded schedules; a failure prints the seed (rerun it with
// -sim.seed=N) and the schedule's events.
func TestSimulation(t *testing.T) {
	seeds := []int64{}
	if *simSeed >= 0 {
		seeds = append(seeds, *simSeed)
	} else {
		for i := 0; i < *simSeeds; i++ {
			seeds = append(seeds, int64(i))
		}
	}
	conflicts, forwarded, clashes := 0, 0, 0
	for _, seed := range seeds {
		n := 2 + int(seed%4)
		s, err := runSim(seed, n, 150)
		if err != nil {
			tail := s.log
			if len(tail) > 40 {
				tail = tail[len(tail)-40:]
			}
			t.Fatalf("seed %d (%d replicas): %v\nlast events:\n%s\nrerun: go test ./node -run TestSimulation -sim.seed=%d", seed, n, err, strings.Join(tail, "\n"), seed)
		}
		for _, r := range s.reps {
			forwarded += r.forwarded
			clashes += r.clashes
		}
		for p := range s.reps[0].fs {
			if strings.Contains(p, ".conflict-") {
				conflicts++
			}
		}
	}
	t.Logf("%d seeds converged; %d conflict copies kept in the final folders; %d edits carried to a rename's target; %d ops met a path of the other type", len(seeds), conflicts, forwarded, clashes)
	if len(seeds) > 100 && (conflicts == 0 || forwarded == 0 || clashes == 0) {
		t.Fatal("no seed produced a conflict, a rename vs edit or a file vs directory clash: the schedule does not exercise concurrent edits")
	}
}
