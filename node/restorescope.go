package node

import (
	"context"
	"slices"

	"github.com/drive-node/drive-node/oplog"
)

// A restore to a moment (restore --at) replays the log's ops up to that
// moment. Of a log of a million files, a restore of one directory needs
// the ops of the paths in it and, since a rename that brought a file in
// may carry no content of its own (replay takes its source's), the ops of
// each such source, and of theirs in turn. restoreScope keeps those, so
// that the replay holds what it restores, not the whole log.

// renameEdge is a rename's source and target.
type renameEdge struct{ from, to string }

// restoreScope returns whether an op bears on what the paths under dirs
// held, given every rename the log holds.
func restoreScope(dirs []string, renames []renameEdge) func(oplog.Op) bool {
	inside := func(p string) bool {
		return p != "" && slices.ContainsFunc(dirs, func(d string) bool { return under(p, d) })
	}
	if slices.Contains(dirs, "") {
		return func(oplog.Op) bool { return true }
	}
	// sources are the paths outside dirs a rename moved into them, or
	// into another source: until no rename adds one.
	sources := map[string]bool{}
	for grew := true; grew; {
		grew = false
		for _, r := range renames {
			if (inside(r.to) || sources[r.to]) && !inside(r.from) && !sources[r.from] {
				sources[r.from] = true
				grew = true
			}
		}
	}
	return func(op oplog.Op) bool {
		return inside(op.Path) || inside(op.NewPath) || sources[op.Path] || sources[op.NewPath]
	}
}

// restoreOps returns the ops a restore of dirs to a moment replays (see
// restoreScope), ordered as loggedOps orders them. The renames are read
// in a pass of their own: when the log grew between the two passes, a
// rename into dirs may have come without its source's ops, and the ops
// are read again (all of them once the log keeps growing).
func (n *Node) restoreOps(ctx context.Context, times recordTimes, dirs []string) ([]timedOp, error) {
	for range 3 {
		if slices.Contains(dirs, "") {
			break
		}
		count := n.ops.Count()
		var renames []renameEdge
		err := eachLogged(ctx, n.ops, func(op oplog.Op) {
			if op.Kind == oplog.KindRename {
				renames = append(renames, renameEdge{op.Path, op.NewPath})
			}
		})
		if err != nil {
			return nil, err
		}
		ops, err := n.loggedOps(ctx, times, restoreScope(dirs, renames))
		if err != nil || n.ops.Count() == count {
			return ops, err
		}
	}
	return n.loggedOps(ctx, times, func(oplog.Op) bool { return true })
}
