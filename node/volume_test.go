package node

import (
	"context"
	"errors"
	"io"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode"

	"golang.org/x/text/unicode/norm"

	"github.com/drive-node/drive-node/node/internal/folder"
)

// exfat is how exfat-fuse behaves (checked on a real mount): names
// compared without case, : * ? " < > | and control characters refused,
// no Unix modes, times kept to the second.
var exfat = folder.Behaviour{
	Key:       foldCase,
	NoModes:   true,
	MTimeStep: time.Second,
}

func foldCase(name string) string {
	return strings.Map(func(r rune) rune { return unicode.ToLower(unicode.ToUpper(r)) }, name)
}

func exfatRefuses(base string) error {
	for _, r := range base {
		if r < 0x20 || strings.ContainsRune(`:*?"<>|`, r) {
			return errors.New("no such file or directory") // what exfat-fuse says
		}
	}
	return nil
}

// mixedPair is a settled mesh of two devices: 0 on a POSIX disk, 1 on
// exFAT.
func mixedPair(t *testing.T) (context.Context, *sim) {
	t.Helper()
	ctx := context.Background()
	s, err := runSim(ctx, 1, 2, 0, false, simDBDir(t))
	t.Cleanup(s.close)
	if err != nil {
		t.Fatal(err)
	}
	b := s.reps[1]
	b.folder.BehaveAs(exfat)
	b.folder.RefuseNames(exfatRefuses)
	b.node.probeVolume(ctx)
	if got := b.node.volume(); !got.CaseInsensitive || !got.NoModes || got.MTimePrecision != time.Second || got.RefusedChars != `:*?"<>|` {
		t.Fatalf("the probe of an exFAT-like folder found %+v", got)
	}
	return ctx, s
}

// contents is what a replica's files hold, by path.
func contents(t *testing.T, r *replica) map[string]string {
	t.Helper()
	out := map[string]string{}
	for p, e := range r.files() {
		if e.dir {
			continue
		}
		f, err := r.folder.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(f)
		f.Close()
		out[p] = string(b)
	}
	return out
}

// heldEverywhere fails t unless every device of s holds want.
func heldEverywhere(t *testing.T, s *sim, when string, want map[string]string) {
	t.Helper()
	for _, r := range s.reps {
		if got := contents(t, r); !maps.Equal(got, want) {
			t.Errorf("%sdevice %s holds %v, want %v", when, r.id.Short(), got, want)
		}
	}
}

func unplacedOf(t *testing.T, ctx context.Context, r *replica) []Unplaced {
	t.Helper()
	list, err := readUnplaced(ctx, r.db)
	if err != nil {
		t.Fatal(err)
	}
	return list
}

func TestCaseConflictIsNotPlaced(t *testing.T) {
	ctx, s := mixedPair(t)
	a, b := s.reps[0], s.reps[1]
	if err := a.write(ctx, "Report.txt", "upper"); err != nil {
		t.Fatal(err)
	}
	if err := a.write(ctx, "report.txt", "lower"); err != nil {
		t.Fatal(err)
	}
	want := contents(t, a)
	if err := s.settle(ctx); err != nil {
		t.Fatal(err)
	}
	if got := contents(t, a); !maps.Equal(got, want) {
		t.Fatalf("the device that holds both names changed: %v, was %v", got, want)
	}
	if got := contents(t, b); !maps.Equal(got, map[string]string{"Report.txt": "upper"}) {
		t.Errorf("the exFAT device holds %v, want only Report.txt with the first version", got)
	}
	if own := b.vector()[b.id]; own != 0 {
		t.Errorf("the exFAT device recorded %d changes of its own", own)
	}
	list := unplacedOf(t, ctx, b)
	if len(list) != 1 || list[0].Path != "report.txt" || list[0].Kind != "case-conflict" || list[0].Other != "Report.txt" {
		t.Fatalf("status lists %+v, want report.txt as a case conflict with Report.txt", list)
	}

	// Renaming one of the two on the other device resolves it everywhere.
	if err := a.move(ctx, "report.txt", "report-2.txt"); err != nil {
		t.Fatal(err)
	}
	if err := s.settle(ctx); err != nil {
		t.Fatal(err)
	}
	want = map[string]string{"Report.txt": "upper", "report-2.txt": "lower"}
	heldEverywhere(t, s, "", want)
	if list := unplacedOf(t, ctx, b); len(list) != 0 {
		t.Errorf("status still lists %+v", list)
	}
}

