package oplog

import (
	"errors"
	"fmt"
)

// The limits of an op and of a log. They are the protocol's: package wire
// refuses anything past them from a peer, and the log refuses anything
// past them from its caller, so that nothing the log holds is an op a
// peer would refuse. A log that took one would send it on every
// connection and have it refused every time, holding back every op
// behind it.
const (
	// MaxPathLen bounds Path and NewPath, in bytes.
	MaxPathLen = 4096
	// MaxParents bounds the entries of an op's Parent. Any op within
	// MaxPathLen and MaxParents encodes within MaxOpSize (TestLargestOp),
	// so the entry count alone says whether an op can be carried.
	MaxParents = 1536
	// MaxOpSize bounds one op's encoding. An Ops frame of one such op
	// fits wire.MaxFrame with room to spare.
	MaxOpSize = 2*MaxPathLen + 64<<10
	// MaxOrigins bounds the origins a log holds keys and ops of: a Hello
	// or Progress lists each, and carries no more than this many. It is
	// MaxParents because a version names each origin at most once: the
	// version a device merges from a path's heads, however many devices
	// wrote the path at once, then always fits an op, and a path has at
	// most this many heads.
	MaxOrigins = MaxParents
	// MaxLamport bounds a received op's Lamport clock. Honest devices,
	// adding one per op, never come near it; a peer's op of 2^64-1, if
	// adopted, would make this device's next op wrap to 0 and lose every
	// conflict it is in.
	MaxLamport = 1 << 62
	// MaxLamportJump bounds how far past the log's Lamport clock, as an
	// Insert call begins, a received op's may be. An honest device's clock
	// is one past the highest it has seen, so it leads a peer's only by
	// the ops the peer has not seen yet: four billion is far more than a
	// mesh makes. A hostile origin can raise every clock by at most this
	// much per call, so reaching MaxLamport would take it 2^30 calls.
	MaxLamportJump = 1 << 32
	// MaxUnsignedRun bounds how many of an origin's ops follow each other
	// unsigned: Append signs at least every MaxUnsignedRun-th op and
	// every op that ends MaxUnsignedBytes of ops, as well as the last op
	// of each call. A receiver holds a run until the op signed after it
	// arrives, so these bound what a peer can make it hold unverified.
	MaxUnsignedRun = 1024
	// localSignedRun is how often Append signs this device's ops, well
	// within MaxUnsignedRun: a kept op proven only by a later signature
	// keeps the ops up to it in a fold (see Fold), so short runs let a
	// fold drop more of a peer's ops, which it cannot sign again. A
	// signature every 16 ops costs 6,250 for 100,000 new files.
	localSignedRun = 16
	// MaxUnsignedBytes bounds the encoded bytes of an unsigned run; see
	// MaxUnsignedRun.
	MaxUnsignedBytes = 1 << 20
)

// storedMaxParents bounds Parent when the log reads back its own ops.
// Logs written before MaxParents could take ops with up to this many
// entries; a log reads them back rather than failing on its own data,
// and refuses to encode them again to send them.
const storedMaxParents = 4096

// ErrInvalid is wrapped by the errors of Validate, and so by those of
// AppendBinary, Append and Insert for an op outside the limits.
var ErrInvalid = errors.New("oplog: op outside the protocol's limits")

// ErrOwnOrigin is wrapped by Insert's error for an op that names this
// device as its origin and that its log does not hold: only this device
// makes its ops, so a peer that sends one sends a forgery (or a copy of a
// log this device lost, which it must not take as its own either).
var ErrOwnOrigin = errors.New("oplog: a peer's op names this device as its origin")

// ErrTooManyOrigins is wrapped by Insert's error for an op whose origin
// would be one more than a Hello can list.
var ErrTooManyOrigins = errors.New("oplog: too many origins")

// Validate returns an error wrapping ErrInvalid, saying what is wrong,
// when o cannot be encoded, kept or sent: a kind or mode out of range, a
// path over MaxPathLen, a Parent over MaxParents entries or not in the
// form package vclock keeps (sorted, each device once, no zero counter or
// zero device), a Sig over MaxSigLen, or a Legacy op with a Prev or a
// Sig. Origin, Seq, Lamport, Prev and Sig are not checked against each
// other: Append assigns them, Insert authenticates them.
func (o Op) Validate() error {
	switch {
	case o.Kind < KindWrite || o.Kind > KindRmdir:
		return fmt.Errorf("%w: %s: unknown kind %d", ErrInvalid, o, uint8(o.Kind))
	case o.Mode > 0o7777:
		return fmt.Errorf("%w: %s: mode %o out of range", ErrInvalid, o, o.Mode)
	case len(o.Path) > MaxPathLen:
		return fmt.Errorf("%w: path of %d bytes, over %d", ErrInvalid, len(o.Path), MaxPathLen)
	case len(o.NewPath) > MaxPathLen:
		return fmt.Errorf("%w: new path of %d bytes, over %d", ErrInvalid, len(o.NewPath), MaxPathLen)
	case len(o.Sig) > MaxSigLen:
		return fmt.Errorf("%w: %s: signature of %d bytes, over %d", ErrInvalid, o, len(o.Sig), MaxSigLen)
	case o.Legacy && (!o.Prev.IsZero() || len(o.Sig) > 0):
		return fmt.Errorf("%w: %s: a legacy op has no Prev and no signature", ErrInvalid, o)
	case len(o.Parent) > MaxParents:
		return fmt.Errorf("%w: %s: version of %d entries, over the %d an op carries", ErrInvalid, o, len(o.Parent), MaxParents)
	}
	if err := o.Parent.Check(); err != nil {
		return fmt.Errorf("%w: %s: version: %w", ErrInvalid, o, err)
	}
	return nil
}
