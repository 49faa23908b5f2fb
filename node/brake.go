package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/drive-node/drive-node/certs"
	"github.com/drive-node/drive-node/content"
	"github.com/drive-node/drive-node/oplog"
	"github.com/drive-node/drive-node/state"
	"github.com/drive-node/drive-node/vclock"
)

// The brake: a run of a peer's ops that would delete or overwrite more of
// this device's files than a threshold within a short time (an rm -rf, a
// program gone wrong, ransomware encrypting a laptop) is held instead of
// applied. The ops stay in the log; the peer's later ops wait behind them,
// other peers' ops go on. `approve` lets the run through; `reject` answers
// it with this device's files as new changes made after seeing the run, so
// every device, the one that made the run included, gets them back, and
// then lets the run through, which then changes nothing.

// BrakeRule is when the brake holds a peer's run of changes: more than
// Files files, or (for a run of at least MinRun files) more than Share of
// the folder's files, deleted or overwritten within Window.
type BrakeRule struct {
	Files  int
	Share  float64
	MinRun int
	Window time.Duration
}

// DefaultBrake holds a run of more than 1,000 files, or of more than 30 %
// of the folder (once at least 100 files), within 5 minutes: a small
// folder's ordinary tidy-up goes through.
var DefaultBrake = BrakeRule{Files: 1000, Share: 0.30, MinRun: 100, Window: 5 * time.Minute}

// String writes r as ParseBrake reads it.
func (r BrakeRule) String() string {
	return fmt.Sprintf("%d,%s%%,%s,min=%d", r.Files, strconv.FormatFloat(r.Share*100, 'g', -1, 64), r.Window, r.MinRun)
}

// ParseBrake reads a brake rule as FILES,PERCENT%,WINDOW ("1000,30%,5m"),
// with an optional fourth field min=N for MinRun; "" is DefaultBrake and
// "off" is no brake (nil).
func ParseBrake(s string) (*BrakeRule, error) {
	switch s {
	case "off":
		return nil, nil
	case "", "on":
		r := DefaultBrake
		return &r, nil
	}
	bad := func(why string) error {
		return fmt.Errorf("brake %q: %s (want FILES,PERCENT%%,WINDOW such as 1000,30%%,5m, or off)", s, why)
	}
	parts := strings.Split(s, ",")
	if len(parts) < 3 || len(parts) > 4 {
		return nil, bad("three or four fields")
	}
	r := DefaultBrake
	var err error
	if r.Files, err = strconv.Atoi(parts[0]); err != nil || r.Files < 1 {
		return nil, bad("FILES must be a positive count")
	}
	pct, ok := strings.CutSuffix(parts[1], "%")
	share, err := strconv.ParseFloat(pct, 64)
	if !ok || err != nil || share <= 0 || share > 100 {
		return nil, bad("PERCENT must lie in (0, 100] and end in %")
	}
	r.Share = share / 100
	if r.Window, err = time.ParseDuration(parts[2]); err != nil || r.Window <= 0 {
		return nil, bad("WINDOW must be a positive duration")
	}
	if len(parts) == 4 {
		v, ok := strings.CutPrefix(parts[3], "min=")
		if r.MinRun, err = strconv.Atoi(v); !ok || err != nil || r.MinRun < 0 {
			return nil, bad("the fourth field is min=N")
		}
	}
	return &r, nil
}

// HeldRun is a run of a peer's changes the brake holds.
type HeldRun struct {
	Origin string    `json:"origin"`
	Name   string    `json:"name,omitempty"`
	Since  time.Time `json:"since"`
	// Files counts the files the run would delete or overwrite, as far
	// as it had arrived when the brake held it; Of is how many files the
	// folder held.
	Files int `json:"files"`
	Of    int `json:"of"`
	// From is the first op held; Counted the last op Files counts.
	From    uint64 `json:"from"`
	Counted uint64 `json:"counted"`
	// Through lists the files the run deleted or overwrote here before
	// the brake held it (within the rule's window): reject brings them
	// back from the version store.
	Through []string `json:"through,omitempty"`
}

