// Package oplog is drive-node's durable record of every accepted change: an
// append-only log of operations kept in pebble, keyed by (origin device,
// sequence).
//
// Guarantees:
//   - Append and Insert return only after the ops are synced to disk (one
//     pebble WAL fsync per commit group); an op that was returned to a
//     caller survives any crash.
//   - Local sequences are assigned at commit time, so a crash can never
//     make the log hand out a sequence that an acknowledged op already has.
//   - A sequence is never seen by anyone before it is durable. Pebble shows
//     a committed batch to readers before its WAL fsync has finished, and
//     keeps showing it if that fsync fails, so Iterate and Get stop at
//     each origin's highest sequence as of the last successful commit (the
//     one Highest and Vector report), not at what pebble would show.
//   - A failed disk never ends the process. A commit that fails, a failed
//     WAL write or fsync (which pebble reports as fatal), or a fatal error
//     in pebble's own goroutines (a MANIFEST that cannot be written) stops
//     the log: the batch might be shown by pebble and might be on disk, so
//     its sequences can be neither reused nor counted as stored. Failed is
//     closed, Err says why (wrapping ErrFailed and naming the directory),
//     and every later Append and Insert returns that error until the log
//     is opened again (Open then reads back whatever the disk holds).
//   - Each origin's ops are stored contiguously from 1: Insert refuses an op
//     that would leave a gap, and ignores ones already present.
//   - The log holds only ops a peer accepts (see MaxParents and the other
//     limits): Append and Insert refuse a call with an op outside them,
//     storing none of it, and Insert refuses an op whose origin would be
//     one more than MaxOrigins (the ops before it in the call are stored).
//   - Concurrent callers are grouped: everything waiting when a commit
//     starts shares the next fsync.
package oplog

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sync"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/drive-node/drive-node/certs"
)

// ErrGap is returned by Insert when an op's sequence is not the next one
// expected from its origin.
var ErrGap = errors.New("oplog: sequence gap")

// ErrClosed is returned by calls made after Close.
var ErrClosed = errors.New("oplog: closed")

// ErrFailed is wrapped by the error of a commit that failed, by Err once
// the log has failed (a commit or the disk under it), and by the error of
// every Append and Insert after that: the log must be closed and opened
// again.
var ErrFailed = errors.New("oplog: failed; the log takes no more ops until it is reopened")

// Key prefixes. An op lives at 'o'+origin+seq (big-endian, so pebble's
// order is sequence order); 'h'+origin holds the origin's highest sequence,
// written in the same batch as the op, and 'l' the highest Lamport clock.
const (
	prefixOp      = 'o'
	prefixHighest = 'h'
	keyLamport    = "l"
)

// Log is an open op log. It is safe for concurrent use.
type Log struct {
	db   *pebble.DB
	self certs.DeviceID
	dir  string

	reqs   chan *request
	done   chan struct{}
	closed sync.Once

	commitBatch func(*pebble.Batch) error // b.Commit(pebble.Sync); tests make it fail
	fail        *failure                  // shared with pebble's logger

	mu      sync.RWMutex // guards highest and lamport (read by Vector, written by committer)
	highest map[certs.DeviceID]uint64
	lamport uint64
}

type request struct {
	ops    []Op
	local  bool
	result []Op
	err    error
	done   chan struct{}
}

// Open opens (creating if needed) the op log in dir for the device self.
// The log reports through logger (pebble's messages at debug level, its
// fatal errors at error level); nil discards them.
func Open(dir string, self certs.DeviceID, logger *slog.Logger) (*Log, error) {
	return OpenFS(dir, self, logger, privateFS{vfs.Default})
}

