package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/drive-node/drive-node/internal/netlab"
	"github.com/drive-node/drive-node/node"
)

// exfatWait bounds each wait of TestExfatFolder: on this LAN a change
// arrives in well under a second.
const exfatWait = 10 * time.Second

// exfatStatus is what TestExfatFolder reads of `drive-node status --json`.
type exfatStatus struct {
	StateDir   string `json:"state_dir"`
	Running    bool
	Ready      bool
	Paused     string
	Ops        uint64
	PendingOps uint64 `json:"pending_ops"`
	Pending    []struct {
		Ops    uint64
		Reason string
	}
	Peers []struct {
		Connected bool
		Behind    uint64 `json:"ops_behind"`
	}
	Conflicts []struct{ Copy, Original string }
	Unplaced  []exfatUnplaced
	// FileSystem is what the node's probe found about its folder's
	// file system.
	FileSystem *struct {
		Summary         string
		CaseInsensitive bool   `json:"case_insensitive"`
		RefusedChars    string `json:"refused_chars"`
		NoModes         bool   `json:"no_unix_modes"`
		MTimePrecision  int64  `json:"mtime_precision"`
	} `json:"filesystem"`
	raw string
}

// exfatUnplaced is one entry of status's "unplaced" list; kind and other
// name a case conflict and the path this device holds instead.
type exfatUnplaced struct {
	Path   string `json:"path"`
	Reason string `json:"reason"`
	Kind   string `json:"kind"`
	Other  string `json:"other"`
}

// wantFile is what A must hold at a path.
type wantFile struct {
	data  string
	mode  fs.FileMode // checked unless anyMode
	mtime int64       // nanoseconds, checked unless 0
	// ino is the file's inode number, checked unless 0: a file A keeps,
	// or renames, keeps it; one replaced by a copy has another (unless
	// the disk gave the freed number again).
	ino uint64
	// anyMode leaves the mode of a file made on B unchecked: exFAT
	// keeps none, so A gives it one of its own.
	anyMode bool
}

// exfatRun is TestExfatFolder's pair: A's folder on the test's own disk,
// B's on an exFAT disk with its state outside it.
type exfatRun struct {
	*pair
	top    *testing.T // owns the daemons, which outlive a scenario
	disk   *netlab.ExfatDisk
	stateB string
	// refused maps each name of refusedNames the exFAT disk would not
	// create to the character (or "trailing dot") that explains it.
	refused map[string]string
	want    map[string]*wantFile // A's files, by path
	logsB   []string             // the logs of B's daemons before the running one
	// step is what the running scenario checks now, for its verdict.
	step string
	// leftover is set once a scenario has failed: ops it left pending
	// no longer keep the later scenarios from settling.
	leftover bool
}

// refusedNames are the names of scenario 6, created on A, with what each
// has that Windows, and so possibly exFAT, refuses.
var refusedNames = []struct{ name, why string }{
	{"a:b.txt", ":"},
	{"what?.txt", "?"},
	{"trailing.", "trailing dot"},
}

