package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/drive-node/drive-node/certs"
	"github.com/drive-node/drive-node/content"
	"github.com/drive-node/drive-node/oplog"
	"github.com/drive-node/drive-node/state"
	"github.com/drive-node/drive-node/vclock"
)

// A restore brings paths back to an earlier version as a new local
// change: the folder is written (what it replaces goes to the version
// store first), the change is recorded as this device's ops, and every
// device applies it like any other edit, so a restore is undone the same
// way. The earlier tree is the op log's ops replayed up to the time asked,
// in the order this device recorded them.

// RestoreRequest says what to bring back.
type RestoreRequest struct {
	// Paths are slash-separated and relative to the folder; "." (or "")
	// is the whole folder. A directory is restored with everything in it.
	Paths []string `json:"paths"`
	// At restores the paths as this device had them at that time.
	At time.Time `json:"at,omitzero"`
	// Version, instead of At, restores each path (a file) to the content
	// whose hash starts with these hex digits (at least 8), as History
	// lists it.
	Version string `json:"version,omitempty"`
}

// RestoreResult is what a restore did at one path.
type RestoreResult struct {
	Path string `json:"path"`
	// Outcome is "restored", "removed" (it did not exist then),
	// "unchanged" (already as it was) or "unavailable".
	Outcome string `json:"outcome"`
	Hash    string `json:"hash,omitempty"`
	Why     string `json:"why,omitempty"`
}

// Restore outcomes.
const (
	Restored    = "restored"
	Removed     = "removed"
	Unchanged   = "unchanged"
	Unavailable = "unavailable"
)

// treeEntry is what a path held at some time.
type treeEntry struct {
	dir   bool
	hash  content.Hash
	size  int64
	mode  uint32
	mtime int64
}

// replayed is a path's state as replay has it: what is there (live) and
// the version and op that put it there.
type replayed struct {
	treeEntry
	live    bool
	version vclock.Vector
	lamport uint64
	origin  certs.DeviceID
}

// replay returns the tree the ops make, taken in order, deciding as the
// engine does: an op made before what a path holds (a device's run
// answered by a reject, an op that arrived late) changes nothing, and of
// concurrent ones an edit beats a removal and otherwise the higher
// (Lamport clock, device) wins.
func replay(ops []timedOp) map[string]treeEntry {
	st := replayState(ops)
	t := make(map[string]treeEntry, len(st))
	for p, r := range st {
		if r.live {
			t[p] = r.treeEntry
		}
	}
	return t
}

// replayState is replay's state of every path the ops touch, deleted ones
// too, with the version each path reached.
func replayState(ops []timedOp) map[string]replayed {
	st := map[string]replayed{}
	set := func(p string, op timedOp, e treeEntry, live bool) {
		cur, seen := st[p]
		v := op.Version()
		if seen {
			switch cur.version.Compare(v) {
			case vclock.Equal, vclock.After:
				return // made before what is there
			case vclock.Concurrent:
				wins := live && !cur.live ||
					live == cur.live && (op.Lamport > cur.lamport || op.Lamport == cur.lamport && compareIDs(op.Origin, cur.origin) > 0)
				if !wins {
					cur.version = cur.version.Merge(v)
					st[p] = cur
					return
				}
			}
		}
		st[p] = replayed{treeEntry: e, live: live, version: cur.version.Merge(v), lamport: op.Lamport, origin: op.Origin}
	}
	for _, op := range ops {
		switch op.Kind {
		case oplog.KindWrite:
			set(op.Path, op, treeEntry{hash: op.Hash, size: op.Size, mode: op.Mode, mtime: op.MTime}, true)
		case oplog.KindMkdir:
			set(op.Path, op, treeEntry{dir: true, mode: op.Mode}, true)
		case oplog.KindDelete, oplog.KindRmdir:
			set(op.Path, op, treeEntry{}, false)
		case oplog.KindRename:
			src := st[op.Path]
			e := treeEntry{hash: op.Hash, size: op.Size, mode: op.Mode, mtime: op.MTime}
			if op.Hash.IsZero() && src.live {
				e = src.treeEntry
			}
			set(op.Path, op, treeEntry{}, false)
			set(op.NewPath, op, e, true)
		}
	}
	return st
}

