package node

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/drive-node/drive-node/certs"
	"github.com/drive-node/drive-node/oplog"
	"github.com/drive-node/drive-node/state"
	"github.com/drive-node/drive-node/vclock"
	"github.com/drive-node/drive-node/watcher"
)

// Role is what a device does with changes. A receive-only device (a NAS
// that mirrors) applies what peers send and announces nothing of its own:
// a change made on it stays on its disk, is listed as a local change, and
// never reaches a peer or makes one conflict. A send-only device (a
// master) announces its changes and carries out none of its peers': their
// ops are logged (and relayed) and set aside, and the paths they touch are
// listed as differing.
type Role string

// The roles.
const (
	SendReceive Role = "send-receive"
	ReceiveOnly Role = "receive-only"
	SendOnly    Role = "send-only"
)

// ParseRole reads a role as the --role flag takes it; "" is the role the
// device last ran with (see Config.Role).
func ParseRole(s string) (Role, error) {
	switch r := Role(s); r {
	case "", SendReceive, ReceiveOnly, SendOnly:
		return r, nil
	}
	return "", fmt.Errorf("role %q: want send-receive, receive-only or send-only", s)
}

const (
	// metaRole is the role the daemon last ran with, for status.
	metaRole = "role"
	// whySendOnly is the reason set-aside ops of a send-only device's
	// peers carry.
	whySendOnly = "send-only"
	// listedMax bounds the paths status lists of local changes and of
	// differing paths (their counts are exact).
	listedMax = 1000
)

// keepLocalLocked is what a receive-only device does with what it
// observed instead of logging ops: each observed path that differs from
// its record (known) is noted as a local change, each that is as its
// record says is noted as changed no more, and what only the records need
// (an mtime, an inode) is recorded. The caller holds the commit lock.
func (n *Node) keepLocalLocked(ctx context.Context, obs []watcher.Observation, known map[string]state.File, metaOnly []state.File, look func(*state.File)) error {
	b := state.Batch{}
	changed := map[string]bool{}
	for _, o := range obs {
		rec, ok := known[o.Path]
		live := ok && !rec.Deleted
		kind := ""
		switch {
		case !o.Exists && live && rec.Dir:
			kind = "rmdir"
		case !o.Exists && live:
			kind = "delete"
		case !o.Exists:
		case o.Dir && !(live && rec.Dir):
			kind = "mkdir"
		case !o.Dir && (!live || rec.Dir || o.Hash != rec.Hash || o.Mode != 0 && o.Mode != rec.Mode):
			kind = "write"
		}
		if kind == "" {
			b.Undone = append(b.Undone, o.Path)
			continue
		}
		changed[o.Path] = true
		b.LocalChanges = append(b.LocalChanges, state.LocalChange{Path: o.Path, Kind: kind})
	}
	for _, r := range metaOnly {
		if !changed[r.Path] {
			look(&r)
			b.Files = append(b.Files, r)
		}
	}
	if len(b.LocalChanges) > 0 {
		// A full rescan finds them again: status lists them, the log
		// does not repeat them.
		n.log.Debug("local changes kept on this receive-only device, not sent", "paths", len(b.LocalChanges))
	}
	return n.db.Apply(ctx, b)
}

// LocalChangesList returns the local changes a receive-only device
// keeps, in path order.
func (n *Node) LocalChangesList(ctx context.Context) ([]state.LocalChange, error) {
	var out []state.LocalChange
	err := n.db.LocalChanges(ctx, func(c state.LocalChange) error {
		out = append(out, c)
		return nil
	})
	return out, err
}

// ErrNotReceiveOnly and ErrNotSendOnly are returned by Revert and Override
// on a device of another role; ErrReceiveOnly by what would send this
// device's own changes from a receive-only one.
var (
	ErrReceiveOnly    = errors.New("this device is receive-only: it sends no change of its own")
	ErrNotReceiveOnly = errors.New("this device is not receive-only (start it with --role receive-only)")
	ErrNotSendOnly    = errors.New("this device is not send-only (start it with --role send-only)")
)