// brakeRecord is what the database keeps of the brake (metaBrake, JSON):
// the runs held, and per origin the sequence up to which its ops were
// approved (or answered by a reject).
type brakeRecord struct {
	Held     map[string]HeldRun `json:"held,omitempty"`
	Released map[string]uint64  `json:"released,omitempty"`
}

const metaBrake = "brake"

const reasonHeld = "held by the brake"

// brakeState is the brake's memory between passes: per origin, the
// paths its destructive ops were applied at recently (and when), and the
// runs waiting for their origin's log to stop growing. mu also
// serialises changes of the brake's record.
type brakeState struct {
	mu      sync.Mutex
	recent  map[certs.DeviceID]map[string]int64
	waiting map[certs.DeviceID]growth
}

// growth is how far an origin's log reached when a run of its waited,
// since when it has stood there, and since when the run has waited.
type growth struct {
	head         uint64
	since, first int64
}

// A peer's ops that delete or overwrite several files here are applied
// once its ops in the log have stopped growing for brakeSettle, so that a
// run that arrives in pieces is judged whole, not let through piece by
// piece; a steady stream waits at most brakeSettleMax. A change to one
// file, and creating files, never wait.
const (
	brakeSettle    = time.Second
	brakeSettleMax = 3 * time.Second
)

// settled reports whether origin's log has stood still for brakeSettle
// (or its run has waited brakeSettleMax), noting its head otherwise.
func (b *brakeState) settled(origin certs.DeviceID, head uint64, now int64) bool {
	if b.waiting == nil {
		b.waiting = map[certs.DeviceID]growth{}
	}
	g, ok := b.waiting[origin]
	switch {
	case !ok:
		b.waiting[origin] = growth{head: head, since: now, first: now}
		return false
	case g.head != head:
		g.head, g.since = head, now
		b.waiting[origin] = g
		return now-g.first >= int64(brakeSettleMax)
	}
	return now-g.since >= int64(brakeSettle) || now-g.first >= int64(brakeSettleMax)
}

func (n *Node) readBrake(ctx context.Context) (brakeRecord, error) { return loadBrake(ctx, n.db) }

// loadBrake reads the brake's record from a database: the node's, or the
// one status opens read-only.
func loadBrake(ctx context.Context, db interface {
	Meta(ctx context.Context, key string) (string, bool, error)
}) (brakeRecord, error) {
	var r brakeRecord
	raw, ok, err := db.Meta(ctx, metaBrake)
	if err != nil || !ok {
		return r, err
	}
	if err := json.Unmarshal([]byte(raw), &r); err != nil {
		return r, fmt.Errorf("brake record: %w", err)
	}
	return r, nil
}

// runs returns the held runs in the order of their origins.
func (r brakeRecord) runs() []HeldRun {
	return slices.SortedFunc(maps.Values(r.Held), func(a, b HeldRun) int { return strings.Compare(a.Origin, b.Origin) })
}

func (n *Node) writeBrake(ctx context.Context, r brakeRecord) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return n.db.SetMetaSynced(ctx, metaBrake, string(b))
}

// holdBraked blocks, for this pass, the origins whose runs the brake
// holds, and counts again the files a held run would change when more of
// it has arrived.
func (n *Node) holdBraked(ctx context.Context, applied map[certs.DeviceID]uint64, blocked *blocks) error {
	n.brakes.mu.Lock()
	defer n.brakes.mu.Unlock()
	r, err := n.readBrake(ctx)
	if err != nil {
		return err
	}
	changed := false
	for key, h := range r.Held {
		id, err := certs.ParseDeviceID(key)
		if err != nil {
			continue
		}
		// Not blocks.block: lookAhead must not read on in a held origin's
		// log for ops that replace the held one.
		blocked.why[id], blocked.seq[id] = reasonHeld, applied[id]+1
		if top := n.ops.Highest(id); top > h.Counted {
			run := map[string]bool{}
			for p := range n.brakes.recent[id] {
				run[p] = true // went through before the hold, within the window
			}
			if _, err := n.runGoesOver(ctx, id, applied[id]+1, run, func(int) (bool, error) { return false, nil }); err != nil {
				return err
			}
			h.Files, h.Counted, changed = len(run), top, true
			r.Held[key] = h
		}
	}
	if changed {
		return n.writeBrake(ctx, r)
	}
	return nil
}

