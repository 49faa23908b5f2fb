package node

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/drive-node/drive-node/certs"
	"github.com/drive-node/drive-node/content"
	"github.com/drive-node/drive-node/oplog"
	"github.com/drive-node/drive-node/watcher"
)

func TestResidueExplains(t *testing.T) {
	peer := certs.DeviceID{1}
	h1, h2 := content.Sum([]byte("one")), content.Sum([]byte("two"))
	ops := []oplog.Op{
		{Origin: peer, Seq: 1, Kind: oplog.KindWrite, Path: "a/b/f.txt", Hash: h1},
		{Origin: peer, Seq: 2, Kind: oplog.KindDelete, Path: "gone.txt"},
		{Origin: peer, Seq: 3, Kind: oplog.KindRename, Path: "old.txt", NewPath: "new.txt", Hash: h2},
		{Origin: peer, Seq: 4, Kind: oplog.KindMkdir, Path: "d"},
	}
	file := func(p string, h content.Hash) watcher.Observation {
		return watcher.Observation{Path: p, Exists: true, Hash: h}
	}
	dir := func(p string) watcher.Observation { return watcher.Observation{Path: p, Exists: true, Dir: true} }
	absent := func(p string) watcher.Observation { return watcher.Observation{Path: p} }
	tests := []struct {
		obs  watcher.Observation
		want bool
	}{
		{file("a/b/f.txt", h1), true},
		{file("a/b/f.txt", h2), false}, // other content: an edit of this device's
		{absent("a/b/f.txt"), false},   // removed: a deletion of this device's
		{dir("a"), true},               // a directory the write made
		{dir("a/b"), true},
		{file("a", h1), false},
		{absent("gone.txt"), true},
		{file("gone.txt", h1), false},
		{absent("old.txt"), true},
		{file("new.txt", h2), true},
		{file("new.txt", h1), false},
		{dir("d"), true},
		{file("other.txt", h1), false}, // no op touches it
	}
	var r residue
	if r.active() || r.explains([]watcher.Observation{file("a/b/f.txt", h1)}) {
		t.Fatal("the zero residue explains something")
	}
	r.add(ops, certs.DeviceID{2})
	for _, tt := range tests {
		if got := r.explains([]watcher.Observation{tt.obs}); got != tt.want {
			t.Errorf("explains(%+v) = %v, want %v", tt.obs, got, tt.want)
		}
	}
	var all []watcher.Observation
	for _, tt := range tests {
		all = append(all, tt.obs)
	}
	kept := r.filter(all)
	for _, o := range kept {
		if r.explains([]watcher.Observation{o}) {
			t.Errorf("filter kept %+v, which is explained", o)
		}
	}
	if want := 6; len(kept) != want {
		t.Errorf("filter kept %d observations, want %d", len(kept), want)
	}

	// Once the write is applied, what it left is recorded: no longer explained.
	r.retire(map[certs.DeviceID]uint64{peer: 1})
	if r.explains([]watcher.Observation{file("a/b/f.txt", h1)}) || !r.explains([]watcher.Observation{absent("gone.txt")}) {
		t.Error("retire(1) did not forget exactly the first op")
	}
	r.retire(map[certs.DeviceID]uint64{peer: 4})
	if r.active() {
		t.Error("retire(4) left the residue active")
	}

	// This device's own ops are not residue: they are recorded from the log.
	var own residue
	own.add(ops, peer)
	if own.active() {
		t.Error("the device's own ops were taken as residue")
	}
}