// foldedAt returns the paths whose state at the time at, which the ops
// before (those recorded up to at) replay to, cannot be told: an op after
// it on the path (in after) was made on a version holding an op of some
// device that this device recorded by then and may have folded since, so
// the replay may lack the path's last change before at. Each op after at
// counts, not only the first: one that arrived late can be concurrent with
// what was folded. The versions of the ops after at are merged in as they
// come, so a parent that only holds them flags nothing.
func (n *Node) foldedAt(times recordTimes, before, after []timedOp, at int64) map[string]bool {
	// lost reports whether an op of device d after sequence lo, recorded
	// here by at, may have been folded: ops of a device are recorded in
	// sequence order, so lo+1 is the first of them to be.
	lost := func(d certs.DeviceID, lo uint64) bool {
		return lo < n.ops.Folded(d) && times.at(d, lo+1) <= at
	}
	had := map[string]vclock.Vector{}
	for p, r := range replayState(before) {
		had[p] = r.version
	}
	unknown := map[string]bool{}
	for _, op := range after {
		for _, p := range []string{op.Path, op.NewPath} {
			if p == "" || unknown[p] {
				continue
			}
			h := had[p]
			for _, e := range op.Parent {
				if e.Counter > h.Get(e.Device) && lost(e.Device, h.Get(e.Device)) {
					unknown[p] = true
					break
				}
			}
			// A rename's parent is its source's version: of its target's
			// own history it says nothing, so any device's op that may be
			// lost counts.
			if op.Kind == oplog.KindRename && p == op.NewPath {
				for d := range times.runs {
					if lost(d, h.Get(d)) {
						unknown[p] = true
						break
					}
				}
			}
			had[p] = h.Merge(op.Version())
		}
	}
	return unknown
}

// under reports whether p is dir or inside it ("" holds everything).
func under(p, dir string) bool {
	return dir == "" || p == dir || strings.HasPrefix(p, dir+"/")
}

// restoreStep is one change a restore makes.
type restoreStep struct {
	path   string
	want   treeEntry
	remove bool
	// was is the path's record when the restore was planned (nil: none
	// or a tombstone).
	was *state.File
}

// sameRecord reports whether the record (cur, ok) is still was.
func sameRecord(cur state.File, ok bool, was *state.File) bool {
	if !ok || cur.Deleted {
		return was == nil
	}
	return was != nil && cur.Version.Compare(was.Version) == vclock.Equal && cur.Hash == was.Hash && cur.Dir == was.Dir
}

// Restore brings req.Paths back as req says and returns what it did at
// each path that differed, and at each that was already as it was. It
// fetches contents from the folder, the version store or a connected
// peer, then writes them under the commit lock and records them as local
// changes.
func (n *Node) Restore(ctx context.Context, req RestoreRequest) ([]RestoreResult, error) {
	if n.paused.Load() {
		return nil, errors.New("restore: sync is paused (see status); nothing was changed")
	}
	if len(req.Paths) == 0 {
		return nil, errors.New("restore: no path given (use . for the whole folder)")
	}
	dirs := make([]string, len(req.Paths))
	for i, p := range req.Paths {
		p = strings.Trim(p, "/")
		if p == "." {
			p = ""
		}
		if p != "" {
			if err := checkPath(p); err != nil {
				return nil, fmt.Errorf("restore: %w", err)
			}
		}
		dirs[i] = p
	}
	want, unknown, err := n.restoreTarget(ctx, dirs, req)
	if err != nil {
		return nil, err
	}
	return n.restoreTree(ctx, req, dirs, want, unknown)
}

// restoreTo restores each path of want to its content (from the version
// store, the folder or a peer), as Restore does.
func (n *Node) restoreTo(ctx context.Context, want map[string]content.Hash) ([]RestoreResult, error) {
	req := RestoreRequest{Version: "(kept before a held run)"}
	tree := map[string]treeEntry{}
	for p, h := range want {
		req.Paths = append(req.Paths, p)
		e := treeEntry{hash: h, mode: 0o644}
		if vs, err := n.db.VersionsByHash(ctx, h); err == nil && len(vs) > 0 {
			e.size, e.mode, e.mtime = vs[0].Size, vs[0].Mode, vs[0].MTime
		}
		tree[p] = e
	}
	slices.Sort(req.Paths)
	return n.restoreTree(ctx, req, req.Paths, tree, nil)
}

