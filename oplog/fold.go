package oplog

import (
	"context"
	"fmt"
	"slices"

	"github.com/cockroachdb/pebble/v2"
	"github.com/drive-node/drive-node/certs"
)

// Folding. An op that later ops have superseded everywhere it matters
// tells no device anything the ops after it do not: a device that lacks
// it takes the op that superseded it and ends the same. Fold removes such
// ops, so a log's size follows the folder rather than its history.
// Deciding which ops are superseded needs the folder's records, which the
// log does not hold; the caller decides, and the log keeps to what it
// guarantees:
//   - an origin's highest op is never folded: it is the tip the next op
//     chains to, and what Vector and a peer's catch-up start from;
//   - every run of an origin's ops the log keeps ends in a signed op, so
//     each run stays proven by its origin's signature: an op whose
//     previous op is kept and unsigned is not folded, unless the origin is
//     this device, which signs that previous op then;
//   - legacy ops are never folded: they carry no proof of their own.
//
// Folded(origin) is the highest sequence at or below which the log may
// lack ops of origin. A peer that sends ops from a folded log says so
// first (InsertFolded takes that word), and the receiver's log then has
// the same gaps and says so in turn.

// prefixFolded+origin holds Folded(origin), written in the batch that
// removed the ops or took ops across a gap.
const prefixFolded = 'f'

func foldedKey(origin certs.DeviceID) []byte {
	return append([]byte{prefixFolded}, origin[:]...)
}

// Folded returns the highest sequence of origin at or below which the log
// may lack ops (they were folded here, or by the peer they came from); 0
// when it holds every op of origin up to Highest.
func (l *Log) Folded(origin certs.DeviceID) uint64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.folded[origin]
}

// foldRequest is a Fold call for the committer.
type foldRequest struct {
	origin  certs.DeviceID
	seqs    []uint64 // ascending, no repeats
	dropped int
}

// Fold durably removes the ops of origin with sequences in seqs, except
// those the log must keep (see the package's folding rules above: the
// origin's highest op, an op whose previous op is kept and unsigned and
// of another device, a legacy op). It returns how many it removed. Sequences the log does not
// hold are passed over. Whether an op may go is the caller's to decide;
// the log only keeps itself provable.
func (l *Log) Fold(ctx context.Context, origin certs.DeviceID, seqs []uint64) (int, error) {
	seqs = slices.Clone(seqs)
	slices.Sort(seqs)
	seqs = slices.Compact(seqs)
	seqs = slices.DeleteFunc(seqs, func(s uint64) bool { return s == 0 })
	if len(seqs) == 0 {
		return 0, nil
	}
	f := &foldRequest{origin: origin, seqs: seqs}
	if _, err := l.submit(ctx, &request{fold: f}); err != nil {
		return 0, err
	}
	return f.dropped, nil
}

