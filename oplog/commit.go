package oplog

import (
	"crypto/sha256"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	"github.com/drive-node/drive-node/certs"
)

// commit is one commit group being staged: the log's view as it will be
// once the batch is committed. Nothing of it reaches the Log unless the
// batch commits.
type commit struct {
	l       *Log
	b       *pebble.Batch
	highest map[certs.DeviceID]uint64
	tips    map[certs.DeviceID]tip
	lamport uint64
	touched map[certs.DeviceID]bool
	staged  map[string]Link // Links of the ops staged in b, by key
	origins []origin        // keys staged in b
	folded  map[certs.DeviceID]uint64
	// foldedTouched are the origins whose folded record b must write.
	foldedTouched map[certs.DeviceID]bool
	buf           []byte
}

// staging is ops of one origin checked but not yet in the batch: they go
// in together once a signature covers them, or not at all.
type staging struct {
	ops     []Op
	links   []Link
	highest uint64 // the origin's highest and tip before them
	tip     tip
}

// stageLocal assigns this device's ops their sequences, Lamport clocks and
// chain, and signs the last op of the request, every localSignedRun-th op,
// and every op that would otherwise leave a run over MaxUnsignedBytes. A
// request is staged whole or, on an error, not at all.
func (c *commit) stageLocal(r *request) {
	self := c.l.self
	s := c.begin(self)
	lamport := c.lamport
	run, runBytes := 0, 0
	for i, op := range r.ops {
		if lamport >= MaxLamport {
			r.err = fmt.Errorf("%w: this device's Lamport clock is at %d, the most an op may carry", ErrInvalid, lamport)
			c.rollback(self, s)
			return
		}
		lamport++
		op.Origin, op.Seq, op.Lamport = self, c.highest[self]+1, lamport
		op.Prev, op.Sig, op.Legacy = c.tips[self].link, nil, false
		c.buf = op.appendBody(c.buf[:0])
		link := Link(sha256.Sum256(c.buf))
		run, runBytes = run+1, runBytes+op.EncodedLen()
		if i == len(r.ops)-1 || run >= localSignedRun || runBytes+MaxOpSize > MaxUnsignedBytes {
			var err error
			if op.Sig, err = sign(c.l.key, link); err != nil {
				r.err = err
				c.rollback(self, s)
				return
			}
			run, runBytes = 0, 0
		}
		c.hold(s, op, link)
	}
	c.lamport = lamport
	c.flush(r, s)
}

// stageRemote stages a peer's ops that authenticate checked, after
// checking what needs the log: that each continues its origin's chain,
// and that an op for a sequence held is the op held. An op that fails
// refuses the rest of its origin's ops in the request; the ops before it
// that a signature covers are staged, and the other origins' ops go on.
func (c *commit) stageRemote(r *request) {
	base := c.lamport // the jump bound holds against the clock before the request
	open := map[certs.DeviceID]*staging{}
	for i, op := range r.ops {
		if r.refused[op.Origin] != nil {
			continue
		}
		s := open[op.Origin]
		if s == nil {
			s = c.begin(op.Origin)
			open[op.Origin] = s
		}
		held := op.Seq <= c.highest[op.Origin]
		if err := c.check(r, op, r.links[i], base); err != nil {
			r.refuse(op.Origin, err)
			c.rollback(op.Origin, s)
			continue
		}
		if held {
			continue // the same op as the one held
		}
		c.hold(s, op, r.links[i])
		c.lamport = max(c.lamport, op.Lamport)
		if len(op.Sig) > 0 || op.Legacy {
			c.flush(r, s)
			*s = *c.begin(op.Origin)
		}
	}
	for o, s := range open {
		if len(s.ops) > 0 { // authenticate saw to it that this never happens
			r.refuse(o, fmt.Errorf("%w: %s, the last of its origin, is not signed", ErrUnauthenticated, s.ops[len(s.ops)-1]))
			c.rollback(o, s)
		}
	}
}

