package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drive-node/drive-node/internal/netlab"
)

// waitLog waits until the daemon's log holds want.
func waitLog(t *testing.T, p **netlab.Process, what, want string) {
	t.Helper()
	netlab.Eventually(t, 20*time.Second, what, func() (bool, string) {
		return strings.Contains((*p).Log(), want), "not logged: " + want
	})
}

// absent fails the test if any of paths (relative to dir) exists.
func absent(t *testing.T, where, dir string, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if _, err := os.Lstat(filepath.Join(dir, p)); err == nil {
			t.Errorf("%s has %s, which should not have reached it", where, p)
		}
	}
}

// TestIgnoreRules: junk and what .driveignore names never leave A; `ignore
// --check` names the rule that decides; a rule that appears after a file
// synced deletes it nowhere and keeps its later edits home; a device's own
// rule sets a peer's file aside there until the rule goes; removing a
// folder rule sends what changed under it. Every rule change takes effect
// in the running daemons.
func TestIgnoreRules(t *testing.T) {
	hp := newHistPair(t, nil, nil)
	rules := "# build output\nbuild/\n*.tmp\n"
	writeFile(t, filepath.Join(hp.dirA, ".driveignore"), []byte(rules))
	// A rule applies from when the daemon reads it: what is made in the
	// same instant may be recorded before (it then stays synced).
	waitLog(t, &hp.pa, "A puts the rules in force", `msg="ignore rules in force" folder_rules=2`)
	junk := []string{".DS_Store", "docs/Thumbs.db", "docs/~$report.docx", "docs/.~lock.report.odt#", "docs/.notes.txt.swp",
		"docs/._notes.txt", "film.mp4.part", "build/out.o", "build/sub/deep.o", "x.tmp"}
	for _, p := range junk {
		writeFile(t, filepath.Join(hp.dirA, p), []byte("junk "+p+"\n"))
	}
	writeFile(t, filepath.Join(hp.dirA, "data/cache.bin"), []byte("cache 1\n"))
	writeFile(t, filepath.Join(hp.dirA, "docs/report.docx"), []byte("the report\n"))
	arrives(t, "A's files reach B", filepath.Join(hp.dirB, "docs/report.docx"), []byte("the report\n"), 20*time.Second)
	arrives(t, "the rules file reaches B", filepath.Join(hp.dirB, ".driveignore"), []byte(rules), 20*time.Second)
	arrives(t, "data/cache.bin reaches B", filepath.Join(hp.dirB, "data/cache.bin"), []byte("cache 1\n"), 20*time.Second)
	absent(t, "B", hp.dirB, append(junk, "build")...)

	out, errOut, code := hp.cli(t, hp.a, "ignore", "--folder", hp.dirA, "--check", "x.tmp", "build/sub/deep.o", "docs/report.docx", ".DS_Store", "docs/~$report.docx")
	if code != 0 {
		t.Fatalf("ignore --check exited %d: %s%s", code, out, errOut)
	}
	want := ".driveignore:3:*.tmp\tx.tmp\n.driveignore:2:build/\tbuild/sub/deep.o\n::\tdocs/report.docx\n(defaults):1:.DS_Store\t.DS_Store\n(defaults):9:~$*\tdocs/~$report.docx\n"
	if out != want {
		t.Fatalf("ignore --check printed\n%s\nwant\n%s", out, want)
	}
	if _, _, code := hp.cli(t, hp.a, "ignore", "--folder", hp.dirA, "--check", "docs/report.docx"); code != 1 {
		t.Fatalf("ignore --check of a path not ignored exited %d; want 1", code)
	}

	// A rule for data/ after data/cache.bin synced.
	rules += "data/\n"
	writeFile(t, filepath.Join(hp.dirA, ".driveignore"), []byte(rules))
	waitLog(t, &hp.pa, "A puts the data/ rule in force", `msg="ignore rules in force" folder_rules=3`)
	waitLog(t, &hp.pb, "B puts the data/ rule in force", `msg="ignore rules in force" folder_rules=3`)
	writeFile(t, filepath.Join(hp.dirA, "data/cache.bin"), []byte("cache 2, made under the rule\n"))
	writeFile(t, filepath.Join(hp.dirA, "after-rule.txt"), []byte("after the rule\n"))
	arrives(t, "a change after the rule reaches B", filepath.Join(hp.dirB, "after-rule.txt"), []byte("after the rule\n"), 20*time.Second)
	for _, dir := range []string{hp.dirA, hp.dirB} {
		if _, err := os.Stat(filepath.Join(dir, "data/cache.bin")); err != nil {
			t.Fatalf("the rule deleted data/cache.bin: %v", err)
		}
	}
	if got, _ := os.ReadFile(filepath.Join(hp.dirB, "data/cache.bin")); string(got) != "cache 1\n" {
		t.Fatalf("B's data/cache.bin is %q: an edit under the rule reached it", got)
	}

	// B's own rule for videos/.
	if err := os.WriteFile(filepath.Join(hp.dirB, ".drive-node", "ignore"), []byte("videos/\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	waitLog(t, &hp.pb, "B puts its own rule in force", `device_rules=1`)
	writeFile(t, filepath.Join(hp.dirA, "videos/holiday.mp4"), []byte("a long film\n"))
	writeFile(t, filepath.Join(hp.dirA, "after-video.txt"), []byte("after the video\n"))
	arrives(t, "a change after the video reaches B", filepath.Join(hp.dirB, "after-video.txt"), []byte("after the video\n"), 20*time.Second)
	absent(t, "B", hp.dirB, "videos/holiday.mp4")
	netlab.Eventually(t, 10*time.Second, "B's status counts what it set aside", func() (bool, string) {
		st, err := readStatus(hp.b, hp.bin, hp.dirB)
		return err == nil && st.Ignored >= 1, fmt.Sprintf("ignored %d, %v", st.Ignored, err)
	})
	if err := os.Remove(filepath.Join(hp.dirB, ".drive-node", "ignore")); err != nil {
		t.Fatal(err)
	}
	arrives(t, "the video reaches B once B's rule is gone", filepath.Join(hp.dirB, "videos/holiday.mp4"), []byte("a long film\n"), 20*time.Second)

	// The data/ rule goes: A's edit made under it reaches B.
	rules = strings.TrimSuffix(rules, "data/\n")
	writeFile(t, filepath.Join(hp.dirA, ".driveignore"), []byte(rules))
	arrives(t, "the edit made under the removed rule reaches B", filepath.Join(hp.dirB, "data/cache.bin"), []byte("cache 2, made under the rule\n"), 30*time.Second)
	absent(t, "B", hp.dirB, append(junk, "build")...)
}
