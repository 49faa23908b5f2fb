package node

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
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
			for _, n := range []*runningNode{na, nb} {
				if strings.Contains(n.logs.String(), "op stays pending") {
					t.Fatalf("%s left an op pending:\n%s", n.folder, n.logs)
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
