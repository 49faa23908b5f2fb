package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/drive-node/drive-node/internal/netlab"
	"github.com/drive-node/drive-node/node"
	"github.com/drive-node/drive-node/state"
)

// histPair is a pair whose daemons run with extra flags (the brake, the
// version store), which a restart keeps.
type histPair struct {
	*pair
	flagsA, flagsB []string
	idA, idB       string // device IDs, as `drive-node id` prints them
}

// newHistPair builds a two-host lab, pairs the hosts (each calls the other
// A or B) and starts both daemons with their flags. On failure the tail of
// each daemon's log is printed.
func newHistPair(t *testing.T, flagsA, flagsB []string) *histPair {
	t.Helper()
	return newHistPairPrepared(t, flagsA, flagsB, nil)
}

// newHistPairPrepared is newHistPair calling prepare, if not nil, once the
// hosts are paired and before the daemons start.
func newHistPairPrepared(t *testing.T, flagsA, flagsB []string, prepare func(p *pair)) *histPair {
	t.Helper()
	p := &pair{bin: netlab.BuildBinary(t, "github.com/drive-node/drive-node/cmd/drive-node"), lab: netlab.New(t, 2)}
	p.a, p.b = p.lab.Host(0), p.lab.Host(1)
	p.dirA, p.dirB = filepath.Join(t.TempDir(), "A"), filepath.Join(t.TempDir(), "B")
	for _, d := range []string{p.dirA, p.dirB} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	pairHosts(t, p.bin, p.a, p.b, p.dirA, p.dirB, nil)
	hp := &histPair{pair: p, flagsA: flagsA, flagsB: flagsB}
	hp.idA = lastLine(p.a.Run(t, p.bin, "id", "--folder", p.dirA))
	hp.idB = lastLine(p.b.Run(t, p.bin, "id", "--folder", p.dirB))
	if prepare != nil {
		prepare(p)
	}
	p.pa = startDaemon(t, p.a, p.bin, p.dirA, "A", flagsA...)
	p.pb = startDaemon(t, p.b, p.bin, p.dirB, "B", flagsB...)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("A's log (last lines):\n%s\nB's log (last lines):\n%s", lastLines(p.pa.Log(), 150), lastLines(p.pb.Log(), 150))
		}
	})
	hp.waitReady(t, p.a, p.dirA)
	hp.waitReady(t, p.b, p.dirB)
	return hp
}

// waitReady waits until the daemon for dir on h has recorded its start-up
// scan.
func (hp *histPair) waitReady(t *testing.T, h *netlab.Host, dir string) {
	t.Helper()
	netlab.Eventually(t, 30*time.Second, "daemon ready on "+h.Name, func() (bool, string) {
		st, err := readStatus(h, hp.bin, dir)
		return err == nil && st.Running && st.Ready, fmt.Sprintf("running %v, ready %v, %v", st.Running, st.Ready, err)
	})
}

// waitPeer waits until the daemon for dir on h sees its peer connected,
// or not.
func (hp *histPair) waitPeer(t *testing.T, h *netlab.Host, dir string, connected bool) {
	t.Helper()
	netlab.Eventually(t, 20*time.Second, fmt.Sprintf("peer of %s connected: %v", h.Name, connected), func() (bool, string) {
		st, err := readStatus(h, hp.bin, dir)
		return err == nil && len(st.Peers) == 1 && st.Peers[0].Connected == connected, fmt.Sprintf("%+v %v", st.Peers, err)
	})
}

// restartA starts A's daemon again with its flags (after a kill or stop).
func (hp *histPair) restartA(t *testing.T) {
	t.Helper()
	hp.pa = startDaemon(t, hp.a, hp.bin, hp.dirA, "A", hp.flagsA...)
}

// status reads the status of the daemon for dir on h, failing the test if
// it cannot be read.
func (hp *histPair) status(t *testing.T, h *netlab.Host, dir string) node.Status {
	t.Helper()
	st, err := readStatus(h, hp.bin, dir)
	if err != nil {
		t.Fatalf("status on %s: %v", h.Name, err)
	}
	return st
}

// cli runs drive-node with args on h and returns its stdout, stderr and
// exit code; only a command that could not run at all fails the test.
func (hp *histPair) cli(t *testing.T, h *netlab.Host, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := h.Command(ctx, hp.bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return stdout.String(), stderr.String(), ee.ExitCode()
	case err != nil:
		t.Fatalf("drive-node %s on %s: %v", strings.Join(args, " "), h.Name, err)
	}
	return stdout.String(), stderr.String(), 0
}

