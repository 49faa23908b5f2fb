package node

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drive-node/drive-node/content"
	"github.com/drive-node/drive-node/node/internal/core"
	"github.com/drive-node/drive-node/oplog"
	"github.com/drive-node/drive-node/state"
)

// TestFileAndDirectoryAtOnePath: two devices, apart, give one path
// different types. When they meet, both end with the directory and what
// was made inside it, and the file's content in a conflict copy beside it;
// neither is left with an op it cannot apply.
func TestFileAndDirectoryAtOnePath(t *testing.T) {
	for _, tc := range []struct {
		name   string
		before func(t *testing.T, a string) // synced before the two part
		onA    func(t *testing.T, a string)
		onB    func(t *testing.T, b string)
		inside string // the file that must be inside the directory
	}{{
		name:   "file on one, directory with a file on the other",
		before: func(t *testing.T, a string) {},
		onA:    func(t *testing.T, a string) { write(t, filepath.Join(a, "z"), "a's file") },
		onB:    func(t *testing.T, b string) { write(t, filepath.Join(b, "z/b.txt"), "b's file inside") },
		inside: "b.txt",
	}, {
		name:   "directory replaced by a file while a file is added inside it",
		before: func(t *testing.T, a string) { write(t, filepath.Join(a, "z/old.txt"), "old") },
		onA: func(t *testing.T, a string) {
			if err := os.RemoveAll(filepath.Join(a, "z")); err != nil {
				t.Fatal(err)
			}
			write(t, filepath.Join(a, "z"), "a's file")
		},
		onB:    func(t *testing.T, b string) { write(t, filepath.Join(b, "z/new.txt"), "b's file inside") },
		inside: "new.txt",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := t.TempDir(), t.TempDir()
			pairFolders(t, a, b)
			tc.before(t, a)
			addrA, addrB := freeUDPPort(t), freeUDPPort(t)
			na, nb := startNode(t, a, addrA, addrB), startNode(t, b, addrB, addrA)
			waitFor(t, "first sync", func() string { return sameTree(a, b) })
			na.stop(t)
			nb.stop(t)
			tc.onA(t, a)
			tc.onB(t, b)

			na, nb = startNode(t, a, addrA, addrB), startNode(t, b, addrB, addrA)
			waitFor(t, "both hold the directory, its file and the conflict copy", func() string {
				for _, dir := range []string{a, b} {
					if st, err := os.Stat(filepath.Join(dir, "z", tc.inside)); err != nil || !st.Mode().IsRegular() {
						return dir + ": no z/" + tc.inside
					}
					if copyOf(dir, "z") != "a's file" {
						return dir + ": no conflict copy of the file z"
					}
				}
				return sameTree(a, b)
			})
			// An op may wait a pass for content its peer has moved to a
			// conflict copy and not yet recorded (the peer then says it does
			// not have it); what must never happen is an op that cannot be
			// placed, which would hold its origin back.
			for _, n := range []*runningNode{na, nb} {
				for _, line := range strings.Split(n.logs.String(), "\n") {
					if strings.Contains(line, "op stays pending") && !strings.Contains(line, ErrContentNowhere.Error()) {
						t.Fatalf("%s left an op pending:\n%s", n.folder, n.logs)
					}
				}
			}
		})
	}
}

// copyOf returns the content of the conflict copy of name in dir, or "".
func copyOf(dir, name string) string {
	matches, _ := filepath.Glob(filepath.Join(dir, name+".conflict-*"))
	if len(matches) != 1 {
		return ""
	}
	b, _ := os.ReadFile(matches[0])
	return string(b)
}