// TestExfatFolder syncs A's folder on an ordinary disk with B's folder on
// a real exFAT disk (exfat-fuse on a loop device: case-insensitive, some
// characters refused, no Unix modes, mtimes kept to the second), B's state
// kept off that disk. Each scenario logs a verdict line, and every check
// ends by comparing A's tree with what it must be: a device that cannot
// represent something may skip it, never change it elsewhere.
//
//  0. Each side's status shows what its folder's file system is.
//  1. A holds Report.txt and report.txt: B holds one, lists the other as
//     a case conflict, and nothing changes on A; a rename on A resolves it.
//  2. Case-only renames on A (a directory, a file) reach B's exFAT folder
//     with the new case; one made on B reaches A as a rename.
//  3. Modes A set survive B receiving, editing and rescanning the files.
//  4. Files made on the exFAT side reach A intact.
//  5. B stopped, its disk remounted, B started: B records nothing.
//  6. Names the exFAT disk refuses are listed on B with the character, A
//     keeps them, and A's later ops still reach B.
func TestExfatFolder(t *testing.T) {
	start := time.Now()
	disk := netlab.MountExfat(t, 64)
	lab := netlab.New(t, 2)
	r := &exfatRun{
		pair:   &pair{bin: netlab.BuildBinary(t, "github.com/drive-node/drive-node/cmd/drive-node"), lab: lab},
		top:    t,
		disk:   disk,
		stateB: filepath.Join(t.TempDir(), "B.state"),
		want:   map[string]*wantFile{},
	}
	r.a, r.b = lab.Host(0), lab.Host(1)
	r.dirA, r.dirB = filepath.Join(t.TempDir(), "A"), filepath.Join(disk.Dir, "B")
	r.refused = probeExfat(t, disk.Dir)
	for _, d := range []string{r.dirA, r.dirB} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// B's state on the exFAT disk would be a case-insensitive, modeless
	// database directory: it lives on the ordinary disk.
	r.extra = func(dir string) []string {
		if dir == r.dirB {
			return []string{"--state", r.stateB}
		}
		return nil
	}
	pairHosts(t, r.bin, r.a, r.b, r.dirA, r.dirB, r.extra)
	r.pa = r.start(t, r.a, r.dirA, "A")
	r.pb = r.start(t, r.b, r.dirB, "B")
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("A's log:\n%s", quietLog(r.pa.Log()))
			for i, l := range append(r.logsB, r.pb.Log()) {
				t.Logf("B's log (daemon %d):\n%s", i+1, quietLog(l))
			}
			if st, err := r.status(r.b, r.dirB); err == nil {
				t.Logf("B's status at the end:\n%s", st.raw)
			}
		}
	})
	r.waitConnected(t)
	st, err := r.status(r.b, r.dirB)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("B's status once connected, its folder on exFAT:\n%s", st.raw)
	if _, err := os.Stat(filepath.Join(r.dirB, ".drive-node")); st.StateDir != r.stateB || err == nil {
		t.Fatalf("B's state is not kept off the exFAT disk: status names %s, %s/.drive-node: %v", st.StateDir, r.dirB, err)
	}

	var verdicts []string
	defer func() {
		t.Logf("verdicts (%.1fs):\n%s", time.Since(start).Seconds(), strings.Join(verdicts, "\n"))
	}()
	scenario := func(name string, f func(t *testing.T) string) {
		t.Run(strings.ReplaceAll(name, " ", "_"), func(t *testing.T) {
			var note string
			r.step = "start"
			defer func() {
				v := fmt.Sprintf("verdict: %s: PASS %s", name, note)
				if t.Failed() {
					v = fmt.Sprintf("verdict: %s: FAIL at %q (see the failure above)", name, r.step)
					r.leftover = true
				}
				t.Log(v)
				verdicts = append(verdicts, v)
			}()
			note = f(t)
		})
	}
	scenario("probe in status", r.probeShown)
	scenario("case pair", r.casePair)
	scenario("case-only rename on A", r.caseRenameOnA)
	scenario("case-only rename on B", r.caseRenameOnB)
	scenario("modes", r.modes)
	scenario("files made on exFAT", r.fromExfat)
	scenario("remount", r.remount)
	// Last: where B cannot set a refused name aside, the op stays pending
	// and holds back every later op of A's, which would fail the
	// scenarios after it for that one reason.
	scenario("refused names", r.refusedNames)
	scenario("state digests", r.digests)

	// Whatever failed above, A holds exactly what was made on either
	// side, with A's modes and mtimes.
	r.checkA(t, "")
	if c := conflictNames(t, r.dirA, ""); len(c) > 0 {
		t.Errorf("conflict copies on A: %v", c)
	}
}