// destroys reports whether op would delete or overwrite a file this device
// holds, and where: an op made after seeing the file's version (one made
// concurrently only makes a conflict copy).
func (n *Node) destroys(ctx context.Context, op oplog.Op) (string, bool, error) {
	at := op.Path
	switch op.Kind {
	case oplog.KindDelete, oplog.KindWrite:
	case oplog.KindRename:
		at = op.NewPath
	default:
		return "", false, nil
	}
	if n.ignored(at, false) {
		return "", false, nil // not carried out here
	}
	f, ok, err := n.db.File(ctx, at)
	if err != nil || !ok || f.Deleted || f.Dir {
		return "", false, err
	}
	if op.Kind == oplog.KindWrite && f.Hash == op.Hash || !op.Parent.Dominates(f.Version) {
		return "", false, nil
	}
	return at, true, nil
}

// brake counts, per origin, the files the window's ops would delete or
// overwrite here, with those it did within the rule's window, and holds
// an origin whose count goes over the rule. A count that could still go
// over is completed from the origin's ops beyond the window, and while
// its ops still arrive the origin waits (brakeSettle). It returns the
// window less the held and waiting origins' ops, and what to call once the
// window is applied (it notes the destructive ops that went through).
func (n *Node) brake(ctx context.Context, ops []oplog.Op, applied map[certs.DeviceID]uint64, blocked *blocks) ([]oplog.Op, func(), error) {
	rule := n.cfg.brake
	if rule == nil || n.cfg.Role == SendOnly { // a send-only device carries nothing out
		return ops, func() {}, nil
	}
	n.brakes.mu.Lock()
	defer n.brakes.mu.Unlock()
	rec, err := n.readBrake(ctx)
	if err != nil {
		return nil, nil, err
	}
	paths := map[certs.DeviceID]map[string]bool{}
	last := map[certs.DeviceID]uint64{}
	for _, op := range ops {
		last[op.Origin] = max(last[op.Origin], op.Seq)
		if op.Origin == n.id.ID || op.Seq <= applied[op.Origin] || op.Seq <= rec.Released[op.Origin.String()] {
			continue
		}
		at, d, err := n.destroys(ctx, op)
		if err != nil {
			return nil, nil, err
		}
		if d {
			if paths[op.Origin] == nil {
				paths[op.Origin] = map[string]bool{}
			}
			paths[op.Origin][at] = true
		}
	}
	now := n.clock.Now()
	cutoff := now.Add(-rule.Window).UnixNano()
	if n.brakes.recent == nil {
		n.brakes.recent = map[certs.DeviceID]map[string]int64{}
	}
	for _, m := range n.brakes.recent {
		maps.DeleteFunc(m, func(_ string, t int64) bool { return t < cutoff })
	}
	files := -1
	folderFiles := func() (int, error) {
		if files < 0 {
			st, err := n.db.Stats(ctx)
			if err != nil {
				return 0, err
			}
			files = st.Files
		}
		return files, nil
	}
	// over reports whether count destructive files break the rule.
	over := func(count int) (bool, error) {
		if count > rule.Files {
			return true, nil
		}
		if count < rule.MinRun || count == 0 {
			return false, nil
		}
		f, err := folderFiles()
		return float64(count) > rule.Share*float64(f), err
	}
	var held, waiting []certs.DeviceID
	for _, o := range slices.SortedFunc(maps.Keys(paths), compareIDs) {
		run := maps.Clone(paths[o])
		for p := range n.brakes.recent[o] {
			run[p] = true
		}
		trips, err := over(len(run))
		if err != nil {
			return nil, nil, err
		}
		if !trips && len(run) >= rule.MinRun {
			// Could the rest of the run, already logged, take it over?
			if trips, err = n.runGoesOver(ctx, o, last[o]+1, run, over); err != nil {
				return nil, nil, err
			}
		}
		if !trips && len(paths[o]) > 1 && !n.brakes.settled(o, n.ops.Highest(o), now.UnixNano()) {
			waiting = append(waiting, o) // more of the run may be on its way
			continue
		}
		delete(n.brakes.waiting, o)
		if !trips {
			continue
		}
		if rec.Held == nil {
			rec.Held = map[string]HeldRun{}
		}
		name := ""
		if p, ok, err := n.db.Peer(ctx, o); err == nil && ok {
			name = p.Name
		}
		of, _ := folderFiles()
		rec.Held[o.String()] = HeldRun{Origin: o.String(), Name: name, Since: now.UTC(), Files: len(run), Of: of, From: applied[o] + 1,
			Through: slices.Sorted(maps.Keys(n.brakes.recent[o]))}
		n.log.Warn("a peer's run of changes would delete or overwrite many files here: held until `drive-node approve` or `drive-node reject`",
			"peer", o.Short(), "name", name, "files", len(run), "of", of, "within", rule.Window)
		held = append(held, o)
		n.events.publish(EventHeld, EventFields{Device: o.String(), Files: len(run)})
		blocked.why[o], blocked.seq[o] = reasonHeld, applied[o]+1
	}
	if len(held) > 0 {
		if err := n.writeBrake(ctx, rec); err != nil {
			return nil, nil, err
		}
	}
	for _, o := range waiting {
		blocked.why[o], blocked.seq[o] = reasonApplying, applied[o]+1
	}
	if len(waiting) > 0 {
		go func() {
			t := n.clock.NewTimer(brakeSettle)
			defer t.Stop()
			select {
			case <-t.C():
				n.kickApply()
			case <-ctx.Done():
			}
		}()
	}
	if len(held)+len(waiting) > 0 {
		ops = slices.DeleteFunc(slices.Clone(ops), func(op oplog.Op) bool {
			return slices.Contains(held, op.Origin) || slices.Contains(waiting, op.Origin)
		})
	}
	note := func() {
		n.brakes.mu.Lock()
		defer n.brakes.mu.Unlock()
		t := n.clock.Now().UnixNano()
		for o, ps := range paths {
			if slices.Contains(held, o) || slices.Contains(waiting, o) {
				continue
			}
			if n.brakes.recent[o] == nil {
				n.brakes.recent[o] = map[string]int64{}
			}
			for p := range ps {
				n.brakes.recent[o][p] = t
			}
		}
	}
	return ops, note, nil
}