// history runs `drive-node history --json path` for dir on h.
func (hp *histPair) history(t *testing.T, h *netlab.Host, dir, path string) []node.HistoryEntry {
	t.Helper()
	out, errOut, code := hp.cli(t, h, "history", "--folder", dir, "--json", path)
	if code != 0 {
		t.Fatalf("history %s on %s: exit code %d\nstdout: %s\nstderr: %s", path, h.Name, code, out, errOut)
	}
	var hist []node.HistoryEntry
	if err := json.Unmarshal([]byte(out), &hist); err != nil {
		t.Fatalf("history %s on %s: %v\n%s", path, h.Name, err, out)
	}
	return hist
}

// restore runs `drive-node restore --json` with how (--at T or --version H)
// for paths of dir on h, and returns the results and the exit code.
func (hp *histPair) restore(t *testing.T, h *netlab.Host, dir string, how []string, paths ...string) ([]node.RestoreResult, int) {
	t.Helper()
	args := append(append([]string{"restore", "--folder", dir, "--json"}, how...), paths...)
	out, errOut, code := hp.cli(t, h, args...)
	var res []node.RestoreResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("drive-node %s on %s: exit code %d, output is not a JSON result list (%v)\nstdout: %s\nstderr: %s",
			strings.Join(args, " "), h.Name, code, err, out, errOut)
	}
	return res, code
}

// brakeCmd runs `drive-node approve` or `reject` for dir on h.
func (hp *histPair) brakeCmd(t *testing.T, h *netlab.Host, dir, cmd string) string {
	t.Helper()
	out, errOut, code := hp.cli(t, h, cmd, "--folder", dir)
	if code != 0 {
		t.Fatalf("%s on %s: exit code %d\nstdout: %s\nstderr: %s", cmd, h.Name, code, out, errOut)
	}
	return out
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// storePath is where dir's version store keeps the content named hash.
func storePath(dir, hash string) string {
	return filepath.Join(dir, node.VersionsDirName, hash[:2], hash)
}

// storeFiles lists the files in dir's version store, relative to it.
func storeFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	root := filepath.Join(dir, node.VersionsDirName)
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) && p == root {
			return filepath.SkipDir
		}
		if err != nil {
			return err
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(root, p)
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// hashTree maps each file under dir/prefix to its content's SHA-256 and
// each directory to "dir", by paths relative to dir, leaving out
// drive-node's own names.
func hashTree(t *testing.T, dir, prefix string) map[string]string {
	t.Helper()
	out, err := readHashTree(dir, prefix)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// readHashTree is hashTree for a tree that may change while it is read
// (a daemon applies changes to it).
func readHashTree(dir, prefix string) (map[string]string, error) {
	out := map[string]string{}
	root := filepath.Join(dir, prefix)
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == root {
			return nil
		}
		if strings.HasPrefix(d.Name(), ".drive-node") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			out[rel] = "dir"
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		out[rel] = sha(b)
		return nil
	})
	return out, err
}

// fileCount counts the regular files in dir, leaving out drive-node's own,
// without reading them; -1 if dir cannot be walked.
func fileCount(dir string) int {
	n := 0
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.HasPrefix(d.Name(), ".drive-node") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.Type().IsRegular() {
			n++
		}
		return nil
	})
	if err != nil {
		return -1
	}
	return n
}

// waitClockPast waits until the host clock is at least d past at.
func waitClockPast(at time.Time, d time.Duration) {
	for time.Now().Before(at.Add(d)) {
		time.Sleep(time.Until(at.Add(d)) + time.Millisecond)
	}
}

// outcomes counts restore results by outcome and lists the paths of each.
func outcomes(res []node.RestoreResult) map[string][]string {
	out := map[string][]string{}
	for _, r := range res {
		out[r.Outcome] = append(out[r.Outcome], r.Path)
	}
	for _, ps := range out {
		sort.Strings(ps)
	}
	return out
}

// unavailableWhy lists the unavailable results with their reasons.
func unavailableWhy(res []node.RestoreResult) string {
	var s []string
	for _, r := range res {
		if r.Outcome == node.Unavailable {
			s = append(s, r.Path+": "+r.Why)
		}
	}
	if len(s) > 5 {
		s = append(s[:5], fmt.Sprintf("… and %d more", len(s)-5))
	}
	return strings.Join(s, "; ")
}