// quietLog is a daemon's log without the storage engine's own lines.
func quietLog(s string) string {
	var keep []string
	for _, l := range strings.Split(s, "\n") {
		if !strings.Contains(l, `msg="pebble:`) {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}

// probeExfat checks that the disk is what the test needs — one file under
// two cases — and returns which of refusedNames it will not create, with
// why (what the disk really refuses, not what exFAT's specification says:
// exfat-fuse accepts a trailing dot).
func probeExfat(t *testing.T, dir string) map[string]string {
	t.Helper()
	probe := filepath.Join(dir, "probe")
	if err := os.Mkdir(probe, 0o755); err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(probe)
	writeFile(t, filepath.Join(probe, "Case.txt"), []byte("x"))
	if _, err := os.Stat(filepath.Join(probe, "CASE.txt")); err != nil {
		t.Fatalf("the exFAT disk is not case-insensitive: %v", err)
	}
	refused := map[string]string{}
	var seen []string
	for _, n := range refusedNames {
		err := os.WriteFile(filepath.Join(probe, n.name), []byte("x"), 0o644)
		if err != nil {
			refused[n.name] = n.why
		}
		seen = append(seen, fmt.Sprintf("%q: %v", n.name, errOrOK(err)))
	}
	t.Logf("the exFAT disk at %s: case-insensitive; creating %s", dir, strings.Join(seen, ", "))
	if len(refused) == 0 {
		t.Fatal("the exFAT disk refuses none of the names scenario 6 needs refused")
	}
	return refused
}

func errOrOK(err error) string {
	if err == nil {
		return "created"
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return "refused (" + errno.Error() + ")"
	}
	return "refused (" + err.Error() + ")"
}

func (r *exfatRun) status(h *netlab.Host, dir string) (exfatStatus, error) {
	// Not the test's context: the failure report reads status after it
	// has ended.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := h.Command(ctx, r.bin, append([]string{"status", "--folder", dir, "--json"}, r.loc(dir)...)...).Output()
	var st exfatStatus
	if err != nil {
		return st, err
	}
	err = json.Unmarshal(out, &st)
	st.raw = string(out)
	return st, err
}

// waitConnected waits until both daemons are ready and connected.
func (r *exfatRun) waitConnected(t *testing.T) {
	t.Helper()
	netlab.Eventually(t, 30*time.Second, "A and B ready and connected", func() (bool, string) {
		var why []string
		for _, s := range []struct {
			h    *netlab.Host
			dir  string
			name string
		}{{r.a, r.dirA, "A"}, {r.b, r.dirB, "B"}} {
			st, err := r.status(s.h, s.dir)
			switch {
			case err != nil:
				why = append(why, s.name+": "+err.Error())
			case !st.Ready || len(st.Peers) != 1 || !st.Peers[0].Connected:
				why = append(why, fmt.Sprintf("%s: ready %v paused %q peers %+v", s.name, st.Ready, st.Paused, st.Peers))
			}
		}
		return len(why) == 0, strings.Join(why, "; ")
	})
}

// settled reports whether each side has received all of the other's ops
// and applied (or set aside) all it received; after a failed scenario,
// only the former.
func (r *exfatRun) settled() (bool, string) {
	a, errA := r.status(r.a, r.dirA)
	b, errB := r.status(r.b, r.dirB)
	if errA != nil || errB != nil {
		return false, fmt.Sprintf("status: %v %v", errA, errB)
	}
	ok := len(a.Peers) == 1 && len(b.Peers) == 1 && a.Peers[0].Behind == 0 && b.Peers[0].Behind == 0 &&
		(r.leftover || a.PendingOps == 0 && b.PendingOps == 0)
	return ok, fmt.Sprintf("A: %d ops, %d pending, peers %+v; B: %d ops, %d pending, peers %+v, unplaced %+v",
		a.Ops, a.PendingOps, a.Peers, b.Ops, b.PendingOps, b.Peers, b.Unplaced)
}

// putA writes a file on A with mode and records what A must keep.
func (r *exfatRun) putA(t *testing.T, rel, data string, mode fs.FileMode) {
	t.Helper()
	p := filepath.Join(r.dirA, rel)
	writeFile(t, p, []byte(data))
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	r.want[rel] = &wantFile{data: data, mode: mode, mtime: st.ModTime().UnixNano(), ino: inode(st)}
}

func inode(st fs.FileInfo) uint64 {
	if s, ok := st.Sys().(*syscall.Stat_t); ok {
		return s.Ino
	}
	return 0
}

// renameA renames a file or directory on A; what A must keep moves with
// it, mtimes and modes included.
func (r *exfatRun) renameA(t *testing.T, from, to string) {
	t.Helper()
	if err := os.Rename(filepath.Join(r.dirA, from), filepath.Join(r.dirA, to)); err != nil {
		t.Fatal(err)
	}
	r.wantRenamed(from, to)
}

func (r *exfatRun) wantRenamed(from, to string) {
	for p, w := range r.want {
		if p == from || strings.HasPrefix(p, from+"/") {
			delete(r.want, p)
			r.want[to+strings.TrimPrefix(p, from)] = w
		}
	}
}

// tree maps each file (to its content's hash) and directory (to "dir")
// under dir/prefix by the names the file system lists, exact case, left
// out drive-node's own.
func tree(dir, prefix string) (map[string]string, error) {
	out := map[string]string{}
	root := filepath.Join(dir, prefix)
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		if p == root {
			return nil
		}
		if strings.HasPrefix(d.Name(), ".drive-node") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			out[rel] = "dir"
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		out[rel] = hashOf(string(b))
		return nil
	})
	return out, err
}

func hashOf(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:6])
}

// treeDiffs lists how got differs from want, sorted.
func treeDiffs(want, got map[string]string) []string {
	var d []string
	for p, w := range want {
		switch g, ok := got[p]; {
		case !ok:
			d = append(d, "missing "+p)
		case g != w:
			d = append(d, "differs "+p)
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			d = append(d, "extra "+p)
		}
	}
	sort.Strings(d)
	return d
}

// sameTree waits until B's tree under prefix is A's, names' case
// included, and the pair has settled.
func (r *exfatRun) sameTree(t *testing.T, what, prefix string) {
	t.Helper()
	r.step = what
	took := netlab.Eventually(t, exfatWait, what, func() (bool, string) {
		a, errA := tree(r.dirA, prefix)
		b, errB := tree(r.dirB, prefix)
		if errA != nil || errB != nil {
			return false, fmt.Sprintf("%v %v", errA, errB)
		}
		if d := treeDiffs(a, b); len(d) > 0 {
			return false, "B differs from A: " + strings.Join(d, "; ")
		}
		return r.settled()
	})
	t.Logf("%-60s %6.2fs", what, took.Seconds())
}

