package node

import (
	"cmp"
	"context"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/drive-node/drive-node/certs"
	"github.com/drive-node/drive-node/content"
	"github.com/drive-node/drive-node/oplog"
	"github.com/drive-node/drive-node/state"
)

// A path's history is read from the op log, which every device holds
// whole: each op that made, changed, moved or removed the path, with the
// time this device recorded it (state.DB.RecordedTimes) and where its
// content can be had now.

// HistoryEntry is one version of a path: the op that made it.
type HistoryEntry struct {
	// At is when this device recorded the op (zero for ops recorded
	// before drive-node kept such times).
	At time.Time `json:"at"`
	// Device made the op; DeviceName is what this device calls it.
	Device     string `json:"device"`
	DeviceName string `json:"device_name,omitempty"`
	// Change is what the op did: created or edited, deleted, renamed to,
	// renamed from, made a directory, removed the directory.
	Change string `json:"change"`
	Path   string `json:"path"`
	Other  string `json:"other,omitempty"` // the rename's other name
	Size   int64  `json:"size"`
	Hash   string `json:"hash,omitempty"`
	// Where the content can be had now: "here" (a file in the folder),
	// "version store", or "peer NAME" (a connected peer that has it).
	Where []string `json:"where"`
	// op is the op itself, for restores.
	op timedOp
}

// timedOp is an op and when this device recorded it.
type timedOp struct {
	oplog.Op
	at int64
}

// loggedOps returns every op of the log with the time it was recorded
// here (by times), in the order this device recorded them (time, then
// Lamport clock and origin, which keeps the causal order of ops recorded
// together). keep filters ops before they are held.
func (n *Node) loggedOps(ctx context.Context, times recordTimes, keep func(oplog.Op) bool) ([]timedOp, error) {
	var out []timedOp
	err := eachLogged(ctx, n.ops, func(op oplog.Op) {
		if keep(op) {
			out = append(out, timedOp{op, times.at(op.Origin, op.Seq)})
		}
	})
	if err != nil {
		return nil, err
	}
	slices.SortStableFunc(out, func(a, b timedOp) int {
		return cmp.Or(cmp.Compare(a.at, b.at), cmp.Compare(a.Lamport, b.Lamport), compareIDs(a.Origin, b.Origin), cmp.Compare(a.Seq, b.Seq))
	})
	return out, nil
}

// recordTimes tells when this device recorded each op, read once for a
// pass over many: the runs of ops recorded together, by origin and
// ordered by first sequence, what is applied, and the time of the read.
type recordTimes struct {
	runs    map[certs.DeviceID][]state.OpTimes
	applied map[certs.DeviceID]uint64
	now     int64
}

// recordTimes reads what recordTimes.at needs.
func (n *Node) recordTimes(ctx context.Context) (recordTimes, error) {
	times, err := n.db.RecordedTimes(ctx)
	if err != nil {
		return recordTimes{}, err
	}
	runs := map[certs.DeviceID][]state.OpTimes{}
	for _, t := range times {
		runs[t.Origin] = append(runs[t.Origin], t)
	}
	applied, err := n.db.Applied(ctx)
	if err != nil {
		return recordTimes{}, err
	}
	return recordTimes{runs: runs, applied: applied, now: n.clock.Now().UnixNano()}, nil
}

// at is when the op seq of origin was recorded here (see recordedAt).
func (t recordTimes) at(origin certs.DeviceID, seq uint64) int64 {
	return recordedAt(t.runs[origin], seq, t.applied[origin], t.now)
}

// recordedAt is when the op seq of an origin was recorded here (runs
// are the origin's), now for an op not applied yet (received, pending or
// held), and 0 for one applied before the database noted times.
func recordedAt(runs []state.OpTimes, seq, applied uint64, now int64) int64 {
	if seq > applied {
		return now
	}
	// Runs are ordered by First; those that can hold seq start at or
	// before it, and the one starting last is the first recording (a
	// rebuild's run starts at 1 and replaced the first run there).
	end, _ := slices.BinarySearchFunc(runs, seq+1, func(r state.OpTimes, s uint64) int { return cmp.Compare(r.First, s) })
	for i := end - 1; i >= 0; i-- {
		if seq <= runs[i].Last {
			return runs[i].At
		}
	}
	return 0
}