// restoreTree brings the paths dirs to the tree want. Paths in unknown,
// whose state then the log can no longer tell, are left as they are.
func (n *Node) restoreTree(ctx context.Context, req RestoreRequest, dirs []string, want map[string]treeEntry, unknown map[string]bool) ([]RestoreResult, error) {
	now, err := n.liveUnder(ctx, dirs)
	if err != nil {
		return nil, err
	}
	var steps []restoreStep
	var results []RestoreResult
	untold := func(p string) bool {
		if unknown[p] {
			results = append(results, RestoreResult{Path: p, Outcome: Unavailable,
				Why: "what it held then is no longer in the op log (folded); left as it is"})
		}
		return unknown[p]
	}
	for _, p := range slices.Sorted(maps.Keys(want)) {
		if untold(p) {
			continue
		}
		w, cur := want[p], now[p]
		if cur != nil && cur.Dir == w.dir && (w.dir || cur.Hash == w.hash) {
			results = append(results, RestoreResult{Path: p, Outcome: Unchanged, Hash: hashText(w.hash)})
			continue
		}
		steps = append(steps, restoreStep{path: p, want: w, was: cur})
	}
	if req.Version == "" {
		for _, p := range slices.Sorted(maps.Keys(now)) {
			if _, ok := want[p]; !ok && !untold(p) {
				steps = append(steps, restoreStep{path: p, remove: true, was: now[p]})
			}
		}
	}
	return n.carryOutRestore(ctx, req, steps, results)
}

// carryOutRestore fetches what steps need, carries them out, and returns
// what they did with results (paths already as asked), in path order,
// noting the restore for status.
func (n *Node) carryOutRestore(ctx context.Context, req RestoreRequest, steps []restoreStep, results []RestoreResult) ([]RestoreResult, error) {
	temps, missing := n.restoreContents(ctx, steps)
	defer func() {
		for _, name := range temps {
			n.folderRoot().Remove(name)
		}
	}()
	// Once files are being replaced the restore runs to its end, so
	// what it kept is recorded with what it wrote.
	done, err := n.applyRestore(context.WithoutCancel(ctx), steps, temps, missing)
	results = append(results, done...)
	slices.SortFunc(results, func(a, b RestoreResult) int { return strings.Compare(a.Path, b.Path) })
	n.noteRestore(ctx, req, results)
	return results, err
}

// metaRestores holds the most recent restores (RestoreSummary, JSON),
// newest first; keptRestores is how many.
const (
	metaRestores = "restores"
	keptRestores = 10
)

// noteRestore adds a restore to those status lists.
func (n *Node) noteRestore(ctx context.Context, req RestoreRequest, results []RestoreResult) {
	s := RestoreSummary{At: n.clock.Now().UTC(), Paths: req.Paths, To: req.Version}
	if s.To == "" {
		s.To = req.At.UTC().Format(time.RFC3339)
	}
	for _, r := range results {
		switch r.Outcome {
		case Restored:
			s.Restored++
		case Removed:
			s.Removed++
		case Unchanged:
			s.Unchanged++
		case Unavailable:
			s.Unavailable++
		}
	}
	var list []RestoreSummary
	if raw, ok, _ := n.db.Meta(ctx, metaRestores); ok {
		json.Unmarshal([]byte(raw), &list)
	}
	list = append([]RestoreSummary{s}, list...)
	list = list[:min(len(list), keptRestores)]
	if b, err := json.Marshal(list); err == nil {
		if err := n.db.SetMeta(ctx, metaRestores, string(b)); err != nil {
			n.log.Warn("noting the restore for status failed", "err", err)
		}
	}
}

func hashText(h content.Hash) string {
	if h.IsZero() {
		return ""
	}
	return h.String()
}

