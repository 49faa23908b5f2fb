package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"time"

	"golang.org/x/text/unicode/norm"

	"github.com/drive-node/drive-node/content"
	"github.com/drive-node/drive-node/node/internal/core"
	"github.com/drive-node/drive-node/node/internal/volume"
	"github.com/drive-node/drive-node/oplog"
	"github.com/drive-node/drive-node/state"
	"github.com/drive-node/drive-node/watcher"
)

// What the folder's file system can hold, and what the engine does about
// names it cannot: a peer's name the disk refuses, or one it cannot hold
// apart from another recorded name (Report.txt beside report.txt on a
// case-insensitive disk), is not placed here. The op stays in the log,
// nothing is recorded for it (so nothing changes on any other device),
// and status lists it until a later change makes it placeable.

// probeDir is the scratch directory the probe works in: a temporary name,
// which the watcher ignores and start-up removes when a crash left it.
const probeDir = TempPrefix + "probe"

// metaVolume holds the last probe's findings, as JSON, for status.
const metaVolume = "volume"

// FileSystem is what the last probe found about the folder's file system,
// as status shows it.
type FileSystem struct {
	volume.Traits
	Summary  string        `json:"summary"`
	ProbedAt time.Time     `json:"probed_at"`
	Took     time.Duration `json:"probe_took_ns"`
}

// probeVolume finds out what the folder's file system can hold, records
// it for status, and logs it when it differs from what the last probe
// found (a first start, another disk mounted). A folder that cannot be
// probed keeps what was known, and a warning says why.
func (n *Node) probeVolume(ctx context.Context) {
	start := time.Now()
	t, err := volume.Probe(n.folderRoot(), probeDir)
	took := time.Since(start)
	if err != nil {
		n.log.Warn("cannot find out what the folder's file system can hold; names are checked only when written", "folder", n.cfg.Folder, "err", err)
		return
	}
	n.vol.Store(&t)
	fs := FileSystem{Traits: t, Summary: t.String(), ProbedAt: n.clock.Now().UTC(), Took: took}
	var prev FileSystem
	if raw, ok, _ := n.db.Meta(ctx, metaVolume); ok {
		json.Unmarshal([]byte(raw), &prev)
	}
	if prev.Traits != t || prev.Summary == "" {
		n.log.Info("the folder's file system", "folder", n.cfg.Folder, "is", fs.Summary, "probe_took", took.Round(time.Microsecond))
	}
	if b, err := json.Marshal(fs); err == nil {
		n.db.SetMeta(ctx, metaVolume, string(b))
	}
}

// volume is what the last probe found (a POSIX file system before any).
func (n *Node) volume() volume.Traits {
	if t := n.vol.Load(); t != nil {
		return *t
	}
	return volume.Traits{}
}

// sameMTime reports whether two modification times are one at the step
// the folder keeps them in: a disk mounted again may show less of a time
// than was recorded.
func (n *Node) sameMTime(a, b int64) bool {
	p := n.volume().MTimePrecision
	return volume.Truncate(a, p) == volume.Truncate(b, p)
}

// keepModes gives what was seen on a folder that keeps no Unix modes the
// recorded mode of its path, or the mode a new file or directory gets by
// default: the disk's one mode for all (0777 on exFAT) is not this
// device's change, and must not overwrite its peers' modes.
// A file renamed here takes the mode of the file that vanished with its
// content.
func keepModes(obs []watcher.Observation, known map[string]state.File) {
	gone := map[content.Hash]uint32{}
	for _, o := range obs {
		if k, ok := known[o.Path]; !o.Exists && ok && !k.Deleted && !k.Dir && k.Mode != 0 {
			gone[k.Hash] = k.Mode
		}
	}
	for i, o := range obs {
		if !o.Exists {
			continue
		}
		k, ok := known[o.Path]
		switch {
		case ok && !k.Deleted && k.Dir == o.Dir && k.Mode != 0:
			obs[i].Mode = k.Mode
		case !o.Dir && gone[o.Hash] != 0:
			obs[i].Mode = gone[o.Hash]
		case o.Dir:
			obs[i].Mode = 0o755
		default:
			obs[i].Mode = 0o644
		}
	}
}

// CaseConflictError says that a path cannot be placed because the folder
// holds another name it cannot tell apart from it.
type CaseConflictError struct {
	Path, Other string
}

func (e *CaseConflictError) Error() string {
	return fmt.Sprintf("case conflict: %q cannot be held beside %q on this folder's file system, which does not tell their names apart", e.Path, e.Other)
}

// placedPath is the path op creates here ("" for none): a removal creates
// nothing, so the names of its path matter not.
func placedPath(op oplog.Op) string {
	switch op.Kind {
	case oplog.KindWrite, oplog.KindMkdir:
		return op.Path
	case oplog.KindRename:
		return op.NewPath
	}
	return ""
}

// removalOf is the rename op as a removal of its source: what a device
// that cannot hold the new name carries out of it.
func removalOf(op oplog.Op) oplog.Op {
	op.Kind, op.NewPath = oplog.KindDelete, ""
	return op
}