// OpenFS is Open on the file system fs instead of the operating system's
// (tests pass one that injects faults). Whatever fs does, the log does not
// panic or end the process: a failed write stops the log (see Failed).
func OpenFS(dir string, self certs.DeviceID, logger *slog.Logger, fs vfs.FS) (*Log, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	fail := newFailure(dir)
	// A small cache and memtable: ops are written once and read mostly
	// in order (catch-up), so large caches buy little on a small board.
	// Two memtables are resident (one being filled, one kept for reuse).
	// In the LAN benchmark 1.5 MiB left the daemons 1-2 MiB smaller than
	// 2 MiB at the same small-file speed; 1 MiB cost a sixth of that speed.
	cache := pebble.NewCache(4 << 20)
	defer cache.Unref()
	var db *pebble.DB
	err := fail.guard(false, func() (err error) {
		db, err = pebble.Open(dir, &pebble.Options{Logger: pebbleLogger{logger, fail}, Cache: cache, MemTableSize: 1536 << 10, FS: fs})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("oplog: open %s: %w", dir, err)
	}
	l := &Log{db: db, self: self, dir: dir, reqs: make(chan *request, 1024), done: make(chan struct{}), fail: fail, highest: map[certs.DeviceID]uint64{}}
	l.commitBatch = func(b *pebble.Batch) error { return b.Commit(pebble.Sync) }
	if err := fail.guard(false, l.load); err != nil {
		if fail.closable() {
			db.Close()
		}
		return nil, err
	}
	go l.commitLoop()
	return l, nil
}

func (l *Log) load() error {
	it, err := l.db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixHighest}, UpperBound: []byte{prefixHighest + 1}})
	if err != nil {
		return fmt.Errorf("oplog: read %s: %w", l.dir, err)
	}
	for ok := it.First(); ok; ok = it.Next() {
		k, v := it.Key(), it.Value()
		if len(k) != 33 || len(v) != 8 {
			it.Close()
			return fmt.Errorf("oplog: %s: corrupt highest-sequence record %x", l.dir, k)
		}
		var id certs.DeviceID
		copy(id[:], k[1:])
		l.highest[id] = binary.BigEndian.Uint64(v)
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("oplog: read %s: %w", l.dir, err)
	}
	v, closer, err := l.db.Get([]byte(keyLamport))
	switch {
	case errors.Is(err, pebble.ErrNotFound):
	case err != nil:
		return fmt.Errorf("oplog: read %s: %w", l.dir, err)
	default:
		l.lamport = binary.BigEndian.Uint64(v)
		closer.Close()
	}
	return nil
}

// Close waits for pending commits and closes the log. After a failure it
// does not block on pebble: if pebble was left holding its own locks (a
// fatal error in one of its goroutines), the database is abandoned rather
// than closed, and Close returns an error saying so; its files stay locked
// until the process ends.
func (l *Log) Close() error {
	var err error
	l.closed.Do(func() {
		close(l.reqs)
		select {
		case <-l.done:
		case <-l.fail.stuck:
			// The committer may be held by pebble for good.
		}
		if !l.fail.closable() {
			err = fmt.Errorf("oplog: %s left open: pebble is unusable after %w", l.dir, l.fail.get())
			return
		}
		err = l.fail.guard(false, l.db.Close)
	})
	return err
}

// Failed is closed once the log has stopped taking ops: a commit failed or
// the disk under it did. Err then says why. It is never closed by Close.
func (l *Log) Failed() <-chan struct{} { return l.fail.ch }

// Err returns nil while the log takes ops; once Failed is closed, the
// error that stopped it, which wraps ErrFailed and names the log's
// directory (and, when pebble gave one, wraps the cause: a disk-full error
// is errors.Is syscall.ENOSPC).
func (l *Log) Err() error { return l.fail.get() }

// Self returns the device whose local ops this log numbers.
func (l *Log) Self() certs.DeviceID { return l.self }

// Append durably records ops made on this device. Origin, Seq and Lamport
// of each op are assigned here; the ops are returned as stored, in order,
// once synced. A call with an op Validate refuses stores nothing and fails
// with its error, which wraps ErrInvalid.
func (l *Log) Append(ctx context.Context, ops ...Op) ([]Op, error) {
	return l.submit(ctx, ops, true)
}

// Insert durably records ops received from peers, as they are. Ops already
// in the log are skipped; the ops newly stored are returned in order. An op
// whose sequence would leave a gap fails the call with ErrGap, and one of
// an origin past MaxOrigins with ErrTooManyOrigins; the ops before it in
// the same call are stored. A call with an op Validate refuses stores
// nothing and fails with its error.
func (l *Log) Insert(ctx context.Context, ops ...Op) ([]Op, error) {
	return l.submit(ctx, ops, false)
}

