package node

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"unsafe"

	"github.com/drive-node/drive-node/certs"
	"github.com/drive-node/drive-node/oplog"
	"github.com/drive-node/drive-node/vclock"
)

// An apply pass reads the pending ops (in the log, not yet applied) in
// windows: a peer that sends a million ops, or a million that wait for a
// content, does not make every pass (one every 3 s while anything waits)
// hold all of them in memory. A window is the next ops in causal order
// among the origins not blocked in the pass; it is applied, and the next
// one read, until none is left.
//
// applyWindowOps bounds the ops of a window, and applyWindowBytes their
// size in memory (opFootprint). An op is some 300 bytes as honest devices
// make them (a short path, a few version entries): 4,000 of them are
// about 1.2 MiB, and the batch index, the staged set and the records of a
// window take about as much again; the byte bound only binds for ops with
// long paths or large versions (one with MaxParents entries is some 70
// KiB: 60 of them fill 4 MiB). The pipeline of a pass (the contents of
// the next chunk are fetched while one is applied) goes on between
// windows too: while a window's last chunk is applied, the next window's
// first chunk is read and its small contents fetched (windowLead), so a
// pass holds a window and one chunk more. What a window holds depends on
// which origins the one before it blocked: once an op of the pass has
// failed, nothing is read ahead, and what was fetched for ops the next
// window leaves out is removed.
const (
	applyWindowOps   = 4 * applyChunk
	applyWindowBytes = 4 << 20
)

// opFootprint approximates the bytes op takes in memory: the struct, its
// paths and its version's entries.
func opFootprint(op oplog.Op) int {
	return int(unsafe.Sizeof(op)) + len(op.Path) + len(op.NewPath) + len(op.Parent)*int(unsafe.Sizeof(vclock.Entry{}))
}

// errStop ends a read of the log (Iterate) early; the reader drops it.
var errStop = errors.New("stop")

// pendingReader reads the pending ops of one pass in windows. It holds,
// per origin, where its next window starts, and a heap of the origins by
// the order key of the op there: a merge of the origins' ops that reads
// each op about once, and keeps no op beyond the window.
//
// The order is today's causal order, (Lamport, origin, sequence), with one
// difference that only a lying peer sees: an op is ordered by the highest
// Lamport clock of its origin's ops from the pass's first up to it, so an
// origin's ops stay in sequence order even when their clocks do not
// (honest devices' clocks grow with every op).
type pendingReader struct {
	log  opLog
	upto map[certs.DeviceID]uint64 // the log's vector when the pass began: what arrives later waits for the next pass
	next map[certs.DeviceID]uint64 // per origin, the sequence its next window starts at
	// heads holds one entry per origin with ops left in the pass; those
	// of origins blocked since are dropped when popped.
	heads            headHeap
	maxOps, maxBytes int
}

// newPendingReader starts a pass over the ops of upto (the log's vector)
// that applied (the database's) lacks: it reads the first pending op of
// each origin.
func newPendingReader(ctx context.Context, log opLog, applied, upto map[certs.DeviceID]uint64, maxOps, maxBytes int) (*pendingReader, error) {
	r := &pendingReader{log: log, upto: upto, next: map[certs.DeviceID]uint64{}, maxOps: maxOps, maxBytes: maxBytes}
	for origin, highest := range upto {
		if applied[origin] >= highest {
			continue
		}
		err := log.Iterate(ctx, origin, applied[origin]+1, func(op oplog.Op) error {
			r.startAt(op)
			return errStop
		})
		if err != nil && !errors.Is(err, errStop) {
			return nil, fmt.Errorf("read the first pending op of %s: %w", origin.Short(), err)
		}
	}
	return r, nil
}

