package node

import (
	"testing"

	"github.com/drive-node/drive-node/certs"
	"github.com/drive-node/drive-node/content"
	"github.com/drive-node/drive-node/oplog"
	"github.com/drive-node/drive-node/vclock"
)

// replay decides as the engine does, whatever order the ops were
// recorded in.
func TestReplayDecidesLikeTheEngine(t *testing.T) {
	a, b := certs.DeviceID{1}, certs.DeviceID{2}
	h1, h2 := content.Sum([]byte("one")), content.Sum([]byte("two"))
	write := func(origin certs.DeviceID, seq, lamport uint64, parent vclock.Vector, h content.Hash) timedOp {
		return timedOp{Op: oplog.Op{Origin: origin, Seq: seq, Lamport: lamport, Kind: oplog.KindWrite, Path: "f", Hash: h, Parent: parent}}
	}
	del := func(origin certs.DeviceID, seq, lamport uint64, parent vclock.Vector) timedOp {
		return timedOp{Op: oplog.Op{Origin: origin, Seq: seq, Lamport: lamport, Kind: oplog.KindDelete, Path: "f", Parent: parent}}
	}
	made := write(a, 1, 1, nil, h1)
	v1 := made.Version()
	for name, c := range map[string]struct {
		ops  []timedOp
		want content.Hash // zero: f is gone
	}{
		"an edit concurrent with a delete wins":      {[]timedOp{made, write(a, 2, 2, v1, h2), del(b, 1, 2, v1)}, h2},
		"... whichever is recorded first":            {[]timedOp{made, del(b, 1, 2, v1), write(a, 2, 2, v1, h2)}, h2},
		"an op made before what is there is ignored": {[]timedOp{made, write(a, 2, 2, v1, h2), del(b, 1, 3, v1.With(a, 2)), del(b, 1, 3, v1.With(a, 2))}, content.Hash{}},
		"a late op superseded by an answer":          {[]timedOp{made, write(a, 2, 5, v1.With(b, 1), h1), del(b, 1, 2, v1)}, h1},
		"concurrent edits: the higher Lamport wins":  {[]timedOp{made, write(b, 1, 3, v1, h2), write(a, 2, 2, v1, h1)}, h2},
		"concurrent edits, equal Lamport: device ID": {[]timedOp{made, write(b, 1, 2, v1, h2), write(a, 2, 2, v1, h1)}, h2},
		"a rename moves the content; source is gone": {[]timedOp{made, {Op: oplog.Op{Origin: b, Seq: 1, Lamport: 2, Kind: oplog.KindRename, Path: "f", NewPath: "g", Parent: v1}}}, content.Hash{}},
	} {
		tree := replay(c.ops)
		got, ok := tree["f"]
		switch {
		case c.want.IsZero() && ok:
			t.Errorf("%s: f holds %s, want it gone", name, got.hash.Short())
		case !c.want.IsZero() && (!ok || got.hash != c.want):
			t.Errorf("%s: f holds %v (%s), want %s", name, ok, got.hash.Short(), c.want.Short())
		}
		if name == "a rename moves the content; source is gone" && tree["g"].hash != h1 {
			t.Errorf("%s: g holds %s, want %s", name, tree["g"].hash.Short(), h1.Short())
		}
	}
}