// Revert puts back the mesh's version of every path a receive-only device
// changed locally: its recorded file (from the version store, the folder
// or a peer), its directory, or nothing where the device made something.
// What it replaces goes into the version store, so a revert can be undone.
func (n *Node) Revert(ctx context.Context) ([]RestoreResult, error) {
	if n.cfg.Role != ReceiveOnly {
		return nil, ErrNotReceiveOnly
	}
	if n.paused.Load() {
		return nil, errors.New("revert: sync is paused (see status); nothing was changed")
	}
	changes, err := n.LocalChangesList(ctx)
	if err != nil {
		return nil, err
	}
	var steps []restoreStep
	req := RestoreRequest{Version: "(the mesh's version)"}
	for _, c := range changes {
		req.Paths = append(req.Paths, c.Path)
		f, ok, err := n.db.File(ctx, c.Path)
		if err != nil {
			return nil, err
		}
		if !ok || f.Deleted {
			steps = append(steps, restoreStep{path: c.Path, remove: true})
			continue
		}
		steps = append(steps, restoreStep{path: c.Path, was: &f,
			want: treeEntry{hash: f.Hash, size: f.Size, mode: f.Mode, mtime: f.MTime, dir: f.Dir}})
	}
	if len(steps) == 0 {
		return nil, nil
	}
	return n.carryOutRestore(ctx, req, steps, nil)
}

// setAside says whether this device sets the remote op aside, all of it
// or (a rename half ignored) a part, and why: its paths are ignored here,
// or the device is send-only. part is then the op to carry out (see
// ignoredPart).
func (n *Node) setAside(op oplog.Op) (why string, all bool, part *oplog.Op) {
	ign, part := n.ignoredPart(op)
	switch {
	case ign:
		return whyIgnored, true, nil
	case n.cfg.Role == SendOnly && op.Origin != n.id.ID:
		return whySendOnly, true, nil
	}
	return whyIgnored, false, part
}

// Differing is a path where peers made changes a send-only device did not
// carry out, as status lists it.
type Differing struct {
	Path string `json:"path"`
	// Changes counts the peers' ops set aside there; By names the
	// devices that made them.
	Changes int      `json:"changes"`
	By      []string `json:"by"`
}

// differing lists the paths of ops set aside for why, in path order, at
// most max of them, and counts them all.
func differing(ctx context.Context, db interface {
	SetAsideOps(context.Context, string, func(state.SetAside) error) error
}, why string, names map[string]string, max int) ([]Differing, int, error) {
	byPath := map[string]*Differing{}
	add := func(p string, origin certs.DeviceID) {
		if p == "" {
			return
		}
		d := byPath[p]
		if d == nil {
			d = &Differing{Path: p}
			byPath[p] = d
		}
		d.Changes++
		if who := originName(origin.String(), names); !slices.Contains(d.By, who) {
			d.By = append(d.By, who)
		}
	}
	if err := db.SetAsideOps(ctx, why, func(s state.SetAside) error {
		add(s.Path, s.Op.Origin)
		add(s.NewPath, s.Op.Origin)
		return nil
	}); err != nil {
		return nil, 0, err
	}
	paths := slices.Sorted(maps.Keys(byPath))
	out := make([]Differing, 0, min(len(paths), max))
	for _, p := range paths[:min(len(paths), max)] {
		out = append(out, *byPath[p])
	}
	return out, len(paths), nil
}

// Override makes every peer match a send-only device again: at each path
// where peers made changes it set aside, its own version (its file, its
// directory, or nothing) becomes a new change made after seeing theirs,
// which every device takes. It returns how many paths it answered.
func (n *Node) Override(ctx context.Context) (int, error) {
	if n.cfg.Role != SendOnly {
		return 0, ErrNotSendOnly
	}
	n.commitMu.Lock()
	defer n.commitMu.Unlock()
	var ids []state.OpID
	if err := n.db.SetAsideOps(ctx, whySendOnly, func(s state.SetAside) error {
		ids = append(ids, s.Op)
		return nil
	}); err != nil {
		return 0, err
	}
	seen := map[string]vclock.Vector{}
	madeDir := map[string]bool{}
	var order []string
	done := state.Batch{}
	for _, id := range ids {
		op, found, err := n.ops.Get(id.Origin, id.Seq)
		if err != nil {
			return 0, fmt.Errorf("override: read %s#%d: %w", id.Origin.Short(), id.Seq, err)
		}
		if !found {
			continue
		}
		if ignored, _ := n.ignoredPart(op); ignored {
			// Not this device's to answer: kept for when no rule
			// ignores it.
			done.SetAside = append(done.SetAside, setAsideOf(op, whyIgnored))
			continue
		}
		noteSeen(op, seen, madeDir, &order)
		done.Resumed = append(done.Resumed, id)
	}
	answered, err := n.answerLocked(ctx, seen, madeDir, order)
	if err != nil {
		return 0, fmt.Errorf("override: %w", err)
	}
	if err := n.db.Apply(ctx, done); err != nil {
		return answered, fmt.Errorf("override: %w", err)
	}
	n.log.Info("override: this device's files are sent as new changes", "paths", answered)
	return answered, nil
}

