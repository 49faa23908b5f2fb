package node

import (
	"bytes"
	"path"
	"strings"
	"time"

	"github.com/drive-node/drive-node/oplog"
	"github.com/drive-node/drive-node/state"
	"github.com/drive-node/drive-node/vclock"
)

// verdict says what to do with a remote op at one path.
type verdict int

const (
	// ignore: the local record already includes the op (a duplicate, or
	// something newer); nothing changes.
	ignore verdict = iota
	// apply: the op happened after everything recorded at the path, or
	// wins a conflict whose loser needs no copy (a delete, a directory,
	// identical content); make the folder say what the op says.
	apply
	// merge: concurrent but nothing to change on disk (both deleted, both
	// wrote the same bytes, an edit beats a concurrent delete that is the
	// op); only the record's version grows.
	merge
	// conflictLocalLoses: concurrent writes of different content and the
	// op wins; the local content is kept as a conflict copy first.
	conflictLocalLoses
	// conflictRemoteLoses: concurrent writes of different content and the
	// local content wins; the op's content goes to a conflict copy.
	conflictRemoteLoses
)

func (v verdict) String() string {
	return [...]string{"ignore", "apply", "merge", "conflict-local-loses", "conflict-remote-loses"}[v]
}

// decide compares a remote op with the local record at its path (nil if
// none) and says what to do. It is pure and symmetric: two devices that
// hold each other's concurrent ops reach the same final record, whichever
// arrives first — the winner of concurrent writes is the higher
// (Lamport, device ID), never the local clock or arrival order.
//
// For a rename op it is called for the source path (where it acts like a
// delete); the target is decided by decideTarget.
func decide(local *state.File, op oplog.Op) verdict {
	if local == nil {
		return apply
	}
	opVersion := op.Version()
	switch local.Version.Compare(opVersion) {
	case vclock.Equal, vclock.After:
		return ignore
	}
	if local.Version.Compare(op.Parent) != vclock.Concurrent && op.Parent.Dominates(local.Version) {
		return apply // the op saw everything recorded here
	}
	// Concurrent.
	opRemoves := op.Kind == oplog.KindDelete || op.Kind == oplog.KindRmdir || op.Kind == oplog.KindRename
	switch {
	case local.Deleted && opRemoves:
		return merge
	case local.Deleted:
		// Recreating beats deleting: the op's write or mkdir stands.
		return apply
	case opRemoves:
		// An edit (or a directory still in use) concurrent with a delete
		// wins: deleting what someone else just wrote would lose it.
		return merge
	case local.Dir && op.Kind == oplog.KindMkdir:
		return merge
	case !local.Dir && op.Kind == oplog.KindWrite && local.Hash == op.Hash:
		return merge // the same bytes written on both sides
	}
	if wins(op.Lamport, op.Origin[:], local.Lamport, local.Origin[:]) {
		if local.Dir {
			return apply // a directory loses to a file only when empty; see apply
		}
		return conflictLocalLoses
	}
	return conflictRemoteLoses
}

// wins reports whether version a=(lamport, device) beats b.
func wins(aLamport uint64, aDev []byte, bLamport uint64, bDev []byte) bool {
	if aLamport != bLamport {
		return aLamport > bLamport
	}
	return bytes.Compare(aDev, bDev) > 0
}

// mergedRecord is the record after a concurrent op was reconciled: the
// given content with a version that has seen both sides.
func mergedRecord(keep state.File, local *state.File, op oplog.Op) state.File {
	v := op.Version()
	if local != nil {
		v = v.Merge(local.Version)
	}
	keep.Version = v
	return keep
}

// conflictName returns the name of the conflict copy of p that keeps the
// losing version made by device loserShort at time t:
// "report.conflict-ABCDEFG-20261124-183000.txt". Every device computes the
// same name for the same loser.
func conflictName(p, loserShort string, t time.Time) string {
	dir, base := path.Split(p)
	ext := path.Ext(base)
	if ext == base { // ".bashrc" has no stem to keep apart from the extension
		ext = ""
	}
	stem := strings.TrimSuffix(base, ext)
	return dir + stem + ".conflict-" + loserShort + "-" + t.UTC().Format("20060102-150405") + ext
}