// checkA compares A's tree under prefix with what A must hold: the same
// files and the directories they imply, each file with its content, mode
// and mtime.
func (r *exfatRun) checkA(t *testing.T, prefix string) {
	t.Helper()
	r.step = fmt.Sprintf("A's tree under %q unchanged", prefix)
	got, err := tree(r.dirA, prefix)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	for p, w := range r.want {
		if prefix != "" && !strings.HasPrefix(p, prefix+"/") {
			continue
		}
		want[p] = hashOf(w.data)
		for d := path.Dir(p); d != "." && d != prefix; d = path.Dir(d) {
			want[d] = "dir"
		}
	}
	if d := r.diffA(want, got); len(d) > 0 {
		t.Fatalf("A's tree under %q is not what it must be: %s", prefix, strings.Join(d, "; "))
	}
}

// checkATop is checkA for the files at the top of A's folder.
func (r *exfatRun) checkATop(t *testing.T) {
	t.Helper()
	r.step = "A's top files unchanged"
	got, want := map[string]string{}, map[string]string{}
	es, err := os.ReadDir(r.dirA)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		if e.Type().IsRegular() && !strings.HasPrefix(e.Name(), ".drive-node") {
			b, err := os.ReadFile(filepath.Join(r.dirA, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			got[e.Name()] = hashOf(string(b))
		}
	}
	for p, w := range r.want {
		if !strings.Contains(p, "/") {
			want[p] = hashOf(w.data)
		}
	}
	if d := r.diffA(want, got); len(d) > 0 {
		t.Fatalf("A's top files are not what they must be: %s", strings.Join(d, "; "))
	}
}

// diffA lists how got, part of A's tree, differs from want, and how the
// files both hold differ in mode or mtime from what A must keep.
func (r *exfatRun) diffA(want, got map[string]string) []string {
	diffs := treeDiffs(want, got)
	for p := range want {
		w := r.want[p]
		if w == nil || got[p] != want[p] {
			continue
		}
		st, err := os.Stat(filepath.Join(r.dirA, p))
		if err != nil {
			diffs = append(diffs, err.Error())
			continue
		}
		if !w.anyMode && st.Mode().Perm() != w.mode {
			diffs = append(diffs, fmt.Sprintf("mode of %s is %v, was %v", p, st.Mode().Perm(), w.mode))
		}
		if w.mtime != 0 && st.ModTime().UnixNano() != w.mtime {
			diffs = append(diffs, fmt.Sprintf("mtime of %s is %s, was %s", p, st.ModTime().Format(time.RFC3339Nano), time.Unix(0, w.mtime).Format(time.RFC3339Nano)))
		}
		if w.ino != 0 && inode(st) != w.ino {
			diffs = append(diffs, fmt.Sprintf("%s was replaced by a copy (inode %d, was %d)", p, inode(st), w.ino))
		}
	}
	return diffs
}

// conflictNames lists the conflict copies under dir/prefix.
func conflictNames(t *testing.T, dir, prefix string) []string {
	t.Helper()
	all, err := tree(dir, prefix)
	if err != nil {
		t.Fatal(err)
	}
	var c []string
	for p := range all {
		if strings.Contains(path.Base(p), ".conflict-") {
			c = append(c, p)
		}
	}
	sort.Strings(c)
	return c
}

// noConflicts checks that neither side made a conflict copy under prefix
// or lists one.
func (r *exfatRun) noConflicts(t *testing.T, prefix string) {
	t.Helper()
	r.step = fmt.Sprintf("no conflict under %q", prefix)
	for _, s := range []struct {
		h         *netlab.Host
		dir, name string
	}{{r.a, r.dirA, "A"}, {r.b, r.dirB, "B"}} {
		if c := conflictNames(t, s.dir, prefix); len(c) > 0 {
			t.Fatalf("conflict copies on %s: %v", s.name, c)
		}
		st, err := r.status(s.h, s.dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range st.Conflicts {
			if strings.HasPrefix(c.Original, prefix+"/") {
				t.Fatalf("%s's status lists a conflict: %+v", s.name, c)
			}
		}
	}
}

// contents shows a directory's files, by the names it lists, with what
// each holds.
func contents(dir string) string {
	var out []string
	for _, n := range names(dir) {
		b, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			out = append(out, fmt.Sprintf("%s (%v)", n, err))
			continue
		}
		out = append(out, fmt.Sprintf("%s=%q", n, b))
	}
	return "[" + strings.Join(out, " ") + "]"
}

// names lists a directory as the file system stores its names.
func names(dir string) []string {
	es, err := os.ReadDir(dir)
	if err != nil {
		return []string{"(" + err.Error() + ")"}
	}
	var n []string
	for _, e := range es {
		if !strings.HasPrefix(e.Name(), ".drive-node") {
			n = append(n, e.Name())
		}
	}
	return n
}

// restartB stops B cleanly, runs between (if not nil) while B is down,
// starts B again and waits until the pair is connected.
func (r *exfatRun) restartB(t *testing.T, between func()) {
	t.Helper()
	r.step = "B's restart"
	r.pb.Signal(syscall.SIGTERM)
	if code, err := r.pb.Wait(15 * time.Second); code != 0 || err != nil {
		t.Fatalf("B's stop: exit %d %v\n%s", code, err, lastLines(r.pb.Log(), 20))
	}
	r.logsB = append(r.logsB, r.pb.Log())
	if between != nil {
		between()
	}
	r.pb = r.start(r.top, r.b, r.dirB, "B")
	r.waitConnected(t)
}

// probeShown: each side's status says what its folder's file system is,
// as found by trying: B's exFAT folder is case-insensitive, refuses the
// characters the disk refused here and keeps no modes; A's is none of it.
func (r *exfatRun) probeShown(t *testing.T) string {
	r.step = "status shows each folder's file system"
	a, errA := r.status(r.a, r.dirA)
	b, errB := r.status(r.b, r.dirB)
	if err := errors.Join(errA, errB); err != nil {
		t.Fatal(err)
	}
	if a.FileSystem == nil || b.FileSystem == nil {
		t.Fatalf("status shows no file system: A %+v, B %+v", a.FileSystem, b.FileSystem)
	}
	t.Logf("A's folder: %s; B's folder: %s", a.FileSystem.Summary, b.FileSystem.Summary)
	if fs := a.FileSystem; fs.CaseInsensitive || fs.NoModes || fs.RefusedChars != "" {
		t.Fatalf("A's folder on the test's own disk is shown as %+v", *fs)
	}
	fs := b.FileSystem
	if !fs.CaseInsensitive || !fs.NoModes {
		t.Fatalf("B's exFAT folder is shown as %+v", *fs)
	}
	for name, why := range r.refused {
		if len(why) == 1 && !strings.Contains(fs.RefusedChars, why) {
			t.Fatalf("B's exFAT disk refused %q here, its status says it refuses only %q", name, fs.RefusedChars)
		}
	}
	return fmt.Sprintf("B: %s", fs.Summary)
}

// casePair: A holds Report.txt and report.txt, which B's folder cannot
// hold apart. B places one, lists the other as a case conflict naming
// both, and nothing changes on A. Renaming one on A resolves it.
func (r *exfatRun) casePair(t *testing.T) string {
	r.putA(t, "case-pair/Report.txt", "upper", 0o644)
	r.putA(t, "case-pair/report.txt", "lower", 0o644)
	var held, other string
	var entry exfatUnplaced
	r.step = "B holds one of the pair and lists the other as a case conflict"
	netlab.Eventually(t, exfatWait, r.step, func() (bool, string) {
		onB := names(filepath.Join(r.dirB, "case-pair"))
		st, err := r.status(r.b, r.dirB)
		detail := fmt.Sprintf("B holds %s; A holds %s; B's unplaced %+v; B's conflicts %+v",
			contents(filepath.Join(r.dirB, "case-pair")), contents(filepath.Join(r.dirA, "case-pair")), st.Unplaced, st.Conflicts)
		if err != nil || len(onB) != 1 {
			return false, detail
		}
		held = "case-pair/" + onB[0]
		other = "case-pair/report.txt"
		if held == other {
			other = "case-pair/Report.txt"
		}
		w := r.want[held]
		if w == nil {
			return false, detail
		}
		if b, err := os.ReadFile(filepath.Join(r.dirB, held)); err != nil || string(b) != w.data {
			return false, fmt.Sprintf("B's %s holds %q, A's %q; %s", held, b, w.data, detail)
		}
		for _, u := range st.Unplaced {
			if u.Path == other && u.Kind == "case-conflict" && u.Other == held && strings.Contains(strings.ToLower(u.Reason), "case") {
				entry = u
				if ok, why := r.settled(); !ok {
					return false, why
				}
				return true, ""
			}
		}
		return false, detail
	})
	r.checkA(t, "case-pair")
	r.noConflicts(t, "case-pair")
	t.Logf("B holds %s; status lists %q: %s", held, entry.Path, entry.Reason)

	// A renames report.txt: both names fit on B now.
	r.renameA(t, "case-pair/report.txt", "case-pair/report-2.txt")
	r.sameTree(t, "after report.txt → report-2.txt on A, B holds both", "case-pair")
	r.step = "B's case conflict entry goes away"
	st, err := r.status(r.b, r.dirB)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range st.Unplaced {
		if strings.HasPrefix(u.Path, "case-pair/") || strings.Contains(u.Path, " case-pair/") {
			t.Fatalf("B still lists %+v as unplaced after the rename resolved it", u)
		}
	}
	r.checkA(t, "case-pair")
	r.noConflicts(t, "case-pair")
	return fmt.Sprintf("B held %s, listed %s as %s; resolved by a rename", held, entry.Path, entry.Kind)
}

// caseRenameOnA: A renames a directory and a file in case only; B's exFAT
// folder ends with the new names (as listed: exFAT opens either case).
func (r *exfatRun) caseRenameOnA(t *testing.T) string {
	r.putA(t, "case-rename/Docs/a.txt", "in Docs", 0o644)
	r.putA(t, "case-rename/Note.txt", "a note", 0o644)
	r.sameTree(t, "Docs/a.txt and Note.txt on B", "case-rename")
	r.renameA(t, "case-rename/Docs", "case-rename/docs")
	r.renameA(t, "case-rename/Note.txt", "case-rename/note.txt")
	r.sameTree(t, "case-only renames on A reach B's exFAT folder", "case-rename")
	r.step = "B lists docs and note.txt"
	if got := names(filepath.Join(r.dirB, "case-rename")); !slices.Equal(got, []string{"docs", "note.txt"}) {
		t.Fatalf("B lists %q", got)
	}
	r.checkA(t, "case-rename")
	r.noConflicts(t, "case-rename")
	return "B lists docs/a.txt and note.txt"
}

// caseRenameOnB: B renames a file in case only on exFAT, and another to
// a new name; A ends with the new names only, each renamed there (the
// same file: inode, mtime and mode kept), not replaced by a copy.
func (r *exfatRun) caseRenameOnB(t *testing.T) string {
	r.putA(t, "case-rename-b/Memo.txt", "a memo", 0o644)
	r.putA(t, "case-rename-b/Plan.txt", "a plan", 0o600)
	r.sameTree(t, "Memo.txt and Plan.txt on B", "case-rename-b")
	for _, mv := range [][2]string{{"Memo.txt", "memo.txt"}, {"Plan.txt", "plan-final.txt"}} {
		from, to := "case-rename-b/"+mv[0], "case-rename-b/"+mv[1]
		if err := os.Rename(filepath.Join(r.dirB, from), filepath.Join(r.dirB, to)); err != nil {
			t.Fatal(err)
		}
		r.wantRenamed(from, to)
	}
	r.step = "exFAT lists the new names"
	if got := names(filepath.Join(r.dirB, "case-rename-b")); !slices.Equal(got, []string{"memo.txt", "plan-final.txt"}) {
		t.Fatalf("exFAT lists %q after the renames", got)
	}
	r.sameTree(t, "renames on B, one case-only, reach A", "case-rename-b")
	r.checkA(t, "case-rename-b")
	r.noConflicts(t, "case-rename-b")
	return "A lists memo.txt and plan-final.txt only, renamed there (inode, mtime and mode kept)"
}

// refusedNames: A creates names the exFAT disk refuses. B does not place
// them, lists each with the character, and still receives A's next file;
// A keeps them all.
func (r *exfatRun) refusedNames(t *testing.T) string {
	// At the top of the folder, where "a:b.txt" also looks like a path
	// with a drive letter.
	before, err := r.status(r.a, r.dirA)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range refusedNames {
		r.putA(t, n.name, "named "+n.name, 0o644)
	}
	// The next file's op must come after theirs in A's log.
	r.step = "A records the refused names"
	netlab.Eventually(t, exfatWait, r.step, func() (bool, string) {
		st, err := r.status(r.a, r.dirA)
		n := uint64(len(refusedNames))
		return err == nil && st.Ops >= before.Ops+n, fmt.Sprintf("%d ops, %d before, %v", st.Ops, before.Ops, err)
	})
	r.putA(t, "after-refused.txt", "made after the refused names", 0o644)
	wantB := []string{"after-refused.txt"}
	for _, n := range refusedNames {
		if r.refused[n.name] == "" {
			wantB = append(wantB, n.name)
		}
	}
	listed := map[string]string{}
	r.step = "B holds what its disk accepts and lists the refused names"
	netlab.Eventually(t, exfatWait, r.step, func() (bool, string) {
		var onB []string
		for _, n := range names(r.dirB) {
			if n == "after-refused.txt" || slices.ContainsFunc(refusedNames, func(rn struct{ name, why string }) bool { return rn.name == n }) {
				onB = append(onB, n)
			}
		}
		st, err := r.status(r.b, r.dirB)
		detail := fmt.Sprintf("B holds %q of them, want %q; B's unplaced %+v; pending %d: %+v", onB, wantB, st.Unplaced, st.PendingOps, st.Pending)
		if err != nil || !sameSet(onB, wantB) {
			return false, detail
		}
		for _, n := range wantB {
			if b, err := os.ReadFile(filepath.Join(r.dirB, n)); err != nil || string(b) != r.want[n].data {
				return false, fmt.Sprintf("B's %s holds %q (%v); %s", n, b, err, detail)
			}
		}
		for name, why := range r.refused {
			listed[name] = ""
			for _, u := range st.Unplaced {
				if u.Path == name && namesRefusal(u.Reason, name, why) {
					listed[name] = u.Reason
				}
			}
			if listed[name] == "" {
				return false, fmt.Sprintf("%s not listed with a reason naming %q; %s", name, why, detail)
			}
		}
		return r.settled()
	})
	r.checkATop(t)
	var got []string
	for name, reason := range listed {
		got = append(got, fmt.Sprintf("%s: %s", name, reason))
	}
	sort.Strings(got)
	return "unplaced on B: " + strings.Join(got, "; ")
}

// sameSet reports whether a and b hold the same strings.
func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	sort.Strings(a)
	sort.Strings(b)
	return slices.Equal(a, b)
}