// resolveRole settles the role: the one configured, or else the one the
// device last ran with, or else SendReceive. A device keeps its role
// across restarts unless told otherwise: a mirror restarted without
// --role must not send what it kept to itself.
func (n *Node) resolveRole(ctx context.Context) error {
	last, _, err := n.db.Meta(ctx, metaRole)
	if err != nil {
		return err
	}
	switch {
	case n.cfg.Role == "" && last != "":
		n.cfg.Role = Role(last)
	case n.cfg.Role == "":
		n.cfg.Role = SendReceive
	case last != "" && Role(last) != n.cfg.Role:
		n.log.Info("the device's role changes", "was", last, "now", n.cfg.Role)
	}
	if n.cfg.Role == ReceiveOnly && n.cfg.schedule == nil {
		// A peer's change replaces a local one, and revert does too:
		// the local content must go somewhere.
		return errors.New("a receive-only device keeps its local changes in the version store when peers' changes replace them: it needs --versions on")
	}
	return nil
}

// forgetRoleLeftovers drops the local changes a receive-only run left
// when the device runs in another role now: the watcher records them as
// changes. (The ops a send-only run set aside are carried out by the
// first apply pass, see resumeSetAside.)
func (n *Node) forgetRoleLeftovers(ctx context.Context) error {
	if n.cfg.Role != ReceiveOnly {
		if err := n.db.ForgetLocalChanges(ctx); err != nil {
			return err
		}
	}
	return nil
}

// errIgnoredInTheWay is a peer's change that would replace what the rules
// ignore here: it is not carried out (see unplaceable).
var errIgnoredInTheWay = errors.New("what this device's ignore rules ignore is in the way")

// yieldLocalLocked makes way, on a receive-only device, for an effect of a
// peer's op that puts something at p: what a local change left at p, or
// at a directory above it, that the records do not hold goes (its files
// into the version store), as the peer's change replaces the local one. A
// file the records do not hold at p itself stays for the effect, which
// keeps it before it replaces it. Nothing the rules ignore is removed.
// The caller holds the commit lock.
func (n *Node) yieldLocalLocked(ctx context.Context, p string, pending *batchRecords, staged *stagedSet) error {
	if p == "" {
		return nil
	}
	root := n.folderRoot()
	parts := strings.Split(p, "/")
	for i := 1; i <= len(parts); i++ {
		at := strings.Join(parts[:i], "/")
		st, err := root.Lstat(at)
		if err != nil {
			return nil // nothing there, nor below
		}
		rec, err := n.recordAt(ctx, at, pending)
		if err != nil {
			return err
		}
		recDir := rec != nil && !rec.Deleted && rec.Dir
		recFile := rec != nil && !rec.Deleted && !rec.Dir
		inWay := st.IsDir() && !recDir && i == len(parts) || !st.IsDir() && (i < len(parts) && !recFile || i == len(parts) && recDir)
		if inWay && n.ignored(at, st.IsDir()) {
			return fmt.Errorf("%s: %w", at, errIgnoredInTheWay)
		}
		switch {
		case st.IsDir() && (recDir || i < len(parts)):
			continue // a directory, as the records or the path want
		case st.IsDir():
			err = n.removeLocalTree(ctx, at, staged)
		case i < len(parts) && !recFile || i == len(parts) && recDir:
			// A file where the path needs a directory.
			err = n.removeKept(ctx, at, staged)
			staged.undone = append(staged.undone, at)
		}
		if err != nil {
			return fmt.Errorf("make way for a peer's change at %s: %w", at, err)
		}
		staged.looked(n, p)
		return nil
	}
	return nil
}

// removeLocalTree removes the directory p and everything in it, keeping
// its files in the version store, and notes their paths as local changes
// undone.
func (n *Node) removeLocalTree(ctx context.Context, p string, staged *stagedSet) error {
	root := n.folderRoot()
	d, err := root.Open(p)
	if err != nil {
		return err
	}
	entries, err := d.ReadDir(-1)
	d.Close()
	if err != nil {
		return err
	}
	for _, e := range entries {
		c := p + "/" + e.Name()
		if n.reserved(c) {
			continue
		}
		if n.ignored(c, e.IsDir()) {
			return fmt.Errorf("%s: %w", c, errIgnoredInTheWay)
		}
		if e.IsDir() {
			err = n.removeLocalTree(ctx, c, staged)
		} else {
			err = n.removeKept(ctx, c, staged)
		}
		if err != nil {
			return err
		}
		staged.undone = append(staged.undone, c)
	}
	staged.touch(p)
	staged.undone = append(staged.undone, p)
	return root.Remove(p)
}

// diskHolds reports whether the folder holds what the record r says is at
// its path (see holds).
func (n *Node) diskHolds(r state.File) bool {
	st, err := n.folderRoot().Lstat(r.Path)
	return n.holds(st, err, &r)
}