// TestHistoryAndRestoreAcrossDevices: B deletes three of A's files and
// overwrites the fourth. A, which replaced them because of B's ops, keeps
// all four previous contents in its version store; B, whose own edits
// they were, keeps none. History on either device lists both versions of
// the overwritten file with the devices that made them. A restore on B to
// a time before its changes brings all four back, taking what B no longer
// has from A's store, and both devices end with the original contents.
func TestHistoryAndRestoreAcrossDevices(t *testing.T) {
	hp := newHistPair(t, nil, nil)
	orig := map[string][]byte{
		"docs/a.txt":      []byte("first file, made on A\n"),
		"docs/b.txt":      []byte("second file, made on A\n"),
		"c.txt":           []byte("third file, made on A\n"),
		"docs/report.txt": []byte("the report as A wrote it\n"),
	}
	const edited = "docs/report.txt"
	for p, b := range orig {
		writeFile(t, filepath.Join(hp.dirA, p), b)
	}
	converge(t, "4 files made on A reach B", hp.dirA, hp.dirB, 20*time.Second)
	// A file is in place a moment before the batch that placed it is
	// recorded; the time that splits the history is taken once B's
	// history has the first version at a time before it was asked (an op
	// not recorded yet is listed at the time of asking).
	netlab.Eventually(t, 10*time.Second, "B records A's version of "+edited, func() (bool, string) {
		asked := time.Now()
		hist := hp.history(t, hp.b, hp.dirB, edited)
		return len(hist) == 1 && !hist[0].At.IsZero() && hist[0].At.Before(asked), fmt.Sprintf("%+v", hist)
	})
	before := time.Now()
	waitClockPast(before, time.Second)

	newReport := []byte("B overwrote the report\n")
	for p := range orig {
		if p == edited {
			writeFile(t, filepath.Join(hp.dirB, p), newReport)
		} else if err := os.Remove(filepath.Join(hp.dirB, p)); err != nil {
			t.Fatal(err)
		}
	}
	converge(t, "B's 3 deletes and overwrite reach A", hp.dirA, hp.dirB, 20*time.Second)

	// A keeps the four previous contents, under their SHA-256 names.
	netlab.Eventually(t, 10*time.Second, "A records 4 versions", func() (bool, string) {
		st, err := readStatus(hp.a, hp.bin, hp.dirA)
		return err == nil && st.Versions.Versions >= 4, fmt.Sprintf("%+v %v", st.Versions, err)
	})
	if st := hp.status(t, hp.a, hp.dirA); st.Versions.Versions != 4 || st.Versions.Contents != 4 {
		t.Fatalf("A's status shows versions %+v; want 4 versions of 4 contents", st.Versions)
	}
	for p, b := range orig {
		got, err := os.ReadFile(storePath(hp.dirA, sha(b)))
		if err != nil {
			t.Fatalf("A's version store lacks the previous content of %s: %v (store holds %v)", p, err, storeFiles(t, hp.dirA))
		}
		if !bytes.Equal(got, b) {
			t.Fatalf("A's version store holds %q for %s; want %q", got, p, b)
		}
	}
	// B keeps no versions of its own edits: what it deleted is only in A's
	// store.
	if st := hp.status(t, hp.b, hp.dirB); st.Versions.Versions != 0 {
		t.Fatalf("B's status shows versions %+v after B's own edits; want none", st.Versions)
	}
	if files := storeFiles(t, hp.dirB); len(files) != 0 {
		t.Fatalf("B's version store holds %v after B's own edits; want nothing", files)
	}

	// History on both devices: A made the report, B overwrote it.
	for _, side := range []struct {
		h           *netlab.Host
		dir, oldWhr string
	}{{hp.a, hp.dirA, "version store"}, {hp.b, hp.dirB, "peer A"}} {
		hist := hp.history(t, side.h, side.dir, edited)
		if len(hist) != 2 {
			t.Fatalf("history of %s on %s has %d entries; want 2: %+v", edited, side.h.Name, len(hist), hist)
		}
		if hist[0].Device != hp.idA || hist[0].Hash != sha(orig[edited]) {
			t.Fatalf("history on %s: first entry by %s with hash %s; want A (%s) with %s: %+v",
				side.h.Name, hist[0].Device, hist[0].Hash, hp.idA, sha(orig[edited]), hist[0])
		}
		if hist[1].Device != hp.idB || hist[1].Hash != sha(newReport) {
			t.Fatalf("history on %s: second entry by %s with hash %s; want B (%s) with %s: %+v",
				side.h.Name, hist[1].Device, hist[1].Hash, hp.idB, sha(newReport), hist[1])
		}
		if !slices.Contains(hist[0].Where, side.oldWhr) {
			t.Fatalf("history on %s: the first version is at %v; want it to include %q", side.h.Name, hist[0].Where, side.oldWhr)
		}
		if hist[0].At.IsZero() || !hist[0].At.Before(before) || !hist[1].At.After(before) {
			t.Fatalf("history on %s: versions recorded at %v and %v; want before and after %v", side.h.Name, hist[0].At, hist[1].At, before)
		}
		t.Logf("history of %s on %s: %s %q at %v; %s %q at %v", edited, side.h.Name,
			hist[0].DeviceName, hist[0].Change, hist[0].Where, hist[1].DeviceName, hist[1].Change, hist[1].Where)
	}

	// Restore on B to before its changes.
	res, code := hp.restore(t, hp.b, hp.dirB, []string{"--at", before.UTC().Format(time.RFC3339Nano)}, slices.Sorted(maps.Keys(orig))...)
	if code != 0 {
		t.Fatalf("restore on B exited %d: %+v (unavailable: %s)", code, res, unavailableWhy(res))
	}
	if len(res) != 4 {
		t.Fatalf("restore on B gave %d results; want 4: %+v", len(res), res)
	}
	for _, r := range res {
		if r.Outcome != node.Restored || r.Hash != sha(orig[r.Path]) {
			t.Fatalf("restore on B: %s %s (hash %s, why %q); want restored with %s", r.Path, r.Outcome, r.Hash, r.Why, sha(orig[r.Path]))
		}
	}
	converge(t, "the restore on B reaches A", hp.dirA, hp.dirB, 20*time.Second)
	for p, b := range orig {
		for _, dir := range []string{hp.dirA, hp.dirB} {
			got, err := os.ReadFile(filepath.Join(dir, p))
			if err != nil || !bytes.Equal(got, b) {
				t.Fatalf("after the restore %s holds %q (%v); want %q", filepath.Join(dir, p), got, err, b)
			}
		}
	}
	if st := hp.status(t, hp.b, hp.dirB); len(st.Restores) != 1 || st.Restores[0].Restored != 4 {
		t.Fatalf("B's status lists restores %+v; want one that restored 4", st.Restores)
	}
}