// namesRefusal reports whether reason, the path aside, names why: the
// refused character quoted, or the words for a trailing dot or space.
func namesRefusal(reason, p, why string) bool {
	rest := strings.ReplaceAll(reason, p, "")
	rest = strings.ReplaceAll(rest, path.Base(p), "")
	if strings.HasPrefix(why, "trailing") {
		return strings.Contains(strings.ToLower(rest), why)
	}
	for _, q := range []string{`"%s"`, `'%s'`, "`%s`", "“%s”", "‘%s’"} {
		if strings.Contains(rest, fmt.Sprintf(q, why)) {
			return true
		}
	}
	return false
}

// modes: modes A set stay A's while B (whose exFAT shows 0777 for
// everything) receives the files, edits one, restarts and rescans.
func (r *exfatRun) modes(t *testing.T) string {
	r.putA(t, "modes/secret.txt", "secret", 0o600)
	r.putA(t, "modes/plain.txt", "plain", 0o644)
	r.putA(t, "modes/run.sh", "#!/bin/sh\necho run\n", 0o755)
	r.sameTree(t, "files of three modes on B", "modes")
	r.checkA(t, "modes")

	// A restart of B rescans its exFAT folder; a file made on B after it
	// arrives on A after anything B recorded before it.
	r.restartB(t, nil)
	r.putB(t, "modes/after-restart.txt", "made on B after its restart")
	r.sameTree(t, "B's file made after its restart reaches A", "modes")
	r.checkA(t, "modes")

	// B edits the 0600 file: A takes the content and keeps its mode.
	writeFile(t, filepath.Join(r.dirB, "modes/secret.txt"), []byte("secret, edited on B"))
	r.want["modes/secret.txt"].data = "secret, edited on B"
	r.want["modes/secret.txt"].mtime = 0
	r.want["modes/secret.txt"].ino = 0
	r.sameTree(t, "B's edit of secret.txt reaches A", "modes")
	r.checkA(t, "modes")
	r.noConflicts(t, "modes")
	return "0600, 0644 and 0755 kept on A after B's receipt, restart and edit"
}