// restoreTarget is what the paths held at req.At, or the version asked,
// and (for req.At) the paths whose state then the log cannot tell.
func (n *Node) restoreTarget(ctx context.Context, dirs []string, req RestoreRequest) (map[string]treeEntry, map[string]bool, error) {
	want := map[string]treeEntry{}
	if req.Version != "" {
		v := strings.ToLower(req.Version)
		if len(v) < 8 {
			return nil, nil, fmt.Errorf("restore: version %q: give at least 8 hex digits of the hash history shows", req.Version)
		}
		for _, p := range dirs {
			hist, err := n.History(ctx, p)
			if err != nil {
				return nil, nil, err
			}
			var found []HistoryEntry
			for _, e := range hist {
				if e.Hash != "" && strings.HasPrefix(e.Hash, v) && !slices.ContainsFunc(found, func(f HistoryEntry) bool { return f.Hash == e.Hash }) {
					found = append(found, e)
				}
			}
			switch len(found) {
			case 0:
				return nil, nil, fmt.Errorf("restore: %s has no version %s (see drive-node history %s)", p, req.Version, p)
			case 1:
				op := found[0].op
				want[p] = treeEntry{hash: op.Hash, size: op.Size, mode: op.Mode, mtime: op.MTime}
			default:
				return nil, nil, fmt.Errorf("restore: %s: %s names %d versions; give more digits", p, req.Version, len(found))
			}
		}
		return want, nil, nil
	}
	if req.At.IsZero() {
		return nil, nil, errors.New("restore: say when to restore to (--at) or which version (--version)")
	}
	at := req.At.UnixNano()
	times, err := n.recordTimes(ctx)
	if err != nil {
		return nil, nil, err
	}
	ops, err := n.restoreOps(ctx, times, dirs)
	if err != nil {
		return nil, nil, err
	}
	// Ordered by time: those up to at come first.
	split := len(ops)
	for i, op := range ops {
		if op.at > at {
			split = i
			break
		}
	}
	before, after := ops[:split], ops[split:]
	for p, e := range replay(before) {
		for _, d := range dirs {
			if under(p, d) {
				want[p] = e
				break
			}
		}
	}
	return want, n.foldedAt(times, before, after, at), nil
}