func (l *Log) submit(ctx context.Context, ops []Op, local bool) (out []Op, err error) {
	defer func() {
		if r := recover(); r != nil { // send on closed channel
			out, err = nil, ErrClosed
		}
	}()
	if len(ops) == 0 {
		return nil, nil
	}
	// Checked before the committer sees any: a request is stored whole or,
	// for an op outside the limits, not at all.
	for _, op := range ops {
		if err := op.Validate(); err != nil {
			return nil, fmt.Errorf("oplog: none of %d ops stored: %w", len(ops), err)
		}
	}
	if err := l.fail.get(); err != nil {
		return nil, err
	}
	r := &request{ops: ops, local: local, done: make(chan struct{})}
	select {
	case l.reqs <- r:
	case <-l.fail.ch:
		return nil, l.fail.get()
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	// Once queued the request is committed whatever ctx does: the caller
	// may stop waiting, but the op is not lost or half-written. A failure
	// answers it too, as the committer may be held by pebble for good; a
	// request already answered keeps its answer.
	select {
	case <-r.done:
		return r.result, r.err
	case <-l.fail.ch:
		select {
		case <-r.done:
			return r.result, r.err
		default:
			return nil, l.fail.get()
		}
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// maxGroup bounds how many requests share one commit, so one huge group
// cannot delay everyone behind it indefinitely.
const maxGroup = 4096

func (l *Log) commitLoop() {
	defer close(l.done)
	for first := range l.reqs {
		group := []*request{first}
	drain:
		for len(group) < maxGroup {
			select {
			case r, ok := <-l.reqs:
				if !ok {
					break drain
				}
				group = append(group, r)
			default:
				break drain
			}
		}
		l.commit(group)
	}
}

func (l *Log) commit(group []*request) {
	if failed := l.fail.get(); failed != nil {
		for _, r := range group {
			r.err = failed
			close(r.done)
		}
		return
	}
	l.mu.RLock()
	highest := maps.Clone(l.highest)
	lamport := l.lamport
	l.mu.RUnlock()

	b := l.db.NewBatch()
	defer b.Close()
	touched := map[certs.DeviceID]bool{}
	var buf []byte
	for _, r := range group {
		for _, op := range r.ops {
			if r.local {
				op.Origin = l.self
				op.Seq = highest[l.self] + 1
				lamport++
				op.Lamport = lamport
			} else {
				have := highest[op.Origin]
				if op.Seq <= have {
					continue
				}
				if op.Origin == l.self {
					r.err = fmt.Errorf("%w: %s after %d", ErrOwnOrigin, op, have)
					break
				}
				if op.Lamport > MaxLamport {
					r.err = fmt.Errorf("%w: %s: Lamport clock %d, over %d", ErrInvalid, op, op.Lamport, uint64(MaxLamport))
					break
				}
				if op.Seq != have+1 || op.Origin.IsZero() {
					r.err = fmt.Errorf("%w: %s after %d", ErrGap, op, have)
					break
				}
				if have == 0 && !roomForOrigin(highest, l.self) {
					r.err = fmt.Errorf("%w: %s would be origin %d, over the %d a Hello lists", ErrTooManyOrigins, op, len(highest)+1, MaxOrigins)
					break
				}
				lamport = max(lamport, op.Lamport)
			}
			var err error
			buf, err = op.AppendBinary(buf[:0])
			if err != nil {
				r.err = err
				break
			}
			if err := b.Set(opKey(op.Origin, op.Seq), buf, nil); err != nil {
				r.err = fmt.Errorf("oplog: stage %s: %w", op, err)
				break
			}
			highest[op.Origin] = op.Seq
			touched[op.Origin] = true
			r.result = append(r.result, op)
		}
	}
	for id := range touched {
		b.Set(highestKey(id), binary.BigEndian.AppendUint64(nil, highest[id]), nil)
	}
	b.Set([]byte(keyLamport), binary.BigEndian.AppendUint64(nil, lamport), nil)
	// pebble reports a failed WAL write or fsync through Logger.Fatalf,
	// which the guard turns into the error returned here.
	if err := l.fail.guard(true, func() error { return l.commitBatch(b) }); err != nil {
		// highest and lamport stay as they were, so readers never see the
		// batch; nothing is committed after it (see the package comment).
		failed := l.fail.set(fmt.Errorf("%w: commit to %s: %w", ErrFailed, l.dir, err))
		for _, r := range group {
			r.result, r.err = nil, failed
			close(r.done)
		}
		return
	}
	l.mu.Lock()
	l.highest, l.lamport = highest, lamport
	l.mu.Unlock()
	for _, r := range group {
		close(r.done)
	}
}

// Vector returns, for every origin, the highest sequence in the log. The
// returned map is the caller's.
func (l *Log) Vector() map[certs.DeviceID]uint64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return maps.Clone(l.highest)
}

// Highest returns the highest sequence stored for origin (0 if none).
func (l *Log) Highest(origin certs.DeviceID) uint64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.highest[origin]
}

// Lamport returns the highest Lamport clock in the log.
func (l *Log) Lamport() uint64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.lamport
}

