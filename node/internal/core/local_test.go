package core

import (
	"fmt"
	"strings"
	"testing"

	"github.com/drive-node/drive-node/certs"
	"github.com/drive-node/drive-node/content"
	"github.com/drive-node/drive-node/oplog"
	"github.com/drive-node/drive-node/state"
	"github.com/drive-node/drive-node/vclock"
	"github.com/drive-node/drive-node/watcher"
)

var self = certs.DeviceID{1}

func file(path, data string) watcher.Observation {
	return watcher.Observation{Path: path, Exists: true, Hash: content.Sum([]byte(data)), Size: int64(len(data)), Mode: 0o644, MTime: 100}
}
func dir(path string) watcher.Observation {
	return watcher.Observation{Path: path, Exists: true, Dir: true, Mode: 0o755}
}
func gone(path string) watcher.Observation { return watcher.Observation{Path: path} }

func rec(path, data string) state.File {
	return state.File{Path: path, Hash: content.Sum([]byte(data)), Size: int64(len(data)), Mode: 0o644, MTime: 100,
		Version: vclock.Vector{}.With(self, 3)}
}
func recDir(path string) state.File {
	return state.File{Path: path, Dir: true, Mode: 0o755, Version: vclock.Vector{}.With(self, 2)}
}

// describe renders ops compactly: "write a", "rename a>b".
func describe(ops []oplog.Op) string {
	var parts []string
	for _, op := range ops {
		s := op.Kind.String() + " " + op.Path
		if op.Kind == oplog.KindRename {
			s += ">" + op.NewPath
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, ", ")
}

func TestPlanLocal(t *testing.T) {
	tomb := rec("t", "old")
	tomb.Deleted, tomb.Hash = true, content.Hash{}
	for _, tc := range []struct {
		name     string
		obs      []watcher.Observation
		known    []state.File
		want     string
		metaOnly int
	}{
		{"new file", []watcher.Observation{file("a", "x")}, nil, "write a", 0},
		{"unchanged", []watcher.Observation{file("a", "x")}, []state.File{rec("a", "x")}, "", 0},
		{"touched only", []watcher.Observation{func() watcher.Observation { o := file("a", "x"); o.MTime = 200; return o }()}, []state.File{rec("a", "x")}, "", 1},
		{"modified", []watcher.Observation{file("a", "y")}, []state.File{rec("a", "x")}, "write a", 0},
		{"chmod", []watcher.Observation{func() watcher.Observation { o := file("a", "x"); o.Mode = 0o755; return o }()}, []state.File{rec("a", "x")}, "write a", 0},
		{"deleted", []watcher.Observation{gone("a")}, []state.File{rec("a", "x")}, "delete a", 0},
		{"gone but unknown", []watcher.Observation{gone("a")}, nil, "", 0},
		{"gone, already tombstone", []watcher.Observation{gone("t")}, []state.File{tomb}, "", 0},
		{"recreated over tombstone", []watcher.Observation{file("t", "new")}, []state.File{tomb}, "write t", 0},
		{"rename", []watcher.Observation{gone("a"), file("b", "x")}, []state.File{rec("a", "x")}, "rename a>b", 0},
		{"rename onto existing stays write+delete", []watcher.Observation{gone("a"), file("b", "x")}, []state.File{rec("a", "x"), rec("b", "other")}, "write b, delete a", 0},
		{"two identical moved", []watcher.Observation{gone("a"), gone("b"), file("c", "x"), file("d", "x")}, []state.File{rec("a", "x"), rec("b", "x")}, "rename a>c, rename b>d", 0},
		{"nested dirs ordered", []watcher.Observation{file("a/b/f", "x"), dir("a/b"), dir("a")}, nil, "mkdir a, mkdir a/b, write a/b/f", 0},
		{"removed tree ordered", []watcher.Observation{gone("a"), gone("a/b"), gone("a/b/f")}, []state.File{recDir("a"), recDir("a/b"), rec("a/b/f", "x")}, "delete a/b/f, rmdir a/b, rmdir a", 0},
		{"file became dir", []watcher.Observation{dir("a")}, []state.File{rec("a", "x")}, "mkdir a", 0},
		{"file became dir with content", []watcher.Observation{dir("a"), file("a/x", "1")}, []state.File{rec("a", "x")}, "mkdir a, write a/x", 0},
		{"dir became file", []watcher.Observation{file("a", "x")}, []state.File{recDir("a")}, "write a", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			known := map[string]state.File{}
			for _, k := range tc.known {
				known[k.Path] = k
			}
			plan := PlanLocal(tc.obs, known)
			if got := describe(plan.Ops); got != tc.want {
				t.Fatalf("ops = %q, want %q", got, tc.want)
			}
			if len(plan.MetaOnly) != tc.metaOnly {
				t.Fatalf("metaOnly = %d, want %d", len(plan.MetaOnly), tc.metaOnly)
			}
			for _, op := range plan.Ops {
				if k, ok := known[op.Path]; ok && op.Parent.Compare(k.Version) == 1 /* Before */ {
					t.Fatalf("%s: parent %v older than recorded %v", op, op.Parent, k.Version)
				}
			}
		})
	}
}

func TestRecordsFor(t *testing.T) {
	parent := vclock.Vector{}.With(certs.DeviceID{2}, 5)
	base := oplog.Op{Origin: self, Seq: 7, Lamport: 9, Hash: content.Sum([]byte("x")), Size: 1, Mode: 0o600, MTime: 5, Parent: parent}
	for _, tc := range []struct {
		kind oplog.Kind
		want string // path:live|dead per record
	}{
		{oplog.KindWrite, "a:live"},
		{oplog.KindMkdir, "a:live"},
		{oplog.KindDelete, "a:dead"},
		{oplog.KindRmdir, "a:dead"},
		{oplog.KindRename, "a:dead b:live"},
	} {
		op := base
		op.Kind, op.Path = tc.kind, "a"
		if tc.kind == oplog.KindRename {
			op.NewPath = "b"
		}
		var got []string
		for _, r := range RecordsFor(op, 42) {
			s := "live"
			if r.Deleted {
				s = "dead"
				if r.DeletedAt != 42 || !r.Hash.IsZero() {
					t.Errorf("%v: tombstone %+v", tc.kind, r)
				}
			}
			if r.Version.Get(self) != 7 || r.Version.Get(certs.DeviceID{2}) != 5 || r.Seq != 7 || r.Lamport != 9 {
				t.Errorf("%v: version %v seq %d", tc.kind, r.Version, r.Seq)
			}
			if (tc.kind == oplog.KindMkdir || tc.kind == oplog.KindRmdir) != r.Dir {
				t.Errorf("%v: Dir = %v", tc.kind, r.Dir)
			}
			got = append(got, r.Path+":"+s)
		}
		if fmt.Sprint(got) != fmt.Sprint(strings.Fields(tc.want)) {
			t.Errorf("%v: records %v, want %v", tc.kind, got, tc.want)
		}
	}
}