// stageFold stages the removals r asks for. It reads only what is
// committed: the ops staged in this group are all past the origin's
// committed highest, which no fold reaches.
func (c *commit) stageFold(r *request) {
	f := r.fold
	top := c.l.highest[f.origin] // committed; only the committer writes it
	seqs := f.seqs
	if i, _ := slices.BinarySearch(seqs, top); i < len(seqs) {
		seqs = seqs[:i]
	}
	if len(seqs) == 0 {
		return
	}
	want := make(map[uint64]bool, len(seqs))
	for _, s := range seqs {
		want[s] = true
	}
	it, err := c.l.db.NewIter(&pebble.IterOptions{
		LowerBound: opKey(f.origin, seqs[0]-1), UpperBound: opKey(f.origin, seqs[len(seqs)-1]+1),
	})
	if err != nil {
		r.err = fmt.Errorf("oplog: fold %s: %w", f.origin.Short(), err)
		return
	}
	defer it.Close()
	var (
		prev          Op // the op before this one, if prevSeq is set
		prevSeq       uint64
		prevKeptUnsig bool // op prevSeq is kept and unsigned
		dropped       []uint64
		signed        []Op // this device's kept ops, signed now to end their runs
	)
	own := f.origin == c.l.self
	for ok := it.First(); ok; ok = it.Next() {
		var op Op
		if err := op.unmarshalStored(it.Value()); err != nil {
			r.err = fmt.Errorf("oplog: %s: op %x: %w", c.l.dir, it.Key(), err)
			return
		}
		// A kept, unsigned op right before this one would end its run
		// unproven if this one went: this device signs its own now (the
		// signature covers the op's Link, which does not change); a
		// peer's keeps the op.
		blocked := op.Seq == prevSeq+1 && prevKeptUnsig
		if want[op.Seq] && !op.Legacy && blocked && own {
			sig, err := sign(c.l.key, prev.Link())
			if err != nil {
				r.err = err
				return
			}
			prev.Sig = sig
			signed = append(signed, prev)
			blocked = false
		}
		if want[op.Seq] && !blocked && !op.Legacy {
			dropped = append(dropped, op.Seq)
			prev, prevSeq, prevKeptUnsig = op, op.Seq, false
			continue
		}
		prev, prevSeq, prevKeptUnsig = op, op.Seq, len(op.Sig) == 0 && !op.Legacy
	}
	if err := it.Error(); err != nil {
		r.err = fmt.Errorf("oplog: fold %s: %w", f.origin.Short(), err)
		return
	}
	if len(dropped) == 0 {
		return
	}
	// Signed first, raised first: what is staged before a failure below
	// is committed with the rest, and must leave every run proven and
	// every gap named.
	for _, op := range signed {
		if c.buf, err = op.AppendBinary(c.buf[:0]); err == nil {
			err = c.b.Set(opKey(op.Origin, op.Seq), c.buf, nil)
		}
		if err != nil {
			r.err = fmt.Errorf("oplog: fold: sign %s: %w", op, err)
			return
		}
	}
	c.raiseFolded(f.origin, dropped[len(dropped)-1])
	for _, s := range dropped {
		if err := c.b.Delete(opKey(f.origin, s), nil); err != nil {
			r.err = fmt.Errorf("oplog: fold %s#%d: %w", f.origin.Short(), s, err)
			return
		}
		f.dropped++
	}
}

// raiseFolded notes that origin may lack ops up to seq.
func (c *commit) raiseFolded(origin certs.DeviceID, seq uint64) {
	if seq > c.folded[origin] {
		c.folded[origin] = seq
		c.foldedTouched[origin] = true
	}
}

// InsertFolded is Insert for ops from a peer whose log is folded: an op
// of origin o may follow a gap (in the call, or after what the log holds)
// when every sequence in the gap is at most folded[o] and the op before
// the gap is signed, so that each run stays proven by its own signature.
// The peer's word that those ops were folded is taken: a paired peer
// could as well send ops of its own that undo the ones it leaves out.
// Ops of a held sequence that this log folded are taken as held.
func (l *Log) InsertFolded(ctx context.Context, from certs.DeviceID, folded map[certs.DeviceID]uint64, ops ...Op) ([]Op, error) {
	return l.insert(ctx, from, folded, ops)
}

// gapAllowed reports whether an op of origin o at seq may follow the op at
// prev (0: none) with the sequences between them missing.
func gapAllowed(folded map[certs.DeviceID]uint64, o certs.DeviceID, prev, seq uint64) bool {
	return seq > prev+1 && seq-1 <= folded[o]
}

// Reclaim compacts the stored ops, so that the space of folded ones is
// given back to the file system now rather than when pebble next merges
// those files. It may take a while on a large log; ctx ends it.
func (l *Log) Reclaim(ctx context.Context) error {
	return l.fail.guard(false, func() error {
		if err := l.db.Compact(ctx, []byte{prefixOp}, []byte{prefixOp + 1}, false); err != nil {
			return fmt.Errorf("oplog: reclaim %s: %w", l.dir, err)
		}
		return nil
	})
}