// window returns the next ops in causal order, up to maxOps and maxBytes
// (one op at least), of the origins skip does not exclude. Nothing is
// left when it returns none.
func (r *pendingReader) window(ctx context.Context, skip func(certs.DeviceID) bool) ([]oplog.Op, error) {
	var out []oplog.Op
	size := 0
	for r.heads.Len() > 0 && len(out) < r.maxOps && size < r.maxBytes {
		h := heap.Pop(&r.heads).(orderKey)
		if skip(h.origin) {
			continue // the origin waits for the next pass
		}
		// The origin's ops are taken in one run of the log for as long as
		// they come before the next origin's first op.
		bound, bounded := orderKey{}, r.heads.Len() > 0
		if bounded {
			bound = r.heads[0]
		}
		key := h.key
		err := r.log.Iterate(ctx, h.origin, h.seq, func(op oplog.Op) error {
			if op.Seq > r.upto[h.origin] {
				r.next[h.origin] = op.Seq
				return errStop // arrived during the pass
			}
			if op.Seq != h.seq {
				key = max(key, op.Lamport)
				at := orderKey{key, h.origin, op.Seq}
				if len(out) >= r.maxOps || size >= r.maxBytes || bounded && bound.less(at) {
					r.next[h.origin] = op.Seq
					heap.Push(&r.heads, at)
					return errStop
				}
			}
			out = append(out, op)
			size += opFootprint(op)
			r.next[h.origin] = op.Seq + 1
			return nil
		})
		if err != nil && !errors.Is(err, errStop) {
			return nil, fmt.Errorf("read the pending ops of %s from %d: %w", h.origin.Short(), h.seq, err)
		}
	}
	return out, nil
}

// ahead returns a reader that reads on from where r is, up to maxOps
// ops a window, and leaves r where it is: the next window can be read
// before the one r returned last is applied (see applyWindow's lead).
func (r *pendingReader) ahead(maxOps int) *pendingReader {
	return &pendingReader{log: r.log, upto: r.upto, next: maps.Clone(r.next), heads: slices.Clone(r.heads),
		maxOps: maxOps, maxBytes: r.maxBytes}
}

// more reports whether the pass has ops left to read (some may turn out
// to be of origins blocked since).
func (r *pendingReader) more() bool { return r.heads.Len() > 0 }

// startAt makes op, its origin's first pending op, where the origin's
// part of the next window starts.
func (r *pendingReader) startAt(op oplog.Op) {
	r.next[op.Origin] = op.Seq
	heap.Push(&r.heads, orderKey{op.Lamport, op.Origin, op.Seq})
}

// readOrigin reads origin's ops from from up to upto, at most maxOps and
// maxBytes of them (one at least), and returns them with the sequence
// after the last.
func readOrigin(ctx context.Context, log opLog, origin certs.DeviceID, from, upto uint64, maxOps, maxBytes int) ([]oplog.Op, uint64, error) {
	var out []oplog.Op
	size := 0
	err := log.Iterate(ctx, origin, from, func(op oplog.Op) error {
		if op.Seq > upto || len(out) > 0 && (len(out) >= maxOps || size >= maxBytes) {
			return errStop
		}
		out = append(out, op)
		size += opFootprint(op)
		from = op.Seq + 1
		return nil
	})
	if err != nil && !errors.Is(err, errStop) {
		return nil, 0, fmt.Errorf("read the ops of %s from %d: %w", origin.Short(), from, err)
	}
	return out, from, nil
}

// orderKey places an op in the order a pass applies ops in.
type orderKey struct {
	key    uint64 // Lamport clock (see pendingReader)
	origin certs.DeviceID
	seq    uint64
}

func (a orderKey) less(b orderKey) bool {
	if a.key != b.key {
		return a.key < b.key
	}
	if a.origin != b.origin {
		return string(a.origin[:]) < string(b.origin[:])
	}
	return a.seq < b.seq
}

// headHeap is a min-heap of orderKeys (container/heap).
type headHeap []orderKey

func (h headHeap) Len() int           { return len(h) }
func (h headHeap) Less(i, j int) bool { return h[i].less(h[j]) }
func (h headHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *headHeap) Push(x any)        { *h = append(*h, x.(orderKey)) }
func (h *headHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