// putB writes a file on B's exFAT folder and records that A must get it.
func (r *exfatRun) putB(t *testing.T, rel, data string) {
	t.Helper()
	writeFile(t, filepath.Join(r.dirB, rel), []byte(data))
	r.want[rel] = &wantFile{data: data, anyMode: true}
}

// fromExfat: files made on the exFAT side reach A with their names and
// contents.
func (r *exfatRun) fromExfat(t *testing.T) string {
	r.putB(t, "from-exfat/Photo 1.jpg", string(randomBytes(t, 256<<10)))
	r.putB(t, "from-exfat/Sub Dir/Notes.TXT", "notes made on exFAT")
	r.putB(t, "from-exfat/Sub Dir/été.txt", "a name beyond ASCII")
	r.sameTree(t, "files made on exFAT reach A", "from-exfat")
	r.checkA(t, "from-exfat")
	r.noConflicts(t, "from-exfat")
	var modes []string
	for _, p := range []string{"from-exfat/Photo 1.jpg", "from-exfat/Sub Dir/Notes.TXT", "from-exfat/Sub Dir/été.txt"} {
		st, err := os.Stat(filepath.Join(r.dirA, p))
		if err != nil {
			t.Fatal(err)
		}
		r.want[p].mtime, r.want[p].ino = st.ModTime().UnixNano(), inode(st)
		modes = append(modes, fmt.Sprintf("%s %v", path.Base(p), st.Mode().Perm()))
	}
	return "modes on A: " + strings.Join(modes, ", ")
}