// History lists every version of p the op log knows, oldest first, and
// where each version's content can be had now. Connected peers are asked
// whether they have it (at most a few seconds each).
func (n *Node) History(ctx context.Context, p string) ([]HistoryEntry, error) {
	p = strings.Trim(p, "/")
	if err := checkPath(p); err != nil {
		return nil, err
	}
	times, err := n.recordTimes(ctx)
	if err != nil {
		return nil, err
	}
	ops, err := n.loggedOps(ctx, times, func(op oplog.Op) bool { return op.Path == p || op.NewPath == p })
	if err != nil {
		return nil, err
	}
	names := map[certs.DeviceID]string{}
	if peers, err := n.db.Peers(ctx); err == nil {
		for _, pr := range peers {
			names[pr.ID] = pr.Name
		}
	}
	names[n.id.ID] = "this device"
	var out []HistoryEntry
	for _, op := range ops {
		e := HistoryEntry{Device: op.Origin.String(), DeviceName: names[op.Origin], Path: p, Size: op.Size, op: op}
		if op.at > 0 {
			e.At = time.Unix(0, op.at).UTC()
		}
		switch op.Kind {
		case oplog.KindWrite:
			e.Change = "created or edited"
		case oplog.KindDelete:
			e.Change, e.Size = "deleted", 0
		case oplog.KindMkdir:
			e.Change = "made a directory"
		case oplog.KindRmdir:
			e.Change = "removed the directory"
		case oplog.KindRename:
			if op.NewPath == p {
				e.Change, e.Other = "renamed from", op.Path
			} else {
				e.Change, e.Other, e.Size = "renamed to", op.NewPath, 0
			}
		default:
			e.Change = op.Kind.String()
		}
		if e.Size > 0 || (op.Kind == oplog.KindWrite || op.Kind == oplog.KindRename && op.NewPath == p) && !op.Hash.IsZero() {
			e.Hash = op.Hash.String()
		}
		out = append(out, e)
	}
	n.locate(ctx, out)
	return out, nil
}

// locate fills in where each entry's content can be had now.
func (n *Node) locate(ctx context.Context, entries []HistoryEntry) {
	peers := n.fetchers()
	found := map[string][]string{}
	for i := range entries {
		e := &entries[i]
		if e.Hash == "" {
			continue
		}
		if where, ok := found[e.Hash]; ok {
			e.Where = where
			continue
		}
		h, size := e.op.Hash, e.op.Size
		var where []string
		if files, err := n.db.ContentFiles(ctx, h); err == nil && len(files) > 0 {
			where = append(where, "here")
		}
		if ok, err := n.db.HasVersionContent(ctx, h); err == nil && ok {
			where = append(where, "version store")
		}
		for _, p := range peers {
			if name, ok := n.peerHas(ctx, p, h, size); ok {
				where = append(where, "peer "+name)
			}
		}
		found[e.Hash], e.Where = where, where
	}
	for i := range entries {
		if entries[i].Where == nil {
			entries[i].Where = []string{}
		}
	}
}

// peerHas asks a connected peer whether it has content h: a fetch from
// the content's end, which carries no bytes.
func (n *Node) peerHas(ctx context.Context, p contentFetcher, h content.Hash, size int64) (string, bool) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	name := "?"
	if id, ok := peerIDOf(p); ok {
		name = id.Short()
		if pr, ok, err := n.db.Peer(ctx, id); err == nil && ok && pr.Name != "" {
			name = pr.Name
		}
	}
	_, err := p.Fetch(ctx, h, size, io.Discard)
	return name, err == nil
}