// TestCaseConflictResolvedHere: the exFAT device renames the name it
// holds; the peer's other version is then placed.
func TestCaseConflictResolvedHere(t *testing.T) {
	ctx, s := mixedPair(t)
	a, b := s.reps[0], s.reps[1]
	a.write(ctx, "Report.txt", "upper")
	a.write(ctx, "report.txt", "lower")
	if err := s.settle(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.move(ctx, "Report.txt", "Report-old.txt"); err != nil {
		t.Fatal(err)
	}
	if err := s.settle(ctx); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"Report-old.txt": "upper", "report.txt": "lower"}
	heldEverywhere(t, s, "", want)
	if list := unplacedOf(t, ctx, b); len(list) != 0 {
		t.Errorf("status still lists %+v", list)
	}
}

func TestCaseOnlyRenames(t *testing.T) {
	ctx, s := mixedPair(t)
	a, b := s.reps[0], s.reps[1]
	a.write(ctx, "Docs/a.txt", "a")
	a.write(ctx, "Docs/sub/b.txt", "b")
	a.write(ctx, "Note.txt", "note")
	if err := s.settle(ctx); err != nil {
		t.Fatal(err)
	}
	// On the POSIX device: a directory and a file change case.
	if err := a.folder.Rename("Docs", "docs"); err != nil {
		t.Fatal(err)
	}
	if err := a.scan(ctx); err != nil {
		t.Fatal(err)
	}
	if err := a.move(ctx, "Note.txt", "note.txt"); err != nil {
		t.Fatal(err)
	}
	if err := s.settle(ctx); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"docs/a.txt": "a", "docs/sub/b.txt": "b", "note.txt": "note"}
	heldEverywhere(t, s, "", want)
	if own := b.vector()[b.id]; own != 0 {
		t.Errorf("the exFAT device recorded %d changes of its own", own)
	}
	if list := unplacedOf(t, ctx, b); len(list) != 0 {
		t.Errorf("status lists %+v", list)
	}

	// On the exFAT device: a file changes case back.
	if err := b.move(ctx, "note.txt", "NOTE.txt"); err != nil {
		t.Fatal(err)
	}
	if err := s.settle(ctx); err != nil {
		t.Fatal(err)
	}
	want = map[string]string{"docs/a.txt": "a", "docs/sub/b.txt": "b", "NOTE.txt": "note"}
	heldEverywhere(t, s, "after the exFAT device's rename, ", want)
}

func TestRefusedNamesAreNotPlaced(t *testing.T) {
	ctx, s := mixedPair(t)
	a, b := s.reps[0], s.reps[1]
	for _, p := range []string{"a:b.txt", "what?.txt", "dir|x/in.txt", "trailing.", "ok.txt"} {
		if err := a.write(ctx, p, "data "+p); err != nil {
			t.Fatal(err)
		}
	}
	want := contents(t, a)
	if err := s.settle(ctx); err != nil {
		t.Fatal(err)
	}
	if got := contents(t, a); !maps.Equal(got, want) {
		t.Errorf("the sending device changed: %v, was %v", got, want)
	}
	got := slices.Sorted(maps.Keys(contents(t, b)))
	if !slices.Equal(got, []string{"ok.txt", "trailing."}) {
		t.Errorf("the exFAT device holds %q, want ok.txt and trailing. (exfat-fuse keeps a trailing dot)", got)
	}
	var listed []string
	for _, u := range unplacedOf(t, ctx, b) {
		if u.Kind != "refused-name" || !strings.Contains(u.Reason, "contains") {
			t.Errorf("unplaced entry %+v: want kind refused-name and the character named", u)
		}
		listed = append(listed, u.Path)
	}
	slices.Sort(listed)
	if !slices.Equal(listed, []string{"a:b.txt", "dir|x", "dir|x/in.txt", "what?.txt"}) {
		t.Errorf("status lists %q", listed)
	}
	// Deleting a refused name on its device settles its entry.
	if err := a.removeTree(ctx, "a:b.txt"); err != nil {
		t.Fatal(err)
	}
	if err := s.settle(ctx); err != nil {
		t.Fatal(err)
	}
	for _, u := range unplacedOf(t, ctx, b) {
		if u.Path == "a:b.txt" {
			t.Errorf("status still lists a:b.txt after its device deleted it")
		}
	}
}

