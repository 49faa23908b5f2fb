package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/drive-node/drive-node/certs"
	"github.com/drive-node/drive-node/content"
	"github.com/drive-node/drive-node/node/internal/core"
	"github.com/drive-node/drive-node/node/internal/volume"
	"github.com/drive-node/drive-node/oplog"
	"github.com/drive-node/drive-node/state"
	"github.com/drive-node/drive-node/vclock"
)

// A received op that this device can never carry out (a name its file
// system refuses or cannot hold, a directory it may not write) must not
// stop its origin's later ops. After unplacedAfter passes that failed on
// it for such a reason, the op is counted as handled here without being
// placed: nothing is recorded for its paths, so nothing is deleted on any
// other device because of it, and status lists it with its path and
// reason.

// metaUnplaced holds the ops not placed on this device, as JSON.
const metaUnplaced = "unplaced"

const (
	// unplacedAfter is how many apply passes must fail on an op, each
	// for a reason that does not go away, before it is given up here.
	unplacedAfter = 3
	// unplacedKept bounds the list status shows; the oldest go first.
	unplacedKept = 1000
)

// Unplaced is a received op this device did not carry out, as status
// shows it.
type Unplaced struct {
	Origin string `json:"origin"`
	Seq    uint64 `json:"seq"`
	Path   string `json:"path"`
	// Kind says why, in a word: "refused-name" (the folder's file system
	// cannot hold the name), "case-conflict" (it cannot hold the name
	// apart from Other), "unsafe-path" (no device may write there),
	// "ignored-in-the-way" (a receive-only device would have to remove
	// what its rules ignore) or "cannot-write" (the disk refuses the
	// write).
	Kind   string    `json:"kind"`
	Other  string    `json:"other,omitempty"`
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
}

// unplaceable reports whether err says the op can never be carried out on
// this device, however often it is tried.
func unplaceable(err error) bool {
	var cc *CaseConflictError
	return errors.Is(err, ErrUnsafePath) || errors.Is(err, volume.ErrRefused) || errors.As(err, &cc) || errors.Is(err, errIgnoredInTheWay) ||
		errors.Is(err, syscall.ENAMETOOLONG) || errors.Is(err, syscall.EILSEQ) || errors.Is(err, syscall.EINVAL) ||
		errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EROFS)
}

// unplacedTries counts, per op, the passes that failed on it for a reason
// unplaceable accepts. It lives as long as the node: a restart retries
// from zero, which bounds nothing it should not.
type unplacedTries struct {
	mu    sync.Mutex
	tries map[state.OpID]int
}