// placeable says why op's path cannot be placed on this folder: a name
// its file system refuses, or one it cannot hold apart from another
// name there (see heldApart). nil means it may be tried.
func (n *Node) placeable(ctx context.Context, op oplog.Op, pending *batchRecords) error {
	p := placedPath(op)
	if p == "" {
		return nil
	}
	t := n.volume()
	for _, c := range strings.Split(p, "/") {
		if err := t.Refuses(c); err != nil {
			return err
		}
	}
	if !t.Folds() {
		return nil
	}
	other, err := n.heldApart(ctx, p, op, pending)
	if err != nil || other == "" {
		return err
	}
	return &CaseConflictError{Path: p, Other: other}
}

// refused reports whether the folder's file system refuses a name in p.
func (n *Node) refused(p string) bool {
	t := n.volume()
	for _, c := range strings.Split(p, "/") {
		if t.Refuses(c) != nil {
			return true
		}
	}
	return false
}

// heldApart returns the name on disk that p cannot be held apart from on
// a folder that compares names without case or Unicode form, or "" if
// there is none: p, and each directory above it, is either recorded under
// that very name, or missing, or held under that very name. A rename's
// own source does not count (a case-only rename, Docs to docs).
func (n *Node) heldApart(ctx context.Context, p string, op oplog.Op, pending *batchRecords) (string, error) {
	if rec, err := n.recordAt(ctx, p, pending); err != nil || rec != nil && !rec.Deleted {
		return "", err // recorded under its own name, and so is every directory above it
	}
	// A disk that keeps no Unicode form lists a name in one form whatever
	// form it was made in: only the records tell that another form of the
	// name is held.
	if twin, err := n.formTwin(ctx, p, pending); err != nil || twin != "" {
		if err == nil && n.movesAway(ctx, op, twin, pending) {
			return "", nil // the rename's own source, in another form
		}
		return twin, err
	}
	parts := strings.Split(p, "/")
	for i := range parts {
		q := strings.Join(parts[:i+1], "/")
		if i < len(parts)-1 {
			if rec, err := n.recordAt(ctx, q, pending); err != nil {
				return "", err
			} else if rec != nil && !rec.Deleted && rec.Dir {
				continue
			}
		}
		if _, err := n.folderRoot().Lstat(q); err != nil {
			if notThere(err) {
				return "", nil // nothing deeper is there either
			}
			return "", err
		}
		held, err := n.heldName(q)
		if err != nil || held == "" || sameName(held, parts[i]) {
			if err != nil && !notThere(err) {
				return "", err
			}
			continue
		}
		other := path.Join(parentDir(q), held)
		if n.movesAway(ctx, op, other, pending) {
			return "", nil // the rename's own source, under another case
		}
		return other, nil
	}
	return "", nil
}

// movesAway reports whether op is a rename whose source is other, the
// name its new one cannot be held apart from, and whose source holds what
// the rename moves: the rename then takes the name over (Docs to docs).
// A source holding something else (an edit made concurrently) stays, and
// the new name would land on it.
func (n *Node) movesAway(ctx context.Context, op oplog.Op, other string, pending *batchRecords) bool {
	if op.Kind != oplog.KindRename || other != op.Path {
		return false
	}
	src, err := n.recordAt(ctx, op.Path, pending)
	return err == nil && src != nil && !src.Deleted && src.Hash == op.Hash
}

// formTwin returns, on a folder that finds a name under any Unicode form,
// the live recorded path that is p in another form (composed or
// decomposed), or "" if there is none.
func (n *Node) formTwin(ctx context.Context, p string, pending *batchRecords) (string, error) {
	if !n.volume().NormInsensitive {
		return "", nil
	}
	for _, q := range []string{norm.NFC.String(p), norm.NFD.String(p)} {
		if q == p {
			continue
		}
		rec, err := n.recordAt(ctx, q, pending)
		if err != nil {
			return "", err
		}
		if rec != nil && !rec.Deleted {
			return q, nil
		}
	}
	return "", nil
}

// sameName reports whether the names a and b are one in the form names
// travel in (NFC): a folder that keeps names decomposed (HFS+) holds
// the precomposed name a peer sent under another form of it.
func sameName(a, b string) bool {
	return a == b || norm.NFC.String(a) == norm.NFC.String(b)
}

// heldName returns the name under which the folder holds the entry that
// p's last element finds, by listing p's directory: the name itself when
// it is there byte for byte, else the first entry with the same key.
func (n *Node) heldName(p string) (string, error) {
	dir := parentDir(p)
	if dir == "" {
		dir = "."
	}
	d, err := n.folderRoot().Open(dir)
	if err != nil {
		return "", err
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return "", err
	}
	base := path.Base(p)
	t := n.volume()
	key, found := t.Key(base), ""
	for _, name := range names {
		if name == base {
			return name, nil
		}
		if found == "" && t.Key(name) == key {
			found = name
		}
	}
	return found, nil
}