// TestRestorePointInTime: 200 files in pit/ on A; a time T; then A renames
// 67 of them (some into a new directory), edits 67 and deletes 66. A
// restore of pit to T on A makes pit/ on both devices exactly what it was
// at T: the renamed-to names and the new directory gone, every file back
// with its content. A kept no copy of what it edited or deleted itself:
// those contents come from B's version store.
func TestRestorePointInTime(t *testing.T) {
	// Changing 2/3 of the folder is what the brake holds; it is not what
	// this test is about.
	off := []string{"--brake", "off"}
	hp := newHistPair(t, off, off)
	rng := testRand(t)
	var files []string
	for i := range 200 {
		var p string
		switch {
		case i < 80:
			p = fmt.Sprintf("pit/f%03d.txt", i)
		case i < 150:
			p = fmt.Sprintf("pit/sub/f%03d.txt", i)
		default:
			p = fmt.Sprintf("pit/sub/deep/f%03d.txt", i)
		}
		body := fmt.Appendf(nil, "pit file %d, %d\n", i, rng.Uint64())
		writeFile(t, filepath.Join(hp.dirA, p), body)
		files = append(files, p)
	}
	converge(t, "200 files in pit/ reach B", hp.dirA, hp.dirB, 30*time.Second)
	atT := hashTree(t, hp.dirA, "pit")
	T := time.Now()
	waitClockPast(T, time.Second)

	// Disjoint sets: renamed, edited, deleted.
	perm := rng.Perm(len(files))
	renamed, editedSet, deleted := perm[:67], perm[67:134], perm[134:]
	var renamedTo []string
	if err := os.MkdirAll(filepath.Join(hp.dirA, "pit/renamed"), 0o755); err != nil {
		t.Fatal(err)
	}
	for k, i := range renamed {
		to := filepath.Join(filepath.Dir(files[i]), "moved-"+filepath.Base(files[i]))
		if k%2 == 1 {
			to = "pit/renamed/" + filepath.Base(files[i])
		}
		if err := os.Rename(filepath.Join(hp.dirA, files[i]), filepath.Join(hp.dirA, to)); err != nil {
			t.Fatal(err)
		}
		renamedTo = append(renamedTo, to)
	}
	for _, i := range editedSet {
		writeFile(t, filepath.Join(hp.dirA, files[i]), fmt.Appendf(nil, "edited after T: %d\n", rng.Uint64()))
	}
	for _, i := range deleted {
		if err := os.Remove(filepath.Join(hp.dirA, files[i])); err != nil {
			t.Fatal(err)
		}
	}
	converge(t, "67 renames, 67 edits, 66 deletes reach B", hp.dirA, hp.dirB, 30*time.Second)
	// B replaced what A edited or deleted because of A's ops, and keeps
	// those 133 contents (and those of the renamed files too when A's
	// watcher reported the renames as deletes and new files).
	netlab.Eventually(t, 10*time.Second, "B records the versions", func() (bool, string) {
		st, err := readStatus(hp.b, hp.bin, hp.dirB)
		return err == nil && st.Versions.Versions >= 133 && st.PendingOps == 0, fmt.Sprintf("%+v, %d ops pending, %v", st.Versions, st.PendingOps, err)
	})
	if st := hp.status(t, hp.b, hp.dirB); st.Versions.Versions > 200 {
		t.Fatalf("B keeps %d versions after A changed 200 files; want at most 200", st.Versions.Versions)
	} else {
		t.Logf("B keeps %d versions of A's 67 renamed, 67 edited and 66 deleted files", st.Versions.Versions)
	}
	if d := treeDiffs(atT, hashTree(t, hp.dirA, "pit")); len(d) < 200 {
		t.Fatalf("the changes after T left pit/ differing from T in only %d ways: %v", len(d), d)
	}

	start := time.Now()
	res, code := hp.restore(t, hp.a, hp.dirA, []string{"--at", T.UTC().Format(time.RFC3339Nano)}, "pit")
	took := time.Since(start)
	got := outcomes(res)
	t.Logf("restore of pit to T on A took %.2fs: %d restored, %d removed, %d unchanged, %d unavailable",
		took.Seconds(), len(got[node.Restored]), len(got[node.Removed]), len(got[node.Unchanged]), len(got[node.Unavailable]))
	if code != 0 || len(got[node.Unavailable]) > 0 {
		t.Fatalf("restore on A exited %d with %d paths unavailable: %s", code, len(got[node.Unavailable]), unavailableWhy(res))
	}
	wantRestored := slices.Sorted(slices.Values(files)) // every file: renamed, edited or deleted
	if !slices.Equal(got[node.Restored], wantRestored) {
		t.Fatalf("restore on A restored %d paths; want the 200 renamed, edited and deleted ones (first differences: %v)",
			len(got[node.Restored]), firstN(treeDiffs(setOf(wantRestored), setOf(got[node.Restored])), 10))
	}
	wantRemoved := slices.Sorted(slices.Values(append(slices.Clone(renamedTo), "pit/renamed")))
	if !slices.Equal(got[node.Removed], wantRemoved) {
		t.Fatalf("restore on A removed %v; want the 67 renamed-to names and pit/renamed (differences: %v)",
			firstN(got[node.Removed], 10), firstN(treeDiffs(setOf(wantRemoved), setOf(got[node.Removed])), 10))
	}
	for _, side := range []struct {
		name, dir string
	}{{"A", hp.dirA}, {"B", hp.dirB}} {
		netlab.Eventually(t, 30*time.Second, "pit/ on "+side.name+" is as it was at T", func() (bool, string) {
			got, err := readHashTree(side.dir, "pit")
			if err != nil {
				return false, err.Error()
			}
			d := treeDiffs(atT, got)
			return len(d) == 0, fmt.Sprintf("%d differences: %v", len(d), firstN(d, 10))
		})
	}
	converge(t, "both hosts agree after the restore", hp.dirA, hp.dirB, 20*time.Second)
}