// TestCrashResidueIsNotALocalChange starts a node as it is after a crash
// between placing a peer's files and recording them: the peer's ops are in
// the log, their files in the folder, the database knows neither. The
// start-up scan must not log them as this device's changes (which would
// make every later edit by the peer a conflict), and the ops must be
// recorded from what is on disk, with the peer away: its content is not
// fetched again. A file the user adds is still a local change.
func TestCrashResidueIsNotALocalChange(t *testing.T) {
	folder := t.TempDir()
	peer := pairedPeer(t, folder, "peer")
	one, two, three := []byte("one, placed"), []byte("two, placed"), []byte("two, edited later, never fetched")
	write := func(seq uint64, p string, data []byte, parent *oplog.Op) oplog.Op {
		op := oplog.Op{Origin: peer.ID, Seq: seq, Lamport: seq, Kind: oplog.KindWrite, Path: p,
			Hash: content.Sum(data), Size: int64(len(data)), Mode: 0o644, MTime: time.Now().UnixNano()}
		if parent != nil {
			op.Parent = parent.Version()
		}
		return op
	}
	x0 := oplog.Op{Origin: peer.ID, Seq: 1, Lamport: 1, Kind: oplog.KindMkdir, Path: "dir", Mode: 0o755}
	x1 := write(2, "dir/one.txt", one, nil)
	x2 := write(3, "two.txt", two, nil)
	x3 := write(4, "two.txt", three, &x2) // supersedes x2; its content is not here
	writeAt := func(p string, data []byte) {
		full := filepath.Join(folder, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeAt(x1.Path, one)
	writeAt(x2.Path, two)

	// The log holds the peer's ops; the database has no record of them.
	stateDir := DefaultStateDir(folder, "")
	self, err := certs.Load(stateDir)
	if err != nil {
		t.Fatal(err)
	}
	l, err := oplog.Open(filepath.Join(stateDir, oplogName), self.Signer(), nil)
	if err != nil {
		t.Fatal(err)
	}
	insertFrom(t, l, peer, x0, x1, x2, x3)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	n := startNode(t, folder, freeUDPPort(t))
	ctx := context.Background()
	waitFor(t, "the placed ops recorded", func() string {
		applied, _ := n.db.Applied(ctx)
		if applied[peer.ID] < x2.Seq {
			return fmt.Sprintf("applied %d", applied[peer.ID])
		}
		return ""
	})
	if got := n.ops.Highest(n.ID()); got != 0 {
		t.Fatalf("the node logged %d ops of its own; the peer's placed files were taken for local changes\n%s", got, n.logs)
	}
	for _, op := range []oplog.Op{x0, x1, x2} {
		f, ok, err := n.db.File(ctx, op.Path)
		if err != nil || !ok || f.Deleted || f.Hash != op.Hash || f.Origin != peer.ID || f.Seq != op.Seq {
			t.Fatalf("%s recorded as %+v (%v, %v), want the peer's op %d", op.Path, f, ok, err, op.Seq)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(folder, "two.txt")); string(b) != string(two) {
		t.Fatalf("two.txt holds %q: x3 cannot have been applied without its content", b)
	}

	// x3 still waits for its content; a file the user writes meanwhile is
	// this device's change, and so is an edit of what x1 left.
	writeAt("mine.txt", []byte("the user's"))
	writeAt(x1.Path, []byte("one, edited by the user"))
	waitFor(t, "the user's changes logged", func() string {
		if got := n.ops.Highest(n.ID()); got != 2 {
			return fmt.Sprintf("own ops %d", got)
		}
		return ""
	})
}

func TestLeftBy(t *testing.T) {
	peer := certs.DeviceID{1}
	h1, h2 := content.Sum([]byte("one")), content.Sum([]byte("two"))
	file := func(h content.Hash) []watcher.Observation {
		return []watcher.Observation{{Path: "p", Exists: true, Hash: h}}
	}
	dir := []watcher.Observation{{Path: "p", Exists: true, Dir: true}}
	absent := []watcher.Observation{{Path: "p"}}
	op := func(k oplog.Kind, p, to string) oplog.Op {
		return oplog.Op{Origin: peer, Seq: 1, Kind: k, Path: p, NewPath: to, Hash: h1}
	}
	tests := []struct {
		name string
		op   oplog.Op
		obs  []watcher.Observation
		want bool
	}{
		{"write, its content", op(oplog.KindWrite, "p", ""), file(h1), true},
		{"write, other content", op(oplog.KindWrite, "p", ""), file(h2), false},
		{"write, nothing there", op(oplog.KindWrite, "p", ""), absent, false},
		{"write, a directory", op(oplog.KindWrite, "p", ""), dir, false},
		{"write of another path", op(oplog.KindWrite, "q", ""), file(h1), false},
		{"delete, nothing there", op(oplog.KindDelete, "p", ""), absent, true},
		{"delete, a file there", op(oplog.KindDelete, "p", ""), file(h1), false},
		{"rename source, nothing there", op(oplog.KindRename, "p", "q"), absent, true},
		{"rename source, still there", op(oplog.KindRename, "p", "q"), file(h1), false},
		{"rename target, its content", op(oplog.KindRename, "q", "p"), file(h1), true},
		{"rename target, nothing there", op(oplog.KindRename, "q", "p"), absent, false},
		{"mkdir, a directory", op(oplog.KindMkdir, "p", ""), dir, true},
		{"mkdir, a file", op(oplog.KindMkdir, "p", ""), file(h1), false},
		{"rmdir, nothing there", op(oplog.KindRmdir, "p", ""), absent, true},
		{"rmdir, still there", op(oplog.KindRmdir, "p", ""), dir, false},
	}
	for _, tt := range tests {
		if got := leftBy(tt.op, "p", tt.obs); got != tt.want {
			t.Errorf("%s: leftBy = %v, want %v", tt.name, got, tt.want)
		}
	}
}