// Count returns the number of ops in the log.
func (l *Log) Count() uint64 {
	var n uint64
	for _, s := range l.Vector() {
		n += s
	}
	return n
}

// Iterate calls fn for each op of origin with sequence >= from, in sequence
// order, until fn returns an error (which Iterate returns) or the ops run
// out. It stops at Highest(origin) as of the call: ops committed while
// iterating are not seen.
func (l *Log) Iterate(ctx context.Context, origin certs.DeviceID, from uint64, fn func(Op) error) error {
	return l.iterate(ctx, origin, from, l.Highest(origin)+1, fn)
}

// iterate is Iterate over the sequences from from up to, not including,
// below, which may be past what is durable.
func (l *Log) iterate(ctx context.Context, origin certs.DeviceID, from, below uint64, fn func(Op) error) error {
	if from >= below {
		return nil
	}
	return l.fail.guard(false, func() error { return l.iterateUnguarded(ctx, origin, from, below, fn) })
}

func (l *Log) iterateUnguarded(ctx context.Context, origin certs.DeviceID, from, below uint64, fn func(Op) error) error {
	it, err := l.db.NewIter(&pebble.IterOptions{LowerBound: opKey(origin, from), UpperBound: opKey(origin, below)})
	if err != nil {
		return fmt.Errorf("oplog: iterate %s: %w", origin.Short(), err)
	}
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		if err := ctx.Err(); err != nil {
			return err
		}
		var op Op
		if err := op.unmarshalStored(it.Value()); err != nil {
			return fmt.Errorf("oplog: %s: op %x: %w", l.dir, it.Key(), err)
		}
		if err := fn(op); err != nil {
			return err
		}
	}
	return it.Error()
}

// Get returns the op of origin with sequence seq, if the log has it (up
// to Highest(origin), like Iterate).
func (l *Log) Get(origin certs.DeviceID, seq uint64) (op Op, found bool, err error) {
	if seq > l.Highest(origin) {
		return Op{}, false, nil
	}
	err = l.fail.guard(false, func() (err error) {
		op, found, err = l.get(origin, seq)
		return err
	})
	return op, found, err
}

func (l *Log) get(origin certs.DeviceID, seq uint64) (Op, bool, error) {
	v, closer, err := l.db.Get(opKey(origin, seq))
	if errors.Is(err, pebble.ErrNotFound) {
		return Op{}, false, nil
	}
	if err != nil {
		return Op{}, false, fmt.Errorf("oplog: get %s#%d: %w", origin.Short(), seq, err)
	}
	defer closer.Close()
	var op Op
	if err := op.unmarshalStored(v); err != nil {
		return Op{}, false, fmt.Errorf("oplog: %s: op %s#%d: %w", l.dir, origin.Short(), seq, err)
	}
	return op, true, nil
}

// roomForOrigin reports whether a log holding highest takes ops of one
// more origin other than self. One place is kept for self, so that the
// ops of others never stop this device from recording its own changes.
func roomForOrigin(highest map[certs.DeviceID]uint64, self certs.DeviceID) bool {
	n := len(highest)
	if _, ok := highest[self]; !ok {
		n++
	}
	return n < MaxOrigins
}

func opKey(origin certs.DeviceID, seq uint64) []byte {
	k := make([]byte, 0, 41)
	k = append(k, prefixOp)
	k = append(k, origin[:]...)
	return binary.BigEndian.AppendUint64(k, seq)
}

func highestKey(origin certs.DeviceID) []byte {
	return append([]byte{prefixHighest}, origin[:]...)
}

// Check reads the whole log and returns an error naming the first problem
// found, or nil when every origin's ops are present without a gap from 1
// to its highest sequence, each decodes and sits under its own key.
func (l *Log) Check(ctx context.Context) error {
	for origin, highest := range l.Vector() {
		next := uint64(1)
		// Past highest as well: a record there is a fault too.
		err := l.iterate(ctx, origin, 1, ^uint64(0), func(op Op) error {
			if op.Origin != origin || op.Seq != next {
				return fmt.Errorf("oplog: %s: found %s where %s#%d belongs", l.dir, op, origin.Short(), next)
			}
			next++
			return nil
		})
		if err != nil {
			return err
		}
		if next-1 != highest {
			return fmt.Errorf("oplog: %s: %s has ops 1..%d, its highest record says %d", l.dir, origin.Short(), next-1, highest)
		}
	}
	return nil
}