func setOf(ps []string) map[string]string {
	m := map[string]string{}
	for _, p := range ps {
		m[p] = "x"
	}
	return m
}

func firstN(s []string, n int) []string { return s[:min(len(s), n)] }

// TestRestoreFromPeersStore: B overwrites a file of its own that A had
// received. B keeps no version of its own edit, so the old content is only
// in A's store; history on B says a peer, A, has it, and a restore of that
// version on B fetches it from there and brings it back on both devices.
func TestRestoreFromPeersStore(t *testing.T) {
	hp := newHistPair(t, nil, nil)
	const p = "notes/plan.txt"
	v1, v2 := []byte("plan, first version, written on B\n"), []byte("plan, second version, B overwrote the first\n")
	writeFile(t, filepath.Join(hp.dirB, p), v1)
	converge(t, "B's file reaches A", hp.dirA, hp.dirB, 20*time.Second)
	writeFile(t, filepath.Join(hp.dirB, p), v2)
	converge(t, "B's overwrite reaches A", hp.dirA, hp.dirB, 20*time.Second)
	netlab.Eventually(t, 10*time.Second, "A keeps the first version", func() (bool, string) {
		st, err := readStatus(hp.a, hp.bin, hp.dirA)
		return err == nil && st.Versions.Versions == 1, fmt.Sprintf("%+v %v", st.Versions, err)
	})
	if _, err := os.Stat(storePath(hp.dirA, sha(v1))); err != nil {
		t.Fatalf("A's version store lacks the first version: %v (it holds %v)", err, storeFiles(t, hp.dirA))
	}
	if files := storeFiles(t, hp.dirB); len(files) != 0 {
		t.Fatalf("B's version store holds %v after B's own edit; want nothing", files)
	}

	hist := hp.history(t, hp.b, hp.dirB, p)
	i := slices.IndexFunc(hist, func(e node.HistoryEntry) bool { return e.Hash == sha(v1) })
	if len(hist) != 2 || i != 0 {
		t.Fatalf("history of %s on B: want 2 entries, the first with hash %s: %+v", p, sha(v1), hist)
	}
	old := hist[0]
	if !slices.Contains(old.Where, "peer A") || slices.Contains(old.Where, "here") || slices.Contains(old.Where, "version store") {
		t.Fatalf("history on B says the first version is at %v; want only at \"peer A\"", old.Where)
	}
	if !slices.Contains(hist[1].Where, "here") {
		t.Fatalf("history on B says the current version is at %v; want \"here\" among them", hist[1].Where)
	}
	t.Logf("history of %s on B: %s at %v; %s at %v", p, old.Hash[:12], old.Where, hist[1].Hash[:12], hist[1].Where)

	// With A stopped, no device B reaches has the old content: the restore
	// says so, and exits 1.
	if err := hp.pa.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code, err := hp.pa.Wait(15 * time.Second); err != nil || code != 0 {
		t.Fatalf("A did not stop cleanly after SIGTERM: exit code %d, %v", code, err)
	}
	hp.waitPeer(t, hp.b, hp.dirB, false)
	res, code := hp.restore(t, hp.b, hp.dirB, []string{"--version", old.Hash[:12]}, p)
	if len(res) != 1 || res[0].Outcome != node.Unavailable {
		t.Fatalf("restore --version %s on B with A stopped gave %+v; want %s unavailable", old.Hash[:12], res, p)
	}
	if code != 1 {
		t.Errorf("restore --json on B with %s unavailable exited %d; want 1 (why: %s)", p, code, res[0].Why)
	}
	if got, err := os.ReadFile(filepath.Join(hp.dirB, p)); err != nil || !bytes.Equal(got, v2) {
		t.Fatalf("a restore that found nothing changed %s on B to %q (%v)", p, got, err)
	}

	hp.restartA(t)
	hp.waitPeer(t, hp.b, hp.dirB, true)
	res, code = hp.restore(t, hp.b, hp.dirB, []string{"--version", old.Hash[:12]}, p)
	if code != 0 || len(res) != 1 || res[0].Outcome != node.Restored || res[0].Hash != sha(v1) {
		t.Fatalf("restore --version %s on B exited %d with %+v; want %s restored with %s", old.Hash[:12], code, res, p, sha(v1))
	}
	converge(t, "the restored version reaches A", hp.dirA, hp.dirB, 20*time.Second)
	for _, dir := range []string{hp.dirA, hp.dirB} {
		if got, err := os.ReadFile(filepath.Join(dir, p)); err != nil || !bytes.Equal(got, v1) {
			t.Fatalf("after the restore %s holds %q (%v); want %q", filepath.Join(dir, p), got, err, v1)
		}
	}
}