// remount: B stopped, its exFAT disk unmounted and mounted again, B
// started: B's op log gains nothing, and A is unchanged.
func (r *exfatRun) remount(t *testing.T) string {
	r.step = "the pair settled before the remount"
	netlab.Eventually(t, exfatWait, r.step, r.settled)
	var beforeA, beforeB uint64
	var treeA map[string]entry
	r.restartB(t, func() {
		a, errA := r.status(r.a, r.dirA)
		b, errB := r.status(r.b, r.dirB)
		var err error
		treeA, err = snapshot(r.dirA)
		if err = errors.Join(errA, errB, err); err != nil {
			t.Fatal(err)
		}
		beforeA, beforeB = a.Ops, b.Ops
		r.disk.Unmount(t)
		r.disk.Mount(t)
	})
	r.step = "B's start-up scan after the remount records nothing"
	st, err := r.status(r.b, r.dirB)
	if err != nil {
		t.Fatal(err)
	}
	if st.Ops != beforeB {
		t.Fatalf("B recorded %d ops in its start-up scan after the remount (%d before)", st.Ops-beforeB, beforeB)
	}
	// A file from A arrives after anything B might still record from its
	// start-up: then B's log has gained A's ops, no other.
	r.putA(t, "remount/ping.txt", "after the remount", 0o644)
	r.sameTree(t, "A's file reaches B after the remount", "remount")
	r.step = "B's op log gains only A's ops"
	a, errA := r.status(r.a, r.dirA)
	b, errB := r.status(r.b, r.dirB)
	if err := errors.Join(errA, errB); err != nil {
		t.Fatal(err)
	}
	if b.Ops-beforeB != a.Ops-beforeA {
		t.Fatalf("B's op log gained %d ops after the remount, A's %d", b.Ops-beforeB, a.Ops-beforeA)
	}
	r.step = "A's tree unchanged over the remount"
	after, err := snapshot(r.dirA)
	if err != nil {
		t.Fatal(err)
	}
	delete(after, "remount")
	delete(after, "remount/ping.txt")
	if d := entriesDiff(treeA, after); d != "" {
		t.Fatalf("A's tree changed over B's remount: %s", d)
	}
	return fmt.Sprintf("B's op log gained %d ops, all A's; A unchanged", b.Ops-beforeB)
}

