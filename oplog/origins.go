package oplog

import (
	"context"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	"github.com/drive-node/drive-node/certs"
)

// origin is a device whose ops the log takes: its key, and the device on
// whose word it was taken.
type origin struct {
	key     OriginKey
	voucher certs.DeviceID
}

// AddOrigin durably records key as the key of a device whose ops the log
// may take, on the word of voucher: the device itself (a paired device,
// whose key its connection showed) or a device that relayed its ops. For a
// key already held it records voucher in place of the one before. The log
// holds at most MaxOrigins keys; past that AddOrigin fails with
// ErrTooManyOrigins. Which devices to take keys from, and on whose word,
// is the caller's to decide; Vouched counts them.
func (l *Log) AddOrigin(ctx context.Context, key OriginKey, voucher certs.DeviceID) error {
	if key.pub == nil {
		return fmt.Errorf("oplog: origin key for %s was not parsed (ParseOriginKey)", key.ID.Short())
	}
	if _, v, ok := l.Origin(key.ID); ok && v == voucher {
		return nil
	}
	_, err := l.submit(ctx, &request{origin: &origin{key: key, voucher: voucher}})
	return err
}

// Origin returns the key the log holds for device id and the device on
// whose word it was taken.
func (l *Log) Origin(id certs.DeviceID) (key OriginKey, voucher certs.DeviceID, ok bool) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	o, ok := l.origins[id]
	return o.key, o.voucher, ok
}

// Vouched returns how many keys the log took on voucher's word, other than
// voucher's own.
func (l *Log) Vouched(voucher certs.DeviceID) int {
	l.mu.RLock()
	defer l.mu.RUnlock()
	n := 0
	for id, o := range l.origins {
		if o.voucher == voucher && id != voucher {
			n++
		}
	}
	return n
}

// stageOrigin stages the key r carries, unless the log holds it already.
func (c *commit) stageOrigin(r *request) {
	o := *r.origin
	c.l.mu.RLock()
	_, held := c.l.origins[o.key.ID]
	n := len(c.l.origins)
	c.l.mu.RUnlock()
	for _, staged := range c.origins {
		held = held || staged.key.ID == o.key.ID
	}
	switch {
	case !held && n+len(c.origins) >= MaxOrigins && o.key.ID != c.l.self:
		r.err = fmt.Errorf("%w: the log holds %d origins' keys", ErrTooManyOrigins, n)
	default:
		v := append(append([]byte(nil), o.voucher[:]...), o.key.DER...)
		if err := c.b.Set(originKeyKey(o.key.ID), v, nil); err != nil {
			r.err = fmt.Errorf("oplog: stage the key of %s: %w", o.key.ID.Short(), err)
			return
		}
		c.origins = append(c.origins, o)
	}
}

// loadOrigins reads the keys the log holds.
func (l *Log) loadOrigins() error {
	it, err := l.db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixKey}, UpperBound: []byte{prefixKey + 1}})
	if err != nil {
		return fmt.Errorf("oplog: read %s: %w", l.dir, err)
	}
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		k, v := it.Key(), it.Value()
		var id, voucher certs.DeviceID
		if len(k) != 1+len(id) || len(v) < len(voucher) {
			return fmt.Errorf("oplog: %s: corrupt origin key record %x", l.dir, k)
		}
		copy(id[:], k[1:])
		copy(voucher[:], v)
		key, err := ParseOriginKey(v[len(voucher):])
		if err != nil || key.ID != id {
			return fmt.Errorf("oplog: %s: origin key record of %s does not hold its key: %v", l.dir, id.Short(), err)
		}
		l.origins[id] = origin{key: key, voucher: voucher}
	}
	return it.Error()
}

func originKeyKey(id certs.DeviceID) []byte {
	return append([]byte{prefixKey}, id[:]...)
}

