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
)

// metaPending holds the last pendingReport the daemon wrote, as JSON.
const metaPending = "pending"

// ErrContentUnavailable is wrapped by errors of ops whose content no
// connected peer could deliver (none is connected, or every transfer
// failed); ErrContentNowhere when every connected peer answered that it
// does not have it (the device that made it is away, say). Either way the
// op stays pending and is retried.
var (
	ErrContentUnavailable = errors.New("content not available")
	ErrContentNowhere     = errors.New("no connected peer has the content")
)

// Pending is what status shows of one origin's ops that are in the op log
// but not yet applied to the folder and the database, and why.
type Pending struct {
	Origin  string `json:"origin"`
	Name    string `json:"name,omitempty"`
	Logged  uint64 `json:"logged"`  // the origin's highest sequence in the log
	Applied uint64 `json:"applied"` // its highest sequence applied
	Ops     uint64 `json:"ops"`     // Logged - Applied
	Reason  string `json:"reason"`
}

// Reasons an origin's ops are pending, as status shows them (the "waiting
// for content" and "cannot apply" reasons carry the error after a colon).
const (
	reasonApplying = "applying"
	reasonPaused   = "paused"
	reasonDiskFull = "disk full"
	reasonContent  = "waiting for content"
	reasonNowhere  = "waiting for a peer that has the content"
	reasonFailed   = "cannot apply"
	reasonStopped  = "daemon not running"
)

// pendingReason says why an op that failed with err stays pending.
func pendingReason(err error) string {
	switch {
	case errors.Is(err, ErrDiskFull) || errors.Is(err, syscall.ENOSPC):
		return reasonDiskFull
	case errors.Is(err, ErrContentNowhere):
		return reasonNowhere
	case errors.Is(err, ErrContentUnavailable):
		return reasonContent + ": " + err.Error()
	default:
		return reasonFailed + ": " + err.Error()
	}
}

// pendingReport writes what status shows of the pending ops: after every
// apply pass, and while the node is paused, so that status never says
// nothing is left while something is. A write that would repeat the last
// one is skipped.
type pendingReport struct {
	mu     sync.Mutex
	last   string    // the JSON last written
	report []Pending // what it holds
	ended  time.Time // when an apply pass last ended
}

// any reports whether the last report held pending ops.
func (r *pendingReport) any() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.report) > 0
}

// passEnded notes that an apply pass ended at t.
func (r *pendingReport) passEnded(t time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ended = t
}

// lastEnd is when an apply pass last ended.
func (r *pendingReport) lastEnd() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ended
}

// explained returns the origins whose ops the last report said wait for
// something a new connection does not change: an op this device cannot
// apply, a full disk, a pause, a content no connected peer has.
func (r *pendingReport) explained() map[certs.DeviceID]bool {
	out := map[certs.DeviceID]bool{}
	for id, why := range r.reasons() {
		if why != reasonApplying && !strings.HasPrefix(why, reasonContent) {
			out[id] = true
		}
	}
	return out
}

// reasons returns, per origin, the reason the last report gave.
func (r *pendingReport) reasons() map[certs.DeviceID]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[certs.DeviceID]string, len(r.report))
	for _, p := range r.report {
		if id, err := certs.ParseDeviceID(p.Origin); err == nil {
			out[id] = p.Reason
		}
	}
	return out
}

// summary says, for a log line, what the last report held: per origin,
// how many ops and why.
func (r *pendingReport) summary() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var b strings.Builder
	for i, p := range r.report {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%d ops of %s: %s", p.Ops, p.Origin[:7], p.Reason)
	}
	return b.String()
}

// write records, per origin with ops logged beyond what is applied, how
// many and why: the reason an apply pass gave for it (why), else dflt,
// else reasonApplying (ops that arrived during the pass wait for the next
// one, which they started). applied is what the database has applied, or
// nil to read it.
func (r *pendingReport) write(ctx context.Context, n *Node, applied map[certs.DeviceID]uint64, why map[certs.DeviceID]string, dflt string) error {
	if applied == nil {
		var err error
		if applied, err = n.db.Applied(ctx); err != nil {
			return err
		}
	}
	report := pendingOf(n.ops.Vector(), applied, why, dflt)
	b, err := json.Marshal(report)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if string(b) == r.last {
		return nil
	}
	if err := n.db.SetMeta(ctx, metaPending, string(b)); err != nil {
		return err
	}
	r.last, r.report = string(b), report
	return nil
}

// pendingOf compares the log's vector with the applied one; origins are
// sorted by ID, so equal states encode alike.
func pendingOf(logged, applied map[certs.DeviceID]uint64, why map[certs.DeviceID]string, dflt string) []Pending {
	report := []Pending{}
	for o, seq := range logged {
		if seq <= applied[o] {
			continue
		}
		reason := why[o]
		if reason == "" {
			reason = dflt
		}
		if reason == "" {
			reason = reasonApplying
		}
		report = append(report, Pending{Origin: o.String(), Logged: seq, Applied: applied[o], Ops: seq - applied[o], Reason: reason})
	}
	slices.SortFunc(report, func(a, b Pending) int { return strings.Compare(a.Origin, b.Origin) })
	return report
}

// readPending reads the report the daemon last wrote and brings it up to
// date with what the database has applied since: an origin applied up to
// its logged sequence is left out. running says whether the daemon runs;
// when it does not, what is left waits for it.
func readPending(ctx context.Context, db stateStore, running bool, names map[string]string) ([]Pending, uint64, error) {
	recorded, err := readMetaList[Pending](ctx, db, metaPending)
	if err != nil || len(recorded) == 0 {
		return []Pending{}, 0, err
	}
	applied, err := db.Applied(ctx)
	if err != nil {
		return []Pending{}, 0, err
	}
	out := []Pending{}
	var total uint64
	for _, p := range recorded {
		id, err := certs.ParseDeviceID(p.Origin)
		if err != nil {
			continue
		}
		p.Applied = max(p.Applied, applied[id])
		if p.Applied >= p.Logged {
			continue
		}
		p.Ops = p.Logged - p.Applied
		p.Name = names[p.Origin]
		if !running {
			p.Reason = reasonStopped
		}
		total += p.Ops
		out = append(out, p)
	}
	return out, total, nil
}