// entriesDiff describes how the snapshot b differs from a, or returns "".
func entriesDiff(a, b map[string]entry) string {
	var d []string
	for p, ea := range a {
		switch eb, ok := b[p]; {
		case !ok:
			d = append(d, "missing "+p)
		case ea != eb:
			d = append(d, fmt.Sprintf("differs %s: %+v vs %+v", p, ea, eb))
		}
	}
	for p := range b {
		if _, ok := a[p]; !ok {
			d = append(d, "extra "+p)
		}
	}
	sort.Strings(d)
	return strings.Join(d, "; ")
}

// digests: the exFAT device keeps no modes, yet the state digest shows
// no difference from A at a path both hold: what B lists differing is
// only what its disk could not place or has not applied, and nothing of
// the files of three modes or those made on exFAT.
func (r *exfatRun) digests(t *testing.T) string {
	r.step = "B lists only what it could not place"
	var got []string
	netlab.Eventually(t, exfatWait, r.step, func() (bool, string) {
		var st node.Status
		raw, err := r.status(r.b, r.dirB)
		if err == nil {
			err = json.Unmarshal([]byte(raw.raw), &st)
		}
		if err != nil || st.State == nil || len(st.Peers) != 1 || st.Peers[0].State == nil {
			return false, fmt.Sprintf("no digests yet (%v)", err)
		}
		ps := st.Peers[0].State
		if ps.Identical {
			got = nil
			return true, ""
		}
		got = got[:0]
		for _, d := range ps.Differences {
			got = append(got, d.Path+": "+d.Why)
			if strings.HasPrefix(d.Path, "modes") || strings.HasPrefix(d.Path, "from-exfat") ||
				!strings.HasPrefix(d.Why, node.WhyUnplaced) && d.Why != node.WhyPending {
				return false, fmt.Sprintf("B lists %q", got)
			}
		}
		return ps.DifferencesError == "" && len(got) > 0, fmt.Sprintf("B lists %q (%s)", got, ps.DifferencesError)
	})
	if len(got) == 0 {
		return "identical to A"
	}
	return "differs from A only where it could not place: " + strings.Join(got, "; ")
}
