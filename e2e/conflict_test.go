package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drive-node/drive-node/internal/netlab"
)

// waitOps waits until the daemon on h has at least n ops in its log, so a
// change made while it is cut off is recorded before the link heals.
func waitOps(t *testing.T, h *netlab.Host, bin, dir string, n uint64) {
	t.Helper()
	netlab.Eventually(t, 20*time.Second, "change recorded on "+h.Name, func() (bool, string) {
		st, err := readStatus(h, bin, dir)
		return err == nil && st.Ops >= n, fmt.Sprintf("%d ops of %d, %v", st.Ops, n, err)
	})
}

func conflictCopies(t *testing.T, dir, stem string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, stem+".conflict-*"))
	if err != nil {
		t.Fatal(err)
	}
	for i := range m {
		m[i] = filepath.Base(m[i])
	}
	return m
}

// TestConcurrentEditsConverge cuts the link between A and B, edits the same
// file differently on both (deletes on one what the other edits, renames on
// one what the other edits), heals the link, and checks that both hosts end
// with the same winner, the same conflict copy, the edit that beat the
// delete, and the edit carried to the new name.
func TestConcurrentEditsConverge(t *testing.T) {
	p := newPair(t)
	writeFile(t, filepath.Join(p.dirA, "report.txt"), []byte("first draft\n"))
	writeFile(t, filepath.Join(p.dirA, "notes.txt"), []byte("notes v1\n"))
	writeFile(t, filepath.Join(p.dirA, "plan.txt"), []byte("plan v1\n"))
	if err := os.Mkdir(filepath.Join(p.dirA, "archive"), 0o755); err != nil {
		t.Fatal(err)
	}
	converge(t, "files on both before the cut", p.dirA, p.dirB, 20*time.Second)
	stA, _ := readStatus(p.a, p.bin, p.dirA)
	stB, _ := readStatus(p.b, p.bin, p.dirB)

	p.lab.Cut(t, p.b)
	writeFile(t, filepath.Join(p.dirA, "report.txt"), []byte("A's edit of the report\n"))
	writeFile(t, filepath.Join(p.dirB, "report.txt"), []byte("B's different edit\n"))
	if err := os.Remove(filepath.Join(p.dirA, "notes.txt")); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(p.dirB, "notes.txt"), []byte("notes v2, edited on B while A deleted them\n"))
	if err := os.Rename(filepath.Join(p.dirA, "plan.txt"), filepath.Join(p.dirA, "archive", "plan-final.txt")); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(p.dirB, "plan.txt"), []byte("plan v2, edited on B while A renamed it\n"))
	waitOps(t, p.a, p.bin, p.dirA, stA.Ops+3)
	waitOps(t, p.b, p.bin, p.dirB, stB.Ops+3)
	p.lab.Heal(t, p.b)

	converge(t, "after the heal both hosts hold the same tree", p.dirA, p.dirB, 60*time.Second)
	got, _ := os.ReadFile(filepath.Join(p.dirA, "report.txt"))
	copies := conflictCopies(t, p.dirA, "report")
	if len(copies) != 1 {
		t.Fatalf("want one conflict copy of report.txt, got %v", copies)
	}
	loser, _ := os.ReadFile(filepath.Join(p.dirA, copies[0]))
	versions := map[string]bool{string(got): true, string(loser): true}
	if !versions["A's edit of the report\n"] || !versions["B's different edit\n"] {
		t.Fatalf("an edit was lost: report.txt %q, copy %q", got, loser)
	}
	if !strings.HasSuffix(copies[0], ".txt") {
		t.Fatalf("conflict copy %q lost the extension", copies[0])
	}
	notes, err := os.ReadFile(filepath.Join(p.dirA, "notes.txt"))
	if err != nil || !strings.Contains(string(notes), "edited on B") {
		t.Fatalf("the edit concurrent with the delete did not win: %q %v", notes, err)
	}
	plan, err := os.ReadFile(filepath.Join(p.dirA, "archive", "plan-final.txt"))
	if err != nil || !strings.Contains(string(plan), "edited on B while A renamed it") {
		t.Fatalf("the edit concurrent with the rename is not at the new name: %q %v", plan, err)
	}
	if _, err := os.Stat(filepath.Join(p.dirA, "plan.txt")); err == nil {
		t.Fatal("plan.txt is back at its old name")
	}
	t.Logf("winner %q, conflict copy %s holds %q", got, copies[0], loser)

	// Both report the conflict copy they made in status.
	for _, side := range []struct {
		h   *netlab.Host
		dir string
	}{{p.a, p.dirA}, {p.b, p.dirB}} {
		out := side.h.Run(t, p.bin, "status", "--folder", side.dir, "--json")
		var st struct {
			Conflicts []struct{ Copy, Original string }
		}
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			t.Fatal(err)
		}
		if len(st.Conflicts) != 1 || st.Conflicts[0].Copy != copies[0] || st.Conflicts[0].Original != "report.txt" {
			t.Fatalf("status on %s lists conflicts %+v, want %s", side.h.Name, st.Conflicts, copies[0])
		}
	}
}
