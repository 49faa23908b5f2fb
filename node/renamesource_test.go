package node

import (
	"testing"

	"github.com/drive-node/drive-node/content"
	"github.com/drive-node/drive-node/oplog"
	"github.com/drive-node/drive-node/state"
)

// A rename's source is moved only if it holds the op's content. Within a
// batch the database is behind: an earlier op of the batch may have
// placed other content there, and a file of the same size and mtime
// must not pass for the recorded one (the simulation found a device
// moving a conflict's losing version to a rename's target, recorded as
// the winning one).
func TestRenameSourceIsCheckedAgainstTheBatch(t *testing.T) {
	sc, a, _ := newScenario(t)
	sc.put(a, "p", "c2")
	st, err := a.folder.Lstat("p")
	sc.must(err)
	// An earlier op of the batch placed other content of the same size
	// and mtime.
	sc.must(a.folder.WriteFile("p", []byte("c1"), 0o644))
	sc.must(a.folder.Chtimes("p", st.ModTime(), st.ModTime()))
	var batch batchRecords
	batch.add(state.File{Path: "p", Hash: content.Sum([]byte("c1")), Size: 2, MTime: st.ModTime().UnixNano()})

	op := oplog.Op{Kind: oplog.KindRename, Path: "p", NewPath: "q", Hash: content.Sum([]byte("c2")), Size: 2}
	if a.node.sourceUsable(sc.ctx, op, &batch, nil) {
		t.Fatal("the source was taken as holding the op's content, which the batch replaced")
	}
	if !a.node.sourceUsable(sc.ctx, op, nil, nil) {
		t.Fatal("with no batch the recorded content is what counts: the test does not show the batch mattering")
	}
}
