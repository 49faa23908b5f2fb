package node

import (
	"fmt"
	"maps"
	"math/rand"
	"testing"

	"github.com/drive-node/drive-node/certs"
	"github.com/drive-node/drive-node/content"
	"github.com/drive-node/drive-node/oplog"
	"github.com/drive-node/drive-node/vclock"
)

// TestRestoreScopeReplaysAsTheWholeLog: for random histories of writes,
// deletes and renames (some carrying no content, which replay takes from
// their source, and chains of them from outside), the paths under the
// directories restored replay to the same state from the ops
// restoreScope keeps as from the whole log, and the scope leaves out ops
// that bear on nothing restored.
func TestRestoreScopeReplaysAsTheWholeLog(t *testing.T) {
	rng := rand.New(rand.NewSource(3))
	paths := []string{"docs/a", "docs/b", "docs/sub/c", "out/x", "out/y", "z", "docsx"}
	devices := []certs.DeviceID{{1}, {2}}
	left := 0
	for round := range 2000 {
		var (
			ops     []timedOp
			renames []renameEdge
			seen    vclock.Vector
		)
		seqs := map[certs.DeviceID]uint64{}
		for i := range 5 + rng.Intn(20) {
			d := devices[rng.Intn(len(devices))]
			seqs[d]++
			op := oplog.Op{Origin: d, Seq: seqs[d], Lamport: uint64(i + 1), Parent: seen, Path: paths[rng.Intn(len(paths))]}
			switch r := rng.Intn(10); {
			case r < 4:
				op.Kind, op.Hash = oplog.KindWrite, content.Sum([]byte(fmt.Sprint(round, i)))
			case r < 5:
				op.Kind = oplog.KindDelete
			default:
				op.Kind, op.NewPath = oplog.KindRename, paths[rng.Intn(len(paths))]
				if op.NewPath == op.Path {
					continue
				}
				if rng.Intn(2) == 0 {
					op.Hash = content.Sum([]byte(fmt.Sprint("renamed", round, i)))
				}
				renames = append(renames, renameEdge{op.Path, op.NewPath})
			}
			if rng.Intn(4) != 0 { // some ops are concurrent with what came before
				seen = seen.Merge(op.Version())
			}
			ops = append(ops, timedOp{Op: op, at: int64(i)})
		}
		dirs := [][]string{{"docs"}, {"docs/sub"}, {"out", "z"}, {"docs/a"}}[rng.Intn(4)]
		keep := restoreScope(dirs, renames)
		var scoped []timedOp
		for _, op := range ops {
			if keep(op.Op) {
				scoped = append(scoped, op)
			}
		}
		left += len(ops) - len(scoped)
		restricted := func(tree map[string]treeEntry) map[string]treeEntry {
			out := map[string]treeEntry{}
			for p, e := range tree {
				for _, d := range dirs {
					if under(p, d) {
						out[p] = e
					}
				}
			}
			return out
		}
		if got, want := restricted(replay(scoped)), restricted(replay(ops)); !maps.Equal(got, want) {
			t.Fatalf("round %d, restoring %q: from %d of %d ops\n%v\nfrom all\n%v", round, dirs, len(scoped), len(ops), got, want)
		}
	}
	if left == 0 {
		t.Fatal("the scope kept every op of every history")
	}
}

// TestRestoreScopeOfTheFolderIsTheLog: restoring the whole folder keeps
// every op.
func TestRestoreScopeOfTheFolderIsTheLog(t *testing.T) {
	keep := restoreScope([]string{"docs", ""}, nil)
	if !keep(oplog.Op{Kind: oplog.KindWrite, Path: "elsewhere/f"}) {
		t.Fatal("an op outside docs left out of a restore of the folder")
	}
}