// failed notes a pass that failed on op with err and reports whether op
// is now given up.
func (u *unplacedTries) failed(op oplog.Op, err error) bool {
	if !unplaceable(err) {
		return false
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.tries == nil {
		u.tries = map[state.OpID]int{}
	}
	id := state.OpID{Origin: op.Origin, Seq: op.Seq}
	u.tries[id]++
	if u.tries[id] < unplacedAfter {
		return false
	}
	delete(u.tries, id)
	return true
}

// giveUp adds op to the list status shows and logs it, once per path: a
// later op at a path listed already takes the entries it has seen (those
// made concurrently stay beside it, each to be placed if the conflict is
// resolved). The caller counts op as handled.
func (n *Node) giveUp(ctx context.Context, op oplog.Op, err error) error {
	list, rerr := readUnplaced(ctx, n.db)
	if rerr != nil {
		return rerr
	}
	p := op.Path
	if op.Kind == oplog.KindRename {
		p = op.Path + " -> " + op.NewPath
	}
	u := Unplaced{Origin: op.Origin.String(), Seq: op.Seq, Path: p, Kind: unplacedKind(err), Reason: err.Error(), At: n.clock.Now().UTC()}
	var cc *CaseConflictError
	if errors.As(err, &cc) {
		u.Other = cc.Other
	}
	listed := slices.ContainsFunc(list, func(l Unplaced) bool { return l.Path == u.Path && l.Kind == u.Kind && l.Other == u.Other })
	if !listed {
		n.log.Warn("a received change cannot be carried out on this device; it is skipped here, kept in the log, and the device's later changes go on",
			"op", op.String(), "kind", u.Kind, "err", err)
	}
	list = slices.DeleteFunc(list, func(l Unplaced) bool { return l.Path == u.Path && includes(op.Version(), l) })
	list = append(list, u)
	if len(list) > unplacedKept {
		list = list[len(list)-unplacedKept:]
	}
	return n.writeUnplaced(ctx, list)
}

func (n *Node) writeUnplaced(ctx context.Context, list []Unplaced) error {
	b, err := json.Marshal(list)
	if err != nil {
		return err
	}
	if err := n.db.SetMeta(ctx, metaUnplaced, string(b)); err != nil {
		return fmt.Errorf("record the changes not placed here: %w", err)
	}
	return nil
}

// readUnplaced returns the ops not placed on this device, oldest first.
func readUnplaced(ctx context.Context, db stateStore) ([]Unplaced, error) {
	return readMetaList[Unplaced](ctx, db, metaUnplaced)
}

// readMetaList reads the JSON list the daemon keeps under key for status:
// empty, never nil, when there is none.
func readMetaList[T any](ctx context.Context, db stateStore, key string) ([]T, error) {
	raw, ok, err := db.Meta(ctx, key)
	if err != nil || !ok || raw == "" {
		return []T{}, err
	}
	var list []T
	if err := json.Unmarshal([]byte(raw), &list); err != nil {
		return []T{}, fmt.Errorf("read %q for status: %w", key, err)
	}
	return list, nil
}

// originName is how status names an origin: by its device name if known.
func originName(origin string, names map[string]string) string {
	if id, err := certs.ParseDeviceID(origin); err == nil {
		if name := names[origin]; name != "" {
			return name + " (" + id.Short() + ")"
		}
		return id.Short()
	}
	return origin
}

// dropUnplaced removes from the list the entries at paths that ops since
// carried out here have placed or removed, knowing the op not placed:
// the mesh has moved on there. settled maps each such path to the
// version its record has now; an entry whose op that version does not
// include stays (a removal made concurrently with a write not placed
// here does not win over it on the other devices either).
func (n *Node) dropUnplaced(ctx context.Context, settled map[string]vclock.Vector) error {
	if len(settled) == 0 {
		return nil
	}
	list, err := readUnplaced(ctx, n.db)
	if err != nil || len(list) == 0 {
		return err
	}
	seen := func(p string, u Unplaced) bool {
		v, ok := settled[p]
		return ok && includes(v, u)
	}
	kept := slices.DeleteFunc(slices.Clone(list), func(u Unplaced) bool {
		// A rename's entry is about its new name: a later write at its
		// old name, placed here, leaves the new name still missing.
		from, to, renamed := strings.Cut(u.Path, " -> ")
		if renamed {
			return seen(to, u)
		}
		return seen(from, u)
	})
	if len(kept) == len(list) {
		return nil
	}
	return n.writeUnplaced(ctx, kept)
}

// includes reports whether version v includes u's op (or u names no
// device: an entry of no use).
func includes(v vclock.Vector, u Unplaced) bool {
	origin, err := certs.ParseDeviceID(u.Origin)
	return err != nil || v.Get(origin) >= u.Seq
}

// retryCaseConflicts tries again every op not placed because of a case
// conflict whose other name has gone (renamed or removed, here or on any
// device): it is then placed as it would have been on arrival.
func (n *Node) retryCaseConflicts(ctx context.Context) error {
	list, err := readUnplaced(ctx, n.db)
	if err != nil {
		return err
	}
	for _, u := range list {
		if u.Kind != "case-conflict" {
			continue
		}
		origin, err := certs.ParseDeviceID(u.Origin)
		if err != nil {
			continue
		}
		op, found, err := n.ops.Get(origin, u.Seq)
		if err != nil {
			return err
		}
		if !found {
			continue
		}
		if err := n.placeable(ctx, op, nil); err != nil {
			continue // still held apart
		}
		if err := n.placeAgain(ctx, op, state.Batch{}); err != nil {
			n.log.Debug("a change not placed because of a case conflict could not be placed yet", "op", op.String(), "err", err)
			continue
		}
		n.log.Info("a case conflict is resolved: the change not placed before is placed now", "op", op.String())
		if err := n.dropUnplaced(ctx, map[string]vclock.Vector{placedPath(op): op.Version()}); err != nil {
			return err
		}
	}
	return nil
}

// placeAgain carries out op, which was counted as applied without being
// placed, as an apply pass would, and records what it did with b.
func (n *Node) placeAgain(ctx context.Context, op oplog.Op, b state.Batch) error {
	batch := core.NewBatch([]oplog.Op{op})
	staged := n.stageContents(ctx, batch, 0, 1, map[content.Hash]bool{}, nil, nil)
	if len(staged.errs) > 0 {
		return errors.Join(staged.errs...)
	}
	n.commitMu.Lock()
	defer n.commitMu.Unlock()
	defer n.placing.reset()
	defer func() {
		for _, name := range staged.temp {
			n.folderRoot().Remove(name) // not used after all
		}
	}()
	var recs batchRecords
	rows, more, err := n.execute(ctx, batch, 0, staged, &recs)
	if err != nil {
		return err
	}
	n.placing.add(rows)
	if err := n.syncDirs(staged); err != nil {
		return err
	}
	b.Files, b.Versions, b.At = rows, staged.kept, n.clock.Now().UnixNano()
	if err := n.db.Apply(ctx, b); err != nil {
		return err
	}
	return n.observeLocked(ctx, more...)
}