// brakeFiles is the path of file i of TestBrakeHoldsMassDelete's 2,000.
func brakeFiles(i int) string { return fmt.Sprintf("mass/d%02d/f%04d.txt", i/100, i) }

// waitHeld waits until A's brake holds B's run with all of B's deletes
// logged on B and pending on A, failing at once if A's folder loses a
// file meanwhile.
func (hp *histPair) waitHeld(t *testing.T, what string, opsB uint64, deletes int, files int) node.HeldRun {
	t.Helper()
	netlab.Eventually(t, 15*time.Second, "B records its deletes", func() (bool, string) {
		st, err := readStatus(hp.b, hp.bin, hp.dirB)
		return err == nil && st.Ops >= opsB+uint64(deletes), fmt.Sprintf("%d ops, %d before, %v", st.Ops, opsB, err)
	})
	var held node.HeldRun
	// A change to one file is applied at once, so a run whose first
	// pieces are single files may let those few through before it is
	// judged (reject brings them back); a piece of several waits.
	const slack = 5
	took := netlab.Eventually(t, 30*time.Second, what, func() (bool, string) {
		if n := fileCount(hp.dirA); n < files-slack {
			t.Fatalf("%s: A's folder holds %d files, not %d: the brake let B's deletes through", what, n, files)
		}
		st, err := readStatus(hp.a, hp.bin, hp.dirA)
		if err != nil {
			return false, err.Error()
		}
		i := slices.IndexFunc(st.Held, func(h node.HeldRun) bool { return h.Origin == hp.idB })
		j := slices.IndexFunc(st.Pending, func(p node.Pending) bool { return p.Origin == hp.idB })
		if i < 0 || j < 0 {
			return false, fmt.Sprintf("held %+v, pending %+v", st.Held, st.Pending)
		}
		held = st.Held[i]
		return st.Pending[j].Ops >= uint64(deletes), fmt.Sprintf("held %+v, pending %+v", st.Held, st.Pending)
	})
	n := fileCount(hp.dirA)
	if n < files-slack {
		t.Fatalf("%s: A's folder holds %d files, not %d", what, n, files)
	}
	if st := hp.status(t, hp.a, hp.dirA); st.Files != n {
		t.Fatalf("%s: A's status counts %d files, its folder holds %d", what, st.Files, n)
	}
	t.Logf("%s after %.2fs: %d files of %d, since %v, from op %d", what, took.Seconds(), held.Files, held.Of, held.Since.Format(time.TimeOnly), held.From)
	return held
}