// runGoesOver reads origin's logged ops from seq on, adding the paths
// they would delete or overwrite to run, and reports whether run goes
// over the rule. It stops as soon as it does.
func (n *Node) runGoesOver(ctx context.Context, origin certs.DeviceID, from uint64, run map[string]bool, over func(int) (bool, error)) (bool, error) {
	trips := false
	var overErr error
	err := n.ops.Iterate(ctx, origin, from, func(op oplog.Op) error {
		at, d, err := n.destroys(ctx, op)
		if err != nil {
			return err
		}
		if d && !run[at] {
			run[at] = true
			if trips, overErr = over(len(run)); overErr != nil || trips {
				return errStop
			}
		}
		return nil
	})
	if errors.Is(err, errStop) {
		err = overErr
	}
	return trips, err
}

// Held returns the runs of changes the brake holds.
func (n *Node) Held(ctx context.Context) ([]HeldRun, error) {
	r, err := n.readBrake(ctx)
	if err != nil {
		return nil, err
	}
	return r.runs(), nil
}

// ErrNothingHeld is returned by Approve and Reject when the brake holds
// nothing.
var ErrNothingHeld = errors.New("the brake holds no changes")

// Approve lets every held run through: its ops are applied, and those of
// its origins that arrived up to now are not counted again.
func (n *Node) Approve(ctx context.Context) ([]HeldRun, error) {
	n.commitMu.Lock()
	defer n.commitMu.Unlock()
	runs, err := n.release(ctx, nil)
	if err != nil {
		return nil, err
	}
	n.log.Info("held changes approved", "runs", len(runs))
	n.kickApply()
	return runs, nil
}

