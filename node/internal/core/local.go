package core

import (
	"sort"
	"strings"

	"github.com/drive-node/drive-node/content"
	"github.com/drive-node/drive-node/oplog"
	"github.com/drive-node/drive-node/state"
	"github.com/drive-node/drive-node/watcher"
)

// LocalPlan is what a batch of observations means: ops to log, and rows
// whose only change is metadata that peers do not need (an mtime touched
// without new content, an inode learned).
type LocalPlan struct {
	Ops      []oplog.Op
	MetaOnly []state.File
}

// PlanLocal turns what the watcher saw into operations. It is pure: known
// holds the recorded row for every observed path that has one (tombstones
// included), and the result depends on nothing else.
//
// Ops carry Parent (the recorded version) but no Origin, Seq or Lamport:
// the op log assigns those when it accepts them. The order is one a peer
// can apply as it comes: directories are created before what goes in them
// and removed after what was in them.
//
// A path gets at most one op per plan, since ops of one plan share the
// records they were made from: a second op on a path could not name the
// first as its parent. A path that changed between file and directory gets
// only the op of its new type, which supersedes the recorded version (and
// is therefore never the source of a rename).
func PlanLocal(obs []watcher.Observation, known map[string]state.File) LocalPlan {
	var plan LocalPlan
	var writes, deletes []oplog.Op
	var mkdirs, rmdirs []oplog.Op
	var retyped []string // paths that changed between file and directory
	for _, o := range obs {
		k, have := known[o.Path]
		live := have && !k.Deleted
		switch {
		case !o.Exists:
			if !live {
				continue
			}
			if k.Dir {
				rmdirs = append(rmdirs, oplog.Op{Kind: oplog.KindRmdir, Path: o.Path, Parent: k.Version})
			} else {
				deletes = append(deletes, oplog.Op{Kind: oplog.KindDelete, Path: o.Path, Hash: k.Hash, Size: k.Size, Parent: k.Version})
			}
		case o.Dir:
			if live && k.Dir {
				continue
			}
			if live { // a file became a directory
				retyped = append(retyped, o.Path)
			}
			mkdirs = append(mkdirs, oplog.Op{Kind: oplog.KindMkdir, Path: o.Path, Mode: o.Mode, Parent: k.Version})
		default:
			if live && !k.Dir && k.Hash == o.Hash && k.Mode == o.Mode {
				if k.MTime != o.MTime || k.Size != o.Size || k.Inode != o.Inode {
					m := k
					m.MTime, m.Size, m.Inode = o.MTime, o.Size, o.Inode
					plan.MetaOnly = append(plan.MetaOnly, m)
				}
				continue
			}
			if live && k.Dir { // a directory became a file
				retyped = append(retyped, o.Path)
			}
			writes = append(writes, oplog.Op{Kind: oplog.KindWrite, Path: o.Path, Hash: o.Hash, Size: o.Size, Mode: o.Mode, MTime: o.MTime, Parent: k.Version})
		}
	}
	writes, deletes = pairRenames(writes, deletes, known)

	sort.SliceStable(mkdirs, func(i, j int) bool { return mkdirs[i].Path < mkdirs[j].Path })
	sort.SliceStable(rmdirs, func(i, j int) bool { return rmdirs[i].Path > rmdirs[j].Path })
	// What replaces a path of the other type, and anything inside it, must
	// come after the old entry is removed.
	mkdirs, lateDirs := splitUnder(mkdirs, retyped)
	writes, lateWrites := splitUnder(writes, retyped)
	for _, group := range [][]oplog.Op{mkdirs, writes, deletes, rmdirs, lateDirs, lateWrites} {
		plan.Ops = append(plan.Ops, group...)
	}
	return plan
}

// splitUnder separates the ops whose target is one of roots or lies inside
// one of them.
func splitUnder(ops []oplog.Op, roots []string) (rest, under []oplog.Op) {
	if len(roots) == 0 {
		return ops, nil
	}
	for _, op := range ops {
		target := op.Path
		if op.Kind == oplog.KindRename {
			target = op.NewPath
		}
		inside := false
		for _, r := range roots {
			if target == r || strings.HasPrefix(target, r+"/") {
				inside = true
				break
			}
		}
		if inside {
			under = append(under, op)
		} else {
			rest = append(rest, op)
		}
	}
	return rest, under
}

// pairRenames turns a delete of a file and a write of a new path with the
// same content in the same batch into one rename, so peers move the file
// instead of fetching its content again. Only writes to paths with no live
// record qualify: overwriting an existing file stays a write.
func pairRenames(writes, deletes []oplog.Op, known map[string]state.File) ([]oplog.Op, []oplog.Op) {
	if len(deletes) == 0 || len(writes) == 0 {
		return writes, deletes
	}
	byHash := map[content.Hash][]int{}
	for i, d := range deletes {
		byHash[d.Hash] = append(byHash[d.Hash], i)
	}
	used := make([]bool, len(deletes))
	var keptWrites []oplog.Op
	for _, w := range writes {
		if k, ok := known[w.Path]; ok && !k.Deleted {
			keptWrites = append(keptWrites, w)
			continue
		}
		cands := byHash[w.Hash]
		if len(cands) == 0 {
			keptWrites = append(keptWrites, w)
			continue
		}
		i := cands[0]
		byHash[w.Hash] = cands[1:]
		used[i] = true
		d := deletes[i]
		keptWrites = append(keptWrites, oplog.Op{
			Kind: oplog.KindRename, Path: d.Path, NewPath: w.Path,
			Hash: w.Hash, Size: w.Size, Mode: w.Mode, MTime: w.MTime,
			// The op supersedes what was recorded at both paths.
			Parent: d.Parent.Merge(w.Parent),
		})
	}
	var keptDeletes []oplog.Op
	for i, d := range deletes {
		if !used[i] {
			keptDeletes = append(keptDeletes, d)
		}
	}
	return keptWrites, keptDeletes
}

// RecordsFor returns the state rows that op produces once applied: the
// same function serves local ops, remote ops and rebuilding state from the
// log. at is the time tombstones are stamped with.
func RecordsFor(op oplog.Op, at int64) []state.File {
	base := state.File{
		Path: op.Path, Hash: op.Hash, Size: op.Size, Mode: op.Mode, MTime: op.MTime,
		Version: op.Version(), Lamport: op.Lamport, Origin: op.Origin, Seq: op.Seq,
		Heads: []state.OpID{{Origin: op.Origin, Seq: op.Seq}},
	}
	switch op.Kind {
	case oplog.KindWrite:
		return []state.File{base}
	case oplog.KindMkdir:
		base.Dir, base.Hash, base.Size = true, content.Hash{}, 0
		return []state.File{base}
	case oplog.KindDelete, oplog.KindRmdir:
		base.Dir = op.Kind == oplog.KindRmdir
		base.Hash, base.Size, base.Deleted, base.DeletedAt = content.Hash{}, 0, true, at
		return []state.File{base}
	case oplog.KindRename:
		gone := base
		gone.Hash, gone.Size, gone.Deleted, gone.DeletedAt = content.Hash{}, 0, true, at
		moved := base
		moved.Path = op.NewPath
		return []state.File{gone, moved}
	}
	return nil
}