// TestFileOverADirectoryWithUnsyncedEntries: a peer's file replaces a
// directory it saw, but the directory here holds an entry that is never
// synced (a symlink). The directory stays, the file becomes its conflict
// copy, and the peer's next op is not held back behind it.
func TestFileOverADirectoryWithUnsyncedEntries(t *testing.T) {
	ctx := context.Background()
	folder := t.TempDir()
	if err := os.MkdirAll(filepath.Join(folder, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/hostname", filepath.Join(folder, "d", "link")); err != nil {
		t.Fatal(err)
	}
	peer := pairedPeer(t, folder, "peer")
	n := startNode(t, folder, freeUDPPort(t))
	var rec state.File
	waitFor(t, "d recorded", func() string {
		r, ok, _ := n.db.File(ctx, "d")
		if !ok || !r.Dir {
			return "no record of the directory d"
		}
		rec = r
		return ""
	})
	file, other := []byte("the peer's file d"), []byte("a later, unrelated file")
	src := &memSource{data: map[content.Hash][]byte{content.Sum(file): file, content.Sum(other): other}}
	sendAsPeer(t, peer, n, src, []oplog.Op{
		{Origin: peer.ID, Seq: 1, Lamport: rec.Lamport + 1, Kind: oplog.KindWrite, Path: "d",
			Hash: content.Sum(file), Size: int64(len(file)), Mode: 0o644, MTime: time.Now().UnixNano(), Parent: rec.Version},
		{Origin: peer.ID, Seq: 2, Lamport: rec.Lamport + 2, Kind: oplog.KindWrite, Path: "other.txt",
			Hash: content.Sum(other), Size: int64(len(other)), Mode: 0o644, MTime: time.Now().UnixNano()},
	})
	waitFor(t, "both ops applied", func() string {
		if applied, _ := n.db.Applied(ctx); applied[peer.ID] != 2 {
			return fmt.Sprintf("applied %d of 2", applied[peer.ID])
		}
		return ""
	})
	if st, err := os.Lstat(filepath.Join(folder, "d", "link")); err != nil || st.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("the directory's symlink is gone: %v", err)
	}
	if got := copyOf(folder, "d"); got != string(file) {
		t.Fatalf("conflict copy of d holds %q", got)
	}
}

// TestFileTurnedDirectoryWhileAPeerWritesInside: a peer writes a/x where
// this device has recorded a file a, and the user has just replaced that
// file with a directory of their own. The user's directory is not moved
// aside as if it were the recorded file: the peer's file joins it.
func TestFileTurnedDirectoryWhileAPeerWritesInside(t *testing.T) {
	ctx := context.Background()
	folder := t.TempDir()
	write(t, filepath.Join(folder, "a"), "a file, recorded")
	peer := pairedPeer(t, folder, "peer")
	n := startNodeWith(t, folder, freeUDPPort(t), func(n *Node) {
		n.decided = func(op oplog.Op, _ core.RemotePlan) {
			if op.Path == "a/x" {
				if st, err := os.Lstat(filepath.Join(folder, "a")); err == nil && !st.IsDir() {
					os.Remove(filepath.Join(folder, "a"))
					write(t, filepath.Join(folder, "a", "mine.txt"), "the user's")
				}
			}
		}
	})
	waitFor(t, "a recorded", func() string {
		if _, ok, _ := n.db.File(ctx, "a"); !ok {
			return "no record of a"
		}
		return ""
	})
	data := []byte("the peer's a/x")
	src := &memSource{data: map[content.Hash][]byte{content.Sum(data): data}}
	sendAsPeer(t, peer, n, src, []oplog.Op{{Origin: peer.ID, Seq: 1, Lamport: 1, Kind: oplog.KindWrite, Path: "a/x",
		Hash: content.Sum(data), Size: int64(len(data)), Mode: 0o644, MTime: time.Now().UnixNano()}})
	waitFor(t, "a/x next to the user's file", func() string {
		if b, _ := os.ReadFile(filepath.Join(folder, "a", "x")); string(b) != string(data) {
			return "no a/x"
		}
		if b, _ := os.ReadFile(filepath.Join(folder, "a", "mine.txt")); string(b) != "the user's" {
			return "no a/mine.txt"
		}
		return ""
	})
	if moved, _ := filepath.Glob(filepath.Join(folder, "a.conflict-*", "mine.txt")); len(moved) != 0 {
		t.Fatalf("the user's directory was moved aside: %v", moved)
	}
}
