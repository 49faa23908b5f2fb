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
//   - Every op is shown to come from its origin (see Insert): this
//     device's ops are chained and signed with its key as they are
//     committed; a peer's are taken only from an origin whose key the
//     log holds (AddOrigin), chained to the op before them and covered
//     by a signature that verifies. A different op for a sequence the log
//     holds is refused (ErrConflict), never swapped in.
//   - Concurrent callers are grouped: everything waiting when a commit
//     starts shares the next fsync.
package oplog

import (
	"context"
	"crypto"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
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
// written in the same batch as the op, 'l' the highest Lamport clock, and
// 'k'+origin the voucher and key of an origin (see AddOrigin).
const (
	prefixOp      = 'o'
	prefixHighest = 'h'
	prefixKey     = 'k'
	keyLamport    = "l"
)

// Log is an open op log. It is safe for concurrent use.
type Log struct {
	db   *pebble.DB
	self certs.DeviceID
	key  crypto.Signer
	dir  string

	reqs   chan *request
	done   chan struct{}
	closed sync.Once

	commitBatch func(*pebble.Batch) error // b.Commit(pebble.Sync); tests make it fail
	fail        *failure                  // shared with pebble's logger

	mu      sync.RWMutex // guards the fields below (read by all, written by the committer)
	highest map[certs.DeviceID]uint64
	tips    map[certs.DeviceID]tip // each origin's highest op
	lamport uint64
	origins map[certs.DeviceID]origin
	folded  map[certs.DeviceID]uint64 // see Folded
}

// tip is what the log keeps in memory of an origin's highest op, to
// check the next one against.
type tip struct {
	link    Link
	lamport uint64
	legacy  bool
}

type request struct {
	ops     []Op
	local   bool
	from    certs.DeviceID            // the peer that sent ops (Insert)
	links   []Link                    // ops' Links (Insert), computed by the caller
	refused map[certs.DeviceID]error  // origins whose ops are not stored (Insert)
	origin  *origin                   // a key to record (AddOrigin), instead of ops
	fold    *foldRequest              // ops to remove (Fold), instead of ops
	folded  map[certs.DeviceID]uint64 // gaps the peer folded (InsertFolded)
	result  []Op
	err     error
	done    chan struct{}
}

// refuse notes why origin o's ops in r are not stored, if not noted yet.
func (r *request) refuse(o certs.DeviceID, err error) {
	if r.refused == nil {
		r.refused = map[certs.DeviceID]error{}
	}
	if r.refused[o] == nil {
		r.refused[o] = err
	}
}

// InsertError is Insert's error when it refused the ops of some origins
// in a call and stored the others'. Each refused origin's error says why
// and wraps the reason: ErrUnauthenticated, ErrConflict, ErrGap,
// ErrInvalid, ErrOwnOrigin or ErrTooManyOrigins.
type InsertError struct {
	Refused map[certs.DeviceID]error
}

func (e *InsertError) Error() string {
	errs := make([]string, 0, len(e.Refused))
	for _, err := range e.Refused {
		errs = append(errs, err.Error())
	}
	slices.Sort(errs)
	return fmt.Sprintf("oplog: the ops of %d origins were refused: %s", len(e.Refused), strings.Join(errs, "; "))
}

// Unwrap returns each refused origin's error.
func (e *InsertError) Unwrap() []error {
	out := make([]error, 0, len(e.Refused))
	for _, err := range e.Refused {
		out = append(out, err)
	}
	return out
}

// Open opens (creating if needed) the op log in dir for the device whose
// key signs its ops (the key of its certificate: the device ID is the
// hash of its public key). The log reports through logger (pebble's
// messages at debug level, its fatal errors at error level); nil discards
// them.
func Open(dir string, key crypto.Signer, logger *slog.Logger) (*Log, error) {
	return OpenFS(dir, key, logger, privateFS{vfs.Default})
}

// OpenFS is Open on the file system fs instead of the operating system's
// (tests pass one that injects faults). Whatever fs does, the log does not
// panic or end the process: a failed write stops the log (see Failed).
func OpenFS(dir string, key crypto.Signer, logger *slog.Logger, fs vfs.FS) (*Log, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	own, err := signerKey(key)
	if err != nil {
		return nil, err
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
	err = fail.guard(false, func() (err error) {
		opts := &pebble.Options{Logger: pebbleLogger{logger, fail}, Cache: cache, MemTableSize: 1536 << 10, FS: fs}
		opts.Experimental.CompactionScheduler = newGrantScheduler()
		db, err = pebble.Open(dir, opts)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("oplog: open %s: %w", dir, err)
	}
	l := &Log{
		db: db, self: own.ID, key: key, dir: dir, reqs: make(chan *request, 1024), done: make(chan struct{}), fail: fail,
		highest: map[certs.DeviceID]uint64{}, tips: map[certs.DeviceID]tip{}, origins: map[certs.DeviceID]origin{},
		folded: map[certs.DeviceID]uint64{},
	}
	l.commitBatch = func(b *pebble.Batch) error { return b.Commit(pebble.Sync) }
	if err := fail.guard(false, l.load); err != nil {
		if fail.closable() {
			db.Close()
		}
		return nil, err
	}
	go l.commitLoop()
	if err := l.AddOrigin(context.Background(), own, own.ID); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

func (l *Log) load() error {
	if err := l.loadSequences(prefixHighest, "highest-sequence", l.highest); err != nil {
		return err
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
	if err := l.loadOrigins(); err != nil {
		return err
	}
	if err := l.loadSequences(prefixFolded, "folded", l.folded); err != nil {
		return err
	}
	for id, seq := range l.highest {
		op, found, err := l.get(id, seq)
		if err != nil {
			return err
		}
		if !found {
			return fmt.Errorf("oplog: %s: %s#%d, its highest op, is missing", l.dir, id.Short(), seq)
		}
		l.tips[id] = tip{link: op.Link(), lamport: op.Lamport, legacy: op.Legacy}
	}
	return nil
}

// loadSequences reads the records under prefix, each an origin's
// sequence (prefix+origin, 8 bytes big-endian), into into.
func (l *Log) loadSequences(prefix byte, what string, into map[certs.DeviceID]uint64) error {
	it, err := l.db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefix}, UpperBound: []byte{prefix + 1}})
	if err != nil {
		return fmt.Errorf("oplog: read %s: %w", l.dir, err)
	}
	for ok := it.First(); ok; ok = it.Next() {
		k, v := it.Key(), it.Value()
		if len(k) != 33 || len(v) != 8 {
			it.Close()
			return fmt.Errorf("oplog: %s: corrupt %s record %x", l.dir, what, k)
		}
		var id certs.DeviceID
		copy(id[:], k[1:])
		into[id] = binary.BigEndian.Uint64(v)
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("oplog: read %s: %w", l.dir, err)
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

// Append durably records ops made on this device. Origin, Seq, Lamport
// and Prev of each op are assigned here, and the last op (and one in
// MaxUnsignedRun, see there) is signed; the ops are returned as stored, in order,
// once synced. A call with an op Validate refuses stores nothing and fails
// with its error, which wraps ErrInvalid.
func (l *Log) Append(ctx context.Context, ops ...Op) ([]Op, error) {
	if err := validateAll(ops); err != nil {
		return nil, err
	}
	return l.submit(ctx, &request{ops: ops, local: true})
}

// Insert durably records ops that the peer from sent, as they are, and
// returns those newly stored, in order; ops already in the log are
// skipped. The ops of an origin that fail a check below are refused, and
// the other origins' ops go on: the error is then an *InsertError naming
// each refused origin and why. Of a refused origin, the ops of the call
// before the failing one are stored only when a signature covers them;
// when the failure is one of authentication, none are.
//
// Each op must be shown to come from its origin (ErrUnauthenticated): the
// log holds the origin's key (AddOrigin); the op's Prev is the Link of the
// origin's op before it, in the call or in the log; each Sig verifies with
// that key; no more than MaxUnsignedRun-1 ops or MaxUnsignedBytes follow
// each other unsigned; and each origin's last op in the call is signed,
// so that its signature covers the ops before it. A Legacy op is taken
// only from its origin itself (from), whose connection is its proof.
//
// An op must also continue its origin's ops without a gap (ErrGap); be
// the op the log holds, for a sequence it holds (ErrConflict); not name
// this device (ErrOwnOrigin); not be of an origin past MaxOrigins
// (ErrTooManyOrigins); and carry a sequence of at least 1 and a Lamport
// clock within MaxLamport, at most MaxLamportJump past the log's as the
// call began, and past its origin's previous op's (ErrInvalid). A call
// with an op Validate refuses stores nothing and fails with its error.
func (l *Log) Insert(ctx context.Context, from certs.DeviceID, ops ...Op) ([]Op, error) {
	return l.insert(ctx, from, nil, ops)
}

func (l *Log) insert(ctx context.Context, from certs.DeviceID, folded map[certs.DeviceID]uint64, ops []Op) ([]Op, error) {
	if err := validateAll(ops); err != nil {
		return nil, err
	}
	if err := l.fail.get(); err != nil {
		return nil, err
	}
	links, refused := l.authenticate(from, folded, ops)
	r := &request{ops: ops, from: from, links: links, refused: refused, folded: folded}
	var stored []Op
	var err error
	if slices.ContainsFunc(ops, func(op Op) bool { return refused[op.Origin] == nil }) {
		stored, err = l.submit(ctx, r)
	}
	if err == nil && len(r.refused) > 0 {
		err = &InsertError{Refused: r.refused}
	}
	return stored, err
}

// validateAll checks ops before the committer sees any: a call is stored
// whole or, for an op outside the limits, not at all.
func validateAll(ops []Op) error {
	for _, op := range ops {
		if err := op.Validate(); err != nil {
			return fmt.Errorf("oplog: none of %d ops stored: %w", len(ops), err)
		}
	}
	return nil
}

func (l *Log) submit(ctx context.Context, r *request) (out []Op, err error) {
	defer func() {
		if r := recover(); r != nil { // send on closed channel
			out, err = nil, ErrClosed
		}
	}()
	if len(r.ops) == 0 && r.origin == nil && r.fold == nil {
		return nil, nil
	}
	if err := l.fail.get(); err != nil {
		return nil, err
	}
	r.done = make(chan struct{})
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
	c := &commit{
		l: l, highest: maps.Clone(l.highest), tips: maps.Clone(l.tips), lamport: l.lamport,
		touched: map[certs.DeviceID]bool{}, staged: map[string]Link{},
		folded: maps.Clone(l.folded), foldedTouched: map[certs.DeviceID]bool{},
	}
	l.mu.RUnlock()
	c.b = l.db.NewBatch()
	defer c.b.Close()
	for _, r := range group {
		switch {
		case r.origin != nil:
			c.stageOrigin(r)
		case r.fold != nil:
			c.stageFold(r)
		case r.local:
			c.stageLocal(r)
		default:
			c.stageRemote(r)
		}
	}
	for id := range c.touched {
		c.b.Set(highestKey(id), binary.BigEndian.AppendUint64(nil, c.highest[id]), nil)
	}
	for id := range c.foldedTouched {
		c.b.Set(foldedKey(id), binary.BigEndian.AppendUint64(nil, c.folded[id]), nil)
	}
	c.b.Set([]byte(keyLamport), binary.BigEndian.AppendUint64(nil, c.lamport), nil)
	// Folded is raised before the batch is committed: pebble shows the
	// removals to readers as soon as it commits, and a reader that found
	// a gap Folded does not cover would take it for a missing op. Saying
	// "may lack" early is harmless.
	if len(c.foldedTouched) > 0 {
		l.mu.Lock()
		raised := maps.Clone(l.folded)
		for o := range c.foldedTouched {
			raised[o] = max(raised[o], c.folded[o])
		}
		l.folded = raised
		l.mu.Unlock()
	}
	// pebble reports a failed WAL write or fsync through Logger.Fatalf,
	// which the guard turns into the error returned here.
	if err := l.fail.guard(true, func() error { return l.commitBatch(c.b) }); err != nil {
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
	l.highest, l.tips, l.lamport, l.folded = c.highest, c.tips, c.lamport, c.folded
	for _, o := range c.origins {
		l.origins[o.key.ID] = o
	}
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

// Count returns the number of ops the log has taken: the sum of every
// origin's highest sequence, the ops folded away included.
func (l *Log) Count() uint64 {
	var n uint64
	for _, s := range l.Vector() {
		n += s
	}
	return n
}

// Iterate calls fn for each op of origin with sequence >= from that the
// log holds (it may lack ones up to Folded(origin)), in sequence order, until fn returns an error (which Iterate returns) or the ops run
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
// (or from past Folded) to its highest sequence, each decodes and sits
// under its own key.
func (l *Log) Check(ctx context.Context) error {
	for origin, highest := range l.Vector() {
		folded := l.Folded(origin)
		next := uint64(1)
		// Past highest as well: a record there is a fault too.
		err := l.iterate(ctx, origin, 1, ^uint64(0), func(op Op) error {
			if op.Seq > next && op.Seq-1 <= folded {
				next = op.Seq
			}
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