// check returns why the log does not take op, with Link link, from the
// peer r.from, or nil.
func (c *commit) check(r *request, op Op, link Link, base uint64) error {
	have := c.highest[op.Origin]
	if op.Seq <= have {
		held, found, err := c.linkOf(op.Origin, op.Seq)
		if err != nil {
			return err
		}
		if !found && op.Seq <= c.folded[op.Origin] {
			return nil // folded here: held as far as anyone can tell
		}
		if !found {
			return fmt.Errorf("oplog: %s: %s#%d is missing", c.l.dir, op.Origin.Short(), op.Seq)
		}
		if held != link {
			return fmt.Errorf("%w: %s from %s: the log holds another op %s#%d", ErrConflict, op, r.from.Short(), op.Origin.Short(), op.Seq)
		}
		return nil
	}
	t := c.tips[op.Origin]
	gap := !op.Legacy && gapAllowed(r.folded, op.Origin, have, op.Seq)
	switch {
	case op.Origin == c.l.self:
		return fmt.Errorf("%w: %s after %d", ErrOwnOrigin, op, have)
	case op.Lamport > MaxLamport:
		return fmt.Errorf("%w: %s: Lamport clock %d, over %d", ErrInvalid, op, op.Lamport, uint64(MaxLamport))
	case op.Lamport > base+MaxLamportJump:
		return fmt.Errorf("%w: %s: Lamport clock %d jumps more than %d past this log's %d", ErrInvalid, op, op.Lamport, uint64(MaxLamportJump), base)
	case (op.Seq != have+1 && !gap) || op.Origin.IsZero():
		return fmt.Errorf("%w: %s after %d", ErrGap, op, have)
	case !op.Legacy && !gap && op.Prev != t.link:
		return fmt.Errorf("%w: %s does not follow %s#%d held here", ErrUnauthenticated, op, op.Origin.Short(), have)
	case op.Legacy && have > 0 && !t.legacy:
		return fmt.Errorf("%w: %s: a legacy op after a signed one", ErrUnauthenticated, op)
	case !op.Legacy && have > 0 && op.Lamport <= t.lamport:
		return fmt.Errorf("%w: %s: Lamport clock %d not past its origin's previous %d", ErrInvalid, op, op.Lamport, t.lamport)
	case have == 0 && !roomForOrigin(c.highest, c.l.self):
		return fmt.Errorf("%w: %s would be origin %d, over the %d a Hello lists", ErrTooManyOrigins, op, len(c.highest)+1, MaxOrigins)
	}
	return nil
}

// begin starts staging ops of origin o.
func (c *commit) begin(o certs.DeviceID) *staging {
	return &staging{highest: c.highest[o], tip: c.tips[o]}
}

// hold adds op to s and makes it the origin's tip, so that the ops after
// it are checked against it.
func (c *commit) hold(s *staging, op Op, link Link) {
	s.ops, s.links = append(s.ops, op), append(s.links, link)
	c.highest[op.Origin] = op.Seq
	c.tips[op.Origin] = tip{link: link, lamport: op.Lamport, legacy: op.Legacy}
}

// rollback forgets the ops of s: the origin's highest and tip are again
// what they were before them.
func (c *commit) rollback(o certs.DeviceID, s *staging) {
	c.highest[o], c.tips[o] = s.highest, s.tip
	if s.highest == 0 {
		delete(c.highest, o)
		delete(c.tips, o)
	}
	s.ops, s.links = nil, nil
}

// flush puts the ops of s in the batch and in r's result, and notes the
// gaps they cross.
func (c *commit) flush(r *request, s *staging) {
	for i, op := range s.ops {
		prev := s.highest
		if i > 0 {
			prev = s.ops[i-1].Seq
		}
		if op.Seq > prev+1 {
			c.raiseFolded(op.Origin, op.Seq-1)
		}
		var err error
		if c.buf, err = op.AppendBinary(c.buf[:0]); err != nil {
			r.refuse(op.Origin, err)
			c.rollback(op.Origin, &staging{ops: s.ops[i:], highest: op.Seq - 1, tip: c.tipBefore(s, i)})
			return
		}
		key := opKey(op.Origin, op.Seq)
		if err := c.b.Set(key, c.buf, nil); err != nil {
			r.refuse(op.Origin, fmt.Errorf("oplog: stage %s: %w", op, err))
			c.rollback(op.Origin, &staging{ops: s.ops[i:], highest: op.Seq - 1, tip: c.tipBefore(s, i)})
			return
		}
		c.staged[string(key)] = s.links[i]
		c.touched[op.Origin] = true
		r.result = append(r.result, op)
	}
	s.ops, s.links = nil, nil
}

// tipBefore returns the origin's tip before the i-th op of s.
func (c *commit) tipBefore(s *staging, i int) tip {
	if i == 0 {
		return s.tip
	}
	prev := s.ops[i-1]
	return tip{link: s.links[i-1], lamport: prev.Lamport, legacy: prev.Legacy}
}

// linkOf returns the Link of the op held for (origin, seq), staged in this
// commit or stored, and whether one is.
func (c *commit) linkOf(origin certs.DeviceID, seq uint64) (Link, bool, error) {
	if l, ok := c.staged[string(opKey(origin, seq))]; ok {
		return l, true, nil
	}
	op, found, err := c.l.get(origin, seq)
	if err != nil || !found {
		return Link{}, false, err
	}
	return op.Link(), true, nil
}