// TestBrakeHoldsMassDelete: B deletes 1,600 of 2,000 files. A's brake
// holds the run: A keeps every file. `reject` on A sends A's files back,
// and B has them again. B deletes them a second time; A holds again;
// `approve` lets the run through and A ends with B's 400 files.
func TestBrakeHoldsMassDelete(t *testing.T) {
	const total, deletes = 2000, 1600
	hp := newHistPair(t, nil, nil)
	for i := range total {
		writeFile(t, filepath.Join(hp.dirA, brakeFiles(i)), fmt.Appendf(nil, "small file %d\n", i))
	}
	converge(t, "2,000 files reach B", hp.dirA, hp.dirB, 40*time.Second)
	if n := fileCount(hp.dirB); n != total {
		t.Fatalf("B holds %d files; want %d", n, total)
	}

	deleteRun := func() {
		t.Helper()
		opsB := hp.status(t, hp.b, hp.dirB).Ops
		for i := range deletes {
			if err := os.Remove(filepath.Join(hp.dirB, brakeFiles(i))); err != nil {
				t.Fatal(err)
			}
		}
		hp.waitHeld(t, "A holds B's 1,600 deletes", opsB, deletes, total)
	}

	deleteRun()
	out := hp.brakeCmd(t, hp.a, hp.dirA, "reject")
	t.Logf("reject on A: %s", strings.TrimSpace(out))
	if st := hp.status(t, hp.a, hp.dirA); len(st.Held) != 0 {
		t.Fatalf("after reject A's status still shows held runs %+v", st.Held)
	}
	converge(t, "B gets its 1,600 deleted files back from A", hp.dirA, hp.dirB, 40*time.Second)
	if n, m := fileCount(hp.dirB), fileCount(hp.dirA); n != total || m != total {
		t.Fatalf("after reject B holds %d files and A %d; want %d", n, m, total)
	}

	deleteRun()
	out = hp.brakeCmd(t, hp.a, hp.dirA, "approve")
	t.Logf("approve on A: %s", strings.TrimSpace(out))
	converge(t, "A applies B's deletes once approved", hp.dirA, hp.dirB, 40*time.Second)
	if n := fileCount(hp.dirA); n != total-deletes {
		t.Fatalf("after approve A holds %d files; want %d", n, total-deletes)
	}
	netlab.Eventually(t, 10*time.Second, "A's status shows B's run applied", func() (bool, string) {
		st, err := readStatus(hp.a, hp.bin, hp.dirA)
		return err == nil && len(st.Held) == 0 && st.PendingOps == 0 && st.Files == total-deletes,
			fmt.Sprintf("held %+v, %d ops pending, %d files, %v", st.Held, st.PendingOps, st.Files, err)
	})
}

