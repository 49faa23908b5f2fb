package watcher

import (
	"reflect"
	"sync/atomic"
	"testing"

	"github.com/drive-node/drive-node/content"
)

// batchIndex is a memIndex that looks paths up at once too, and counts
// the lookups of each kind.
type batchIndex struct {
	*memIndex
	one, all atomic.Int32
}

func (b *batchIndex) Lookup(p string) (Known, bool) {
	b.one.Add(1)
	return b.memIndex.Lookup(p)
}

func (b *batchIndex) LookupAll(paths []string) map[string]Known {
	b.all.Add(1)
	out := map[string]Known{}
	for _, p := range paths {
		if k, ok := b.memIndex.Lookup(p); ok {
			out[p] = k
		}
	}
	return out
}

// TestArrangeLooksUpAtOnce arranges a moved file, a directory that
// became a file, new files and a vanished one with an Index that looks
// paths up one at a time and with one that looks them up at once: the
// order is the same, and the second is asked once, never path by path.
func TestArrangeLooksUpAtOnce(t *testing.T) {
	moved := content.Sum([]byte("moved"))
	index := func() *memIndex {
		x := newIndex()
		x.set("old/name", Known{Size: 5, Hash: moved})
		x.set("was-dir", Known{Dir: true})
		x.set("gone", Known{Size: 1, Hash: content.Sum([]byte("g"))})
		return x
	}
	present := []Observation{
		{Path: "new/a", Exists: true, Hash: content.Sum([]byte("a"))},
		{Path: "new/name", Exists: true, Size: 5, Hash: moved},
		{Path: "was-dir", Exists: true, Hash: content.Sum([]byte("file now"))},
		{Path: "new", Exists: true, Dir: true},
	}
	gone := []Observation{{Path: "old/name"}, {Path: "gone"}}

	one := &Watcher{o: Options{Index: index()}}
	wantList, wantJoined := one.arrange(present, gone)
	bi := &batchIndex{memIndex: index()}
	all := &Watcher{o: Options{Index: bi}}
	list, joined := all.arrange(present, gone)
	if !reflect.DeepEqual(list, wantList) || !reflect.DeepEqual(joined, wantJoined) {
		t.Fatalf("arranged at once:\n%v %v\none at a time:\n%v %v", list, joined, wantList, wantJoined)
	}
	if !heldTogether(wantList, wantJoined, "new/name", "old/name") {
		t.Fatalf("the move is not kept together: %v %v", wantList, wantJoined)
	}
	if bi.all.Load() != 1 || bi.one.Load() != 0 {
		t.Fatalf("looked up %d times at once and %d one by one, want once and never", bi.all.Load(), bi.one.Load())
	}
}

// heldTogether reports whether list holds a, joined to b right
// after it.
func heldTogether(list []Observation, joined []bool, a, b string) bool {
	for i := range len(list) - 1 {
		if list[i].Path == a && joined[i] && list[i+1].Path == b {
			return true
		}
	}
	return false
}
