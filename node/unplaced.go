package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"syscall"
	"time"

	"github.com/drive-node/drive-node/certs"
	"github.com/drive-node/drive-node/oplog"
	"github.com/drive-node/drive-node/state"
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
	Origin string    `json:"origin"`
	Seq    uint64    `json:"seq"`
	Path   string    `json:"path"`
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
}

// unplaceable reports whether err says the op can never be carried out on
// this device, however often it is tried.
func unplaceable(err error) bool {
	return errors.Is(err, ErrUnsafePath) ||
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

// giveUp adds op to the list status shows and logs it. The caller counts
// op as handled.
func (n *Node) giveUp(ctx context.Context, op oplog.Op, err error) error {
	n.log.Warn("a received change cannot be carried out on this device; it is skipped here and the device's later changes go on",
		"op", op.String(), "err", err)
	list, rerr := readUnplaced(ctx, n.db)
	if rerr != nil {
		return rerr
	}
	p := op.Path
	if op.Kind == oplog.KindRename {
		p = op.Path + " -> " + op.NewPath
	}
	list = append(list, Unplaced{Origin: op.Origin.String(), Seq: op.Seq, Path: p, Reason: err.Error(), At: n.clock.Now().UTC()})
	if len(list) > unplacedKept {
		list = list[len(list)-unplacedKept:]
	}
	b, jerr := json.Marshal(list)
	if jerr != nil {
		return jerr
	}
	if err := n.db.SetMeta(ctx, metaUnplaced, string(b)); err != nil {
		return fmt.Errorf("record op %s as not placed: %w", op, err)
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