// TestVersionsSurviveCrash: B overwrites 1,500 files while A, applying
// them, is killed with SIGKILL, restarted, and killed once more. Once A
// has caught up and stopped cleanly, its database lists each replaced
// content exactly once for its path, each listed content is in the store
// with the bytes its name says, and the store holds nothing else.
func TestVersionsSurviveCrash(t *testing.T) {
	const total = 1500
	off := []string{"--brake", "off"}
	hp := newHistPair(t, off, off)
	rng := testRand(t)
	content := func(p string, round int) []byte {
		b := fmt.Appendf(nil, "%s round %d\n", p, round)
		extra := make([]byte, 1024+rng.IntN(8192))
		for i := range extra {
			extra[i] = byte(rng.Uint32())
		}
		return append(b, extra...)
	}
	path := func(i int) string { return fmt.Sprintf("crash/d%02d/f%04d.bin", i/100, i) }
	round0 := map[string]string{}
	for i := range total {
		b := content(path(i), 0)
		writeFile(t, filepath.Join(hp.dirB, path(i)), b)
		round0[path(i)] = sha(b)
	}
	converge(t, "1,500 files made on B reach A", hp.dirA, hp.dirB, 40*time.Second)
	if st := hp.status(t, hp.a, hp.dirA); st.Versions.Versions != 0 {
		t.Fatalf("A keeps %d versions before anything was replaced", st.Versions.Versions)
	}
	base := hp.status(t, hp.a, hp.dirA).Ops
	if files := storeFiles(t, hp.dirA); len(files) != 0 {
		t.Fatalf("A's store holds %d files before anything was replaced", len(files))
	}

	round1 := map[string]string{}
	for i := range total {
		b := content(path(i), 1)
		writeFile(t, filepath.Join(hp.dirB, path(i)), b)
		round1[path(i)] = sha(b)
	}
	// Kill A at a random moment once it has begun to apply B's ops (the
	// first replaced content is in its store), restart it, and kill it
	// once more a random moment after it is up again.
	midApply, orphans := 0, 0
	for kill := 1; kill <= 2; kill++ {
		var delay time.Duration
		if kill == 1 {
			delay = time.Duration(rng.IntN(150)) * time.Millisecond
			netlab.Eventually(t, 20*time.Second, "A begins to apply B's overwrites", func() (bool, string) {
				n := len(storeFiles(t, hp.dirA))
				return n > 0, fmt.Sprintf("%d contents in A's store", n)
			})
		} else {
			delay = time.Duration(100+rng.IntN(500)) * time.Millisecond
			hp.restartA(t)
			netlab.Eventually(t, 20*time.Second, "A running again", func() (bool, string) {
				st, err := readStatus(hp.a, hp.bin, hp.dirA)
				return err == nil && st.Running, fmt.Sprint(err)
			})
		}
		time.Sleep(delay)
		hp.pa.Kill()
		st, err := readStatus(hp.a, hp.bin, hp.dirA)
		if err != nil {
			t.Fatalf("status of A after kill %d: %v", kill, err)
		}
		stored := len(storeFiles(t, hp.dirA))
		if st.PendingOps > 0 {
			midApply++
		}
		if stored > st.Versions.Contents {
			orphans++
		}
		t.Logf("kill %d, %v after the trigger: A had applied %d of B's new ops, %d pending; %d versions recorded, %d contents in the store",
			kill, delay, st.Ops-base, st.PendingOps, st.Versions.Versions, stored)
	}
	if midApply == 0 {
		t.Fatalf("neither kill landed while A had ops of B pending: the test did not exercise a crash during the apply")
	}
	t.Logf("%d of 2 kills landed during the apply, %d left contents in the store that no version named yet", midApply, orphans)
	hp.restartA(t)
	converge(t, "A catches up with B's overwrites after the kills", hp.dirA, hp.dirB, 40*time.Second)
	final := hashTree(t, hp.dirB, "crash")
	for p, h := range round1 {
		if final[p] != h {
			t.Fatalf("%s on B holds %s; want its round-1 content %s", p, final[p], h)
		}
	}
	if n := fileCount(hp.dirA); n != total {
		t.Fatalf("A holds %d files after catching up; want %d", n, total)
	}
	netlab.Eventually(t, 10*time.Second, "A records every replaced content", func() (bool, string) {
		st, err := readStatus(hp.a, hp.bin, hp.dirA)
		return err == nil && st.Versions.Versions >= total && st.PendingOps == 0, fmt.Sprintf("%+v, %d pending, %v", st.Versions, st.PendingOps, err)
	})

	// Stop A cleanly, then read its database.
	if err := hp.pa.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code, err := hp.pa.Wait(15 * time.Second); err != nil || code != 0 {
		t.Fatalf("A did not stop cleanly after SIGTERM: exit code %d, %v", code, err)
	}
	ctx := context.Background()
	db, err := state.OpenReadOnly(ctx, filepath.Join(hp.dirA, ".drive-node", "state.db"))
	if err != nil {
		t.Fatalf("A's database does not open: %v", err)
	}
	defer db.Close()
	vs, err := db.AllVersions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	perPath := map[string][]string{}
	named := map[string]bool{}
	var problems []string
	for _, v := range vs {
		h := v.Hash.String()
		perPath[v.Path] = append(perPath[v.Path], h)
		named[h] = true
		if round0[v.Path] != h {
			problems = append(problems, fmt.Sprintf("version of %s has content %s, not its round-0 %s", v.Path, h[:12], round0[v.Path]))
		}
	}
	for p, h := range round0 {
		switch hs := perPath[p]; {
		case len(hs) == 0:
			problems = append(problems, fmt.Sprintf("round-0 content %s of %s not recorded", h[:12], p))
		case len(hs) > 1:
			problems = append(problems, fmt.Sprintf("%s has %d versions recorded: %v", p, len(hs), hs))
		}
	}
	for h := range named {
		b, err := os.ReadFile(storePath(hp.dirA, h))
		switch {
		case err != nil:
			problems = append(problems, fmt.Sprintf("recorded content %s not in the store: %v", h[:12], err))
		case sha(b) != h:
			problems = append(problems, fmt.Sprintf("store file %s holds content %s", h[:12], sha(b)[:12]))
		}
	}
	stored := storeFiles(t, hp.dirA)
	for _, f := range stored {
		if dir, name := filepath.Split(f); !named[name] || dir != name[:min(2, len(name))]+"/" {
			problems = append(problems, fmt.Sprintf("store file %s is named by no version", f))
		}
	}
	sort.Strings(problems)
	t.Logf("A's database lists %d versions of %d paths; its store holds %d files", len(vs), len(perPath), len(stored))
	if len(problems) > 0 {
		t.Fatalf("after the kills A's version store and its records disagree (%d problems): %s",
			len(problems), strings.Join(firstN(problems, 10), "; "))
	}
}