// liveUnder returns the live records at and under dirs.
func (n *Node) liveUnder(ctx context.Context, dirs []string) (map[string]*state.File, error) {
	now := map[string]*state.File{}
	for _, d := range dirs {
		if d != "" {
			f, ok, err := n.db.File(ctx, d)
			if err != nil {
				return nil, err
			}
			if ok && !f.Deleted {
				now[d] = &f
			}
			if ok && !f.Dir {
				continue
			}
		}
		err := n.db.FilesUnder(ctx, d, func(f state.File) error {
			now[f.Path] = &f
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return now, nil
}

// restoreTemp is where a restore keeps content h until it is placed.
func restoreTemp(h content.Hash) string { return TempPrefix + "r-" + h.String()[:32] }

// restoreContents makes each content the steps need a verified temp file
// in the folder: copied from a recorded file or the version store, or
// fetched from the connected peers (small ones in batches, several at
// once). missing says why a content could not be had.
func (n *Node) restoreContents(ctx context.Context, steps []restoreStep) (map[content.Hash]string, map[content.Hash]error) {
	temps, missing := map[content.Hash]string{}, map[content.Hash]error{}
	var wants []want
	asked := map[content.Hash]bool{}
	for _, s := range steps {
		h := s.want.hash
		if s.remove || s.want.dir || temps[h] != "" || missing[h] != nil || asked[h] {
			continue
		}
		name := restoreTemp(h)
		switch {
		case h == content.EmptyHash:
			if err := n.folderRoot().WriteFile(name, nil, 0o600); err != nil {
				missing[h] = err
				continue
			}
		case n.copyFromRecorded(ctx, h, name):
		case copyInRoot(ctx, n.folderRoot(), versionPath(h), name, h) == nil: // from the version store
		default:
			n.folderRoot().Remove(name)
			wants, asked[h] = append(wants, want{h: h, size: s.want.size}), true
			continue
		}
		temps[h] = name
	}
	if len(wants) == 0 {
		return temps, missing
	}
	fetched := newStagedSet()
	n.fetchAll(ctx, wants, fetched)
	if fetched.flush {
		// Small fetched files are flushed together, not one by one.
		if err := n.folderRoot().SyncFS(); err != nil {
			for h := range fetched.temp {
				missing[h] = fmt.Errorf("flush the fetched content: %w", err)
			}
			return temps, missing
		}
	}
	for _, w := range wants {
		if name, ok := fetched.temp[w.h]; ok {
			// Under the restore's own name: the apply loop stages and
			// removes contents under the shared one.
			if err := n.folderRoot().Rename(name, restoreTemp(w.h)); err != nil {
				missing[w.h] = fmt.Errorf("fetched, then: %w", err)
				continue
			}
			temps[w.h] = restoreTemp(w.h)
			continue
		}
		err := fetched.failed[w.h]
		if err == nil {
			err = ErrContentUnavailable
		}
		missing[w.h] = fmt.Errorf("not here, not in this device's version store, and no connected peer has it: %w", err)
	}
	return temps, missing
}

// applyRestore carries out the steps under the commit lock and records
// what changed as local changes.
func (n *Node) applyRestore(ctx context.Context, steps []restoreStep, temps map[content.Hash]string, missing map[content.Hash]error) ([]RestoreResult, error) {
	n.commitMu.Lock()
	defer n.commitMu.Unlock()
	staged := newStagedSet()
	staged.by = state.OpID{Origin: n.id.ID}
	for h, name := range temps {
		staged.temp[h] = name
	}
	self := oplog.Op{Origin: n.id.ID}
	var results []RestoreResult
	var changed []string
	// Removals first, deepest first, so a directory is empty when its
	// turn comes and a file can take a removed directory's place; then
	// directories and files, shallowest first.
	slices.SortStableFunc(steps, func(a, b restoreStep) int {
		switch {
		case a.remove != b.remove:
			if a.remove {
				return -1
			}
			return 1
		case a.remove:
			return strings.Compare(b.path, a.path)
		}
		return strings.Compare(a.path, b.path)
	})
	for _, s := range steps {
		r := RestoreResult{Path: s.path, Outcome: Restored, Hash: hashText(s.want.hash)}
		var err error
		if cur, ok, rerr := n.db.File(ctx, s.path); rerr != nil || !sameRecord(cur, ok, s.was) {
			// Changed since the restore was planned (a peer's change
			// applied, a local one recorded): not undone unseen.
			r.Outcome, r.Why = Unavailable, "changed while the restore was prepared; run it again"
			results = append(results, r)
			continue
		}
		if n.ignored(s.path, s.want.dir) {
			r.Outcome, r.Why = Unavailable, "ignored on this device (see drive-node ignore --check)"
			results = append(results, r)
			continue
		}
		if !s.remove {
			if perr := n.placeable(ctx, oplog.Op{Kind: oplog.KindWrite, Path: s.path}, nil); perr != nil {
				r.Outcome, r.Why = Unavailable, perr.Error()
				results = append(results, r)
				continue
			}
		}
		switch {
		case s.remove:
			r.Outcome = Removed
			err = n.restoreRemove(ctx, s.path, staged)
		case s.want.dir:
			if st, lerr := n.folderRoot().Lstat(s.path); lerr == nil && !st.IsDir() {
				if err = n.restoreRemove(ctx, s.path, staged); err != nil {
					break
				}
			}
			err = n.mkdirAll(staged, s.path, dirMode(s.want.mode))
		case missing[s.want.hash] != nil:
			r.Outcome, r.Why = Unavailable, missing[s.want.hash].Error()
		default:
			op := self
			op.Hash, op.Size, op.Mode, op.MTime = s.want.hash, s.want.size, s.want.mode, s.want.mtime
			if st, lerr := n.folderRoot().Lstat(s.path); lerr == nil && st.IsDir() {
				err = fmt.Errorf("a directory is at %s now; restore what is in it first, or move it", s.path)
				break
			}
			err = n.place(ctx, s.path, op, staged)
		}
		if err != nil {
			r.Outcome, r.Why = Unavailable, err.Error()
		}
		if r.Outcome != Unavailable {
			changed = append(changed, s.path)
		}
		results = append(results, r)
	}
	if err := n.syncDirs(staged); err != nil {
		return results, fmt.Errorf("restore: %w", err)
	}
	if err := n.db.AddVersions(ctx, staged.kept); err != nil {
		return results, fmt.Errorf("restore: %w", err)
	}
	if err := n.observeLocked(ctx, changed...); err != nil {
		return results, fmt.Errorf("restore: record the restored files: %w", err)
	}
	return results, nil
}

// restoreRemove removes what is at p for a restore, keeping a file in the
// version store first; a directory goes only once empty.
func (n *Node) restoreRemove(ctx context.Context, p string, staged *stagedSet) error {
	st, err := n.folderRoot().Lstat(p)
	if notThere(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if st.IsDir() {
		n.folderRoot().Remove(p) // stays if something unrecorded is in it
		staged.touch(p)
		return nil
	}
	if err := n.removeKept(ctx, p, staged); err != nil && !notThere(err) {
		return err
	}
	staged.touch(p)
	return nil
}