// authenticate checks what can be checked of ops from the peer from
// without the log's tips (stageRemote checks those): that the log holds
// each origin's key, that each op chains to the one before it in the call,
// that every Sig verifies, that no run of unsigned ops is longer than an
// origin makes, and that each origin's last op is signed. It returns the
// ops' Links, and why each origin that fails is refused. It runs in the
// caller's goroutine: signature checks of one peer's ops do not hold up
// the commits of others.
func (l *Log) authenticate(from certs.DeviceID, folded map[certs.DeviceID]uint64, ops []Op) ([]Link, map[certs.DeviceID]error) {
	links := make([]Link, len(ops))
	runs := map[certs.DeviceID]*originRun{}
	for i, op := range ops {
		links[i] = op.Link()
		r := runs[op.Origin]
		if r == nil {
			r = &originRun{}
			if key, _, ok := l.Origin(op.Origin); ok {
				r.key = key
			} else {
				r.refused = fmt.Errorf("%w: %s: no key is held for its origin", ErrUnauthenticated, op)
			}
			runs[op.Origin] = r
		}
		if r.refused == nil {
			r.refused = r.next(op, links[i], from, folded)
		}
	}
	refused := map[certs.DeviceID]error{}
	for o, r := range runs {
		if r.refused == nil && r.unsigned > 0 {
			r.refused = fmt.Errorf("%w: %s, the last of its origin, is not signed", ErrUnauthenticated, r.prev)
		}
		if r.refused != nil {
			refused[o] = r.refused
		}
	}
	return links, refused
}

// originRun is what authenticate keeps of one origin's ops in a call.
type originRun struct {
	key      OriginKey
	prev     Op // the origin's op before, if started
	prevLink Link
	started  bool
	unsigned int // ops since the last signed one, and their bytes
	bytes    int
	refused  error
}

// next checks op, with Link link, the origin's next op in the call.
func (r *originRun) next(op Op, link Link, from certs.DeviceID, folded map[certs.DeviceID]uint64) error {
	prev, prevLink, hasPrev := r.prev, r.prevLink, r.started
	r.prev, r.prevLink, r.started = op, link, true
	// A gap the peer folded: the run before it must end signed, as the
	// run after it must (the checks below see to that).
	gap := hasPrev && !op.Legacy && gapAllowed(folded, op.Origin, prev.Seq, op.Seq) && r.unsigned == 0
	switch {
	case op.Seq == 0:
		return fmt.Errorf("%w: %s: sequence 0", ErrInvalid, op)
	case op.Legacy && from != op.Origin:
		return fmt.Errorf("%w: %s: a legacy (unsigned) op relayed by %s", ErrUnauthenticated, op, from.Short())
	case op.Legacy:
		r.unsigned, r.bytes = 0, 0
		return nil
	case hasPrev && op.Seq != prev.Seq+1 && !gap:
		return fmt.Errorf("%w: %s after %s#%d in one call", ErrGap, op, op.Origin.Short(), prev.Seq)
	case hasPrev && !gap && op.Prev != prevLink:
		return fmt.Errorf("%w: %s does not follow the op before it", ErrUnauthenticated, op)
	case hasPrev && op.Lamport <= prev.Lamport:
		return fmt.Errorf("%w: %s: Lamport clock %d not past its origin's previous %d", ErrInvalid, op, op.Lamport, prev.Lamport)
	case op.Seq == 1 && !op.Prev.IsZero():
		return fmt.Errorf("%w: %s: an origin's first op follows nothing", ErrUnauthenticated, op)
	case len(op.Sig) > 0 && !r.key.verify(link, op.Sig):
		return fmt.Errorf("%w: %s: its signature does not verify", ErrUnauthenticated, op)
	case len(op.Sig) > 0:
		r.unsigned, r.bytes = 0, 0
		return nil
	}
	r.unsigned, r.bytes = r.unsigned+1, r.bytes+op.EncodedLen()
	if r.unsigned >= MaxUnsignedRun || r.bytes > MaxUnsignedBytes {
		return fmt.Errorf("%w: %s: %d ops (%d bytes) unsigned, over the %d ops or %d bytes an origin leaves unsigned",
			ErrUnauthenticated, op, r.unsigned, r.bytes, MaxUnsignedRun-1, MaxUnsignedBytes)
	}
	return nil
}
