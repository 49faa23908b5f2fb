package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/drive-node/drive-node/internal/netlab"
)

// TestFoldedLogCatchUp: A folds its op log (--fold-after 100) while B is
// off and before C is paired. B comes back and catches up across the
// gaps; C, paired afterwards, gets the whole folder from the ops A kept;
// a change on C then reaches both. Each round of rewrites is waited for
// in A's status, so every round is its own ops and the fold has ops B
// never had to leave out.
func TestFoldedLogCatchUp(t *testing.T) {
	const files = 120
	lab := netlab.New(t, 3)
	bin := netlab.BuildBinary(t, "github.com/drive-node/drive-node/cmd/drive-node")
	var dirs [3]string
	for i := range dirs {
		dirs[i] = filepath.Join(t.TempDir(), string(rune('A'+i)))
		if err := os.MkdirAll(dirs[i], 0o755); err != nil {
			t.Fatal(err)
		}
	}
	a, b, c := lab.Host(0), lab.Host(1), lab.Host(2)
	pairHosts(t, bin, a, b, dirs[0], dirs[1], nil)
	// Every round rewrites every file: the brake would hold it on B.
	fold := []string{"--fold-after", "100", "--fold-age", "0", "--brake", "off"}
	pa := startDaemon(t, a, bin, dirs[0], "A", fold...)
	pb := startDaemon(t, b, bin, dirs[1], "B", fold...)
	var pc *netlab.Process
	t.Cleanup(func() {
		if t.Failed() {
			for name, p := range map[string]*netlab.Process{"A": pa, "B": pb, "C": pc} {
				if p != nil {
					t.Logf("%s's log (last lines):\n%s", name, lastLines(p.Log(), 60))
				}
			}
		}
	})

	round := func(r int) {
		t.Helper()
		before, err := readStatus(a, bin, dirs[0])
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < files; i++ {
			writeFile(t, filepath.Join(dirs[0], fmt.Sprintf("d%d/f%03d.txt", i%6, i)), []byte(fmt.Sprintf("file %d, round %d\n", i, r)))
		}
		netlab.Eventually(t, 30*time.Second, fmt.Sprintf("A records round %d", r), func() (bool, string) {
			st, err := readStatus(a, bin, dirs[0])
			return err == nil && st.Ops >= before.Ops+files, fmt.Sprintf("%d ops, %d before, %v", st.Ops, before.Ops, err)
		})
	}
	round(0)
	converge(t, "B has round 0", dirs[0], dirs[1], 30*time.Second)
	pb.Kill()
	for r := 1; r <= 3; r++ {
		round(r)
	}
	folded := regexp.MustCompile(`msg="op log folded" read=(\d+) folded=(\d+)`)
	netlab.Eventually(t, 60*time.Second, "A folds its log", func() (bool, string) {
		for _, m := range folded.FindAllStringSubmatch(pa.Log(), -1) {
			if n, _ := strconv.Atoi(m[2]); n >= 2*files {
				return true, ""
			}
		}
		return false, fmt.Sprintf("folds logged: %q", folded.FindAllString(pa.Log(), -1))
	})

	pb = startDaemon(t, b, bin, dirs[1], "B", fold...)
	converge(t, "B, away during the fold, catches up", dirs[0], dirs[1], 60*time.Second)

	pairHosts(t, bin, a, c, dirs[0], dirs[2], nil)
	pc = startDaemon(t, c, bin, dirs[2], "C", fold...)
	converge(t, "C, paired after the fold, gets the folder", dirs[0], dirs[2], 60*time.Second)

	writeFile(t, filepath.Join(dirs[2], "from-c.txt"), []byte("made on C after the fold\n"))
	converge(t, "a change on C reaches A", dirs[0], dirs[2], 30*time.Second)
	converge(t, "and B", dirs[0], dirs[1], 30*time.Second)
}