// unplacedKind names why an op was not placed, for status.
func unplacedKind(err error) string {
	var cc *CaseConflictError
	switch {
	case errors.As(err, &cc):
		return "case-conflict"
	case errors.Is(err, volume.ErrRefused):
		return "refused-name"
	case errors.Is(err, ErrUnsafePath):
		return "unsafe-path"
	case errors.Is(err, errIgnoredInTheWay):
		return "ignored-in-the-way"
	}
	return "cannot-write"
}

// adoptCase carries out on disk a peer's change of a directory's name to
// another case (Docs to docs), which its device recorded as a new
// directory, the moves of what the old one held, and the old one's
// removal. On a folder that cannot hold both names, the mkdir of docs
// (the i-th op of batch) meets Docs, so Docs is renamed to docs when the
// batch also replaces Docs and Docs is a recorded directory; the moves
// then find their files in place and the removal of Docs finds nothing
// under that name. It reports whether it did so.
func (n *Node) adoptCase(ctx context.Context, batch *core.Batch, i int, cc *CaseConflictError, pending *batchRecords, staged *stagedSet) bool {
	op := batch.Op(i)
	if op.Kind != oplog.KindMkdir || cc.Path != op.Path || !batch.RemovedLater(i, cc.Other) {
		return false
	}
	rec, err := n.recordAt(ctx, cc.Other, pending)
	if err != nil || rec == nil || rec.Deleted || !rec.Dir {
		return false
	}
	rename := n.folderRoot().Rename
	if r, ok := n.folderRoot().(interface{ RenameCase(string, string) error }); ok {
		rename = r.RenameCase
	}
	if err := rename(cc.Other, cc.Path); err != nil {
		n.log.Warn("cannot give a directory the case a peer gave it", "from", cc.Other, "to", cc.Path, "err", err)
		return false
	}
	staged.names.forget(cc.Other)
	staged.names.forget(cc.Path)
	if err := n.folderRoot().SyncDir(parentDir(cc.Path)); err != nil {
		n.log.Warn("cannot make a directory's new case durable", "dir", cc.Path, "err", err)
	}
	n.log.Info("a peer changed a directory name's case; done here as a rename", "from", cc.Other, "to", cc.Path)
	return true
}

// there reports whether the folder holds p under that very name (see
// exactLstat): on a folder that finds Docs as docs, a removal of Docs must
// not remove docs.
func (n *Node) there(p string, seen *lookups) bool {
	_, err := n.lstat(p, seen)
	return err == nil
}

// inHeldForm puts what was seen on a folder that finds a name in any
// Unicode form under the form the name is recorded in, and a name not
// recorded in any form under its NFC form, the form names travel in: a
// disk that keeps no form (HFS+ lists every name decomposed) shows a
// peer's composed name and a peer's decomposed one alike. A name may so
// be reported gone under its recorded form and present under the listed
// one: it is there.
func (n *Node) inHeldForm(ctx context.Context, obs []watcher.Observation) ([]watcher.Observation, error) {
	present := map[string]bool{}
	for i := range obs {
		p, err := n.heldForm(ctx, obs[i].Path)
		if err != nil {
			return nil, err
		}
		obs[i].Path = p
		if obs[i].Exists {
			present[p] = true
		}
	}
	return slices.DeleteFunc(obs, func(o watcher.Observation) bool { return !o.Exists && present[o.Path] }), nil
}

// heldForm is p as recorded (as it is, composed or decomposed), or in
// NFC if it is recorded in none of those forms.
func (n *Node) heldForm(ctx context.Context, p string) (string, error) {
	nfc := norm.NFC.String(p)
	if nfc == p && norm.NFD.IsNormalString(p) {
		return p, nil // one form only (plain ASCII)
	}
	for _, q := range []string{p, nfc, norm.NFD.String(p)} {
		rec, ok, err := n.db.File(ctx, q)
		if err != nil {
			return "", err
		}
		if ok && !rec.Deleted {
			return q, nil
		}
	}
	return nfc, nil
}

// keepMTimes gives what was seen on a folder that keeps times in coarse
// steps the recorded time of its path (or, for a file renamed here, of the
// file that vanished with its content) when the two are one at that step:
// the disk's truncated time is not this device's change, and must not
// overwrite its peers' finer one.
func keepMTimes(obs []watcher.Observation, known map[string]state.File, step time.Duration) {
	same := func(a, b int64) bool { return volume.Truncate(a, step) == volume.Truncate(b, step) }
	gone := map[content.Hash]int64{}
	for _, o := range obs {
		if k, ok := known[o.Path]; !o.Exists && ok && !k.Deleted && !k.Dir {
			gone[k.Hash] = k.MTime
		}
	}
	for i, o := range obs {
		if !o.Exists || o.Dir {
			continue
		}
		if k, ok := known[o.Path]; ok && !k.Deleted && !k.Dir && k.Hash == o.Hash && same(k.MTime, o.MTime) {
			obs[i].MTime = k.MTime
		} else if t, ok := gone[o.Hash]; ok && same(t, o.MTime) {
			obs[i].MTime = t
		}
	}
}