// release forgets the held runs and approves their origins' ops up to
// upto (or, for an origin it lacks, up to the last logged). The caller
// holds the commit lock.
func (n *Node) release(ctx context.Context, upto map[certs.DeviceID]uint64) ([]HeldRun, error) {
	n.brakes.mu.Lock()
	defer n.brakes.mu.Unlock()
	r, err := n.readBrake(ctx)
	if err != nil {
		return nil, err
	}
	if len(r.Held) == 0 {
		return nil, ErrNothingHeld
	}
	runs := r.runs()
	if r.Released == nil {
		r.Released = map[string]uint64{}
	}
	for key := range r.Held {
		id, err := certs.ParseDeviceID(key)
		if err != nil {
			continue
		}
		seq, ok := upto[id]
		if !ok {
			seq = n.ops.Highest(id)
		}
		r.Released[key] = max(r.Released[key], seq)
		delete(n.brakes.recent, id)
	}
	r.Held = nil
	return runs, n.writeBrake(ctx, r)
}

// Reject answers every held run with this device's files: for each path
// the run touches, this device's version (its file, its directory, or
// nothing where the run made something) becomes a new change made after
// seeing the run's ops there, so every device takes it; the run is then
// let through and changes nothing that the answer covers. It returns the
// runs and how many paths were answered.
func (n *Node) Reject(ctx context.Context) ([]HeldRun, int, error) {
	if n.cfg.Role == ReceiveOnly {
		return nil, 0, fmt.Errorf("reject: %w: approve the held changes, or keep them held", ErrReceiveOnly)
	}
	n.commitMu.Lock()
	defer n.commitMu.Unlock()
	r, err := n.readBrake(ctx)
	if err != nil {
		return nil, 0, err
	}
	if len(r.Held) == 0 {
		return nil, 0, ErrNothingHeld
	}
	applied, err := n.db.Applied(ctx)
	if err != nil {
		return nil, 0, err
	}
	// Per path the run touches, the versions its ops made there, and
	// whether one of them made something there.
	seen := map[string]vclock.Vector{}
	madeDir := map[string]bool{}
	var order []string
	// What is answered is what is logged now; what arrives later is
	// judged anew.
	upto := map[certs.DeviceID]uint64{}
	for key := range r.Held {
		id, err := certs.ParseDeviceID(key)
		if err != nil {
			continue
		}
		upto[id] = n.ops.Highest(id)
		err = n.ops.Iterate(ctx, id, applied[id]+1, func(op oplog.Op) error {
			if op.Seq > upto[id] {
				return errStop
			}
			noteSeen(op, seen, madeDir, &order)
			return nil
		})
		if err != nil && !errors.Is(err, errStop) {
			return nil, 0, fmt.Errorf("reject: read the held changes: %w", err)
		}
	}
	answered, err := n.answerLocked(ctx, seen, madeDir, order)
	if err != nil {
		return nil, 0, fmt.Errorf("reject: %w", err)
	}
	runs, err := n.release(ctx, upto)
	if err != nil {
		return nil, 0, err
	}
	back, err := n.bringBack(ctx, r.Held)
	if err != nil {
		return runs, answered, err
	}
	answered += back
	n.log.Info("held changes rejected: this device's files are sent as new changes", "runs", len(runs), "paths", answered)
	n.kickApply()
	return runs, answered, nil
}