func TestModesAreNotInvented(t *testing.T) {
	ctx, s := mixedPair(t)
	a, b := s.reps[0], s.reps[1]
	a.write(ctx, "secret.txt", "s")
	if err := a.folder.Chmod("secret.txt", 0o600); err != nil {
		t.Fatal(err)
	}
	if err := a.report(ctx, "secret.txt"); err != nil {
		t.Fatal(err)
	}
	if err := s.settle(ctx); err != nil {
		t.Fatal(err)
	}
	if own := b.vector()[b.id]; own != 0 {
		t.Errorf("the exFAT device recorded %d changes of its own", own)
	}
	if rec, ok, _ := b.db.File(ctx, "secret.txt"); !ok || rec.Mode != 0o600 {
		t.Errorf("the exFAT device records secret.txt with mode %o, want the peer's 600", rec.Mode)
	}
	// An edit on the exFAT device keeps the peer's mode; a new file there
	// gets the default.
	if err := b.write(ctx, "secret.txt", "s2"); err != nil {
		t.Fatal(err)
	}
	if err := b.write(ctx, "new.txt", "n"); err != nil {
		t.Fatal(err)
	}
	if err := s.settle(ctx); err != nil {
		t.Fatal(err)
	}
	for p, mode := range map[string]uint32{"secret.txt": 0o600, "new.txt": 0o644} {
		st, err := a.folder.Lstat(p)
		if err != nil || uint32(st.Mode().Perm()) != mode {
			t.Errorf("%s on the POSIX device: mode %v (%v), want %o", p, st.Mode(), err, mode)
		}
	}
	if got := contents(t, a)["secret.txt"]; got != "s2" {
		t.Errorf("the edit made on exFAT did not arrive: %q", got)
	}
}

// TestRescanOfCoarseTimes: times the disk keeps to the second match
// records that hold more, and a rescan records nothing.
func TestRescanOfCoarseTimes(t *testing.T) {
	ctx, s := mixedPair(t)
	a, b := s.reps[0], s.reps[1]
	a.write(ctx, "x.txt", "x")
	if err := s.settle(ctx); err != nil {
		t.Fatal(err)
	}
	rec, ok, err := b.db.File(ctx, "x.txt")
	if err != nil || !ok {
		t.Fatalf("x.txt not recorded on the exFAT device: %v", err)
	}
	// A record with nanoseconds, as a driver that showed them until a
	// remount would have left.
	rec.MTime += 123456789 % int64(time.Second)
	var pending batchRecords
	pending.add(rec)
	differs, err := b.node.diskDiffers(ctx, "x.txt", &pending, nil)
	if err != nil || differs {
		t.Errorf("a time kept to the second differs from its record with more: %v %v", differs, err)
	}
	if err := b.scan(ctx); err != nil {
		t.Fatal(err)
	}
	if own := b.vector()[b.id]; own != 0 {
		t.Errorf("a rescan on the exFAT device recorded %d changes", own)
	}
}

// TestMacNamesTravelInNFC: a device whose disk keeps names decomposed
// (HFS+) and finds them in any form never takes its own files for new
// ones, and sends names in NFC.
func TestMacNamesTravelInNFC(t *testing.T) {
	ctx := context.Background()
	s, err := runSim(ctx, 1, 2, 0, false, simDBDir(t))
	t.Cleanup(s.close)
	if err != nil {
		t.Fatal(err)
	}
	a, mac := s.reps[0], s.reps[1]
	mac.folder.BehaveAs(folder.Behaviour{
		Key:   func(n string) string { return foldCase(norm.NFC.String(n)) },
		Store: norm.NFD.String,
	})
	mac.node.probeVolume(ctx)
	if v := mac.node.volume(); !v.NormInsensitive || !v.CaseInsensitive {
		t.Fatalf("the probe of an HFS+-like folder found %+v", v)
	}
	nfc := "caf\u00e9.txt"
	if err := a.write(ctx, nfc, "from linux"); err != nil {
		t.Fatal(err)
	}
	if err := s.settle(ctx); err != nil {
		t.Fatal(err)
	}
	if got := mac.paths(); !slices.Equal(got, []string{norm.NFD.String(nfc)}) {
		t.Fatalf("the Mac holds %q, want the name decomposed", got)
	}
	// A user's program names a new file in NFD, as the Finder does.
	if err := mac.write(ctx, norm.NFD.String("r\u00e9sum\u00e9.txt"), "from mac"); err != nil {
		t.Fatal(err)
	}
	if err := mac.scan(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.settle(ctx); err != nil {
		t.Fatal(err)
	}
	ops, err := mac.allOps(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var own []string
	for _, op := range ops {
		if op.Origin == mac.id {
			own = append(own, op.String())
			if !norm.NFC.IsNormalString(op.Path) {
				t.Errorf("the Mac sent %s, a name not in NFC", op)
			}
		}
	}
	if len(own) != 1 {
		t.Errorf("the Mac recorded %q, want only the new file", own)
	}
	if got := contents(t, a); !maps.Equal(got, map[string]string{nfc: "from linux", "r\u00e9sum\u00e9.txt": "from mac"}) {
		t.Errorf("the Linux device holds %q", got)
	}
}