// bringBack restores, from the version store, the files that held runs
// deleted or overwrote here before the brake held them, and returns how
// many it restored. The caller holds the commit lock.
func (n *Node) bringBack(ctx context.Context, held map[string]HeldRun) (int, error) {
	want := map[string]content.Hash{}
	for _, h := range held {
		origin, err := certs.ParseDeviceID(h.Origin)
		if err != nil {
			continue
		}
		for _, p := range h.Through {
			vs, err := n.db.Versions(ctx, p, false)
			if err != nil {
				return 0, err
			}
			for i := len(vs) - 1; i >= 0; i-- {
				if vs[i].By.Origin == origin {
					want[p] = vs[i].Hash
					break
				}
			}
		}
	}
	if len(want) == 0 {
		return 0, nil
	}
	n.commitMu.Unlock() // Restore takes it
	defer n.commitMu.Lock()
	res, err := n.restoreTo(ctx, want)
	back := 0
	for _, r := range res {
		if r.Outcome == Restored {
			back++
		} else if r.Outcome == Unavailable {
			n.log.Warn("reject: a file the run removed before it was held could not be brought back", "path", r.Path, "why", r.Why)
		}
	}
	return back, err
}

// noteSeen notes the paths op touches in order (first time seen), the
// versions op made there in seen, and in madeDir the directory it made.
func noteSeen(op oplog.Op, seen map[string]vclock.Vector, madeDir map[string]bool, order *[]string) {
	for _, p := range []string{op.Path, op.NewPath} {
		if p == "" {
			continue
		}
		if _, ok := seen[p]; !ok {
			*order = append(*order, p)
		}
		seen[p] = seen[p].Merge(op.Version())
	}
	if op.Kind == oplog.KindMkdir {
		madeDir[op.Path] = true
	}
}

// answerLocked makes this device's version of each path in order (its
// file, its directory, or nothing; a directory madeDir says others made
// is removed) a new change made after seeing the versions seen holds
// there, so every device takes it, and returns how many paths it
// answered. The caller holds the commit lock.
func (n *Node) answerLocked(ctx context.Context, seen map[string]vclock.Vector, madeDir map[string]bool, order []string) (int, error) {
	var answer []oplog.Op
	for _, p := range order {
		if checkPath(p) != nil {
			continue
		}
		f, ok, err := n.db.File(ctx, p)
		if err != nil {
			return 0, err
		}
		if n.ignored(p, madeDir[p] || ok && !f.Deleted && f.Dir) {
			continue // not this device's to answer
		}
		parent := seen[p]
		if ok {
			parent = parent.Merge(f.Version)
		}
		switch {
		case ok && !f.Deleted && f.Dir:
			answer = append(answer, oplog.Op{Kind: oplog.KindMkdir, Path: p, Mode: f.Mode, Parent: parent})
		case ok && !f.Deleted:
			answer = append(answer, oplog.Op{Kind: oplog.KindWrite, Path: p, Hash: f.Hash, Size: f.Size, Mode: f.Mode, MTime: f.MTime, Parent: parent})
		case madeDir[p]:
			answer = append(answer, oplog.Op{Kind: oplog.KindRmdir, Path: p, Parent: parent})
		default:
			answer = append(answer, oplog.Op{Kind: oplog.KindDelete, Path: p, Parent: parent})
		}
	}
	// Directories before what goes in them; what a run made is removed
	// deepest first, after the files.
	slices.SortStableFunc(answer, func(a, b oplog.Op) int {
		rank := func(op oplog.Op) int {
			if op.Kind == oplog.KindMkdir {
				return 0
			}
			if op.Kind == oplog.KindDelete || op.Kind == oplog.KindRmdir {
				return 2
			}
			return 1
		}
		if ra, rb := rank(a), rank(b); ra != rb {
			return ra - rb
		}
		if rank(a) == 2 {
			return strings.Compare(b.Path, a.Path)
		}
		return strings.Compare(a.Path, b.Path)
	})
	// The files on disk are the ones recorded: their records keep their
	// look.
	keepLook := func(r *state.File) {
		if cur, ok, _ := n.db.File(ctx, r.Path); ok && !cur.Deleted {
			r.Inode, r.MTime = cur.Inode, cur.MTime
		}
	}
	if err := n.commitLocalLocked(ctx, answer, nil, keepLook); err != nil {
		return 0, err
	}
	return len(answer), nil
}
