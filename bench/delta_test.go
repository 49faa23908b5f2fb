package bench

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/drive-node/drive-node/internal/netlab"
)

// The delta figures: one file of deltaSize random bytes in A's folder,
// then five small changes to it in turn, each timed until B's copy is
// identical and its bytes counted as what host A sent on the LAN. A tool
// that sends only the changed parts of a file sends little; one that sends
// whole files sends the file again for every change.
const (
	deltaSize = 256 << 20
	deltaAt   = 100 << 20 // where the overwrite and the insertion happen
	// deltaMaxSeconds is drive-node's target for every change at every
	// speed.
	deltaMaxSeconds = 0.5
)

// deltaSpeed is a link rate the delta figures are taken at.
type deltaSpeed struct {
	name, rate string        // as the table shows it; as tc takes it
	limit      time.Duration // how long B may take over one change
}

var deltaSpeeds = [...]deltaSpeed{
	{"1 Gbit/s", lanRate, 2 * time.Minute},
	{"100 Mbit/s", "100mbit", 2 * time.Minute},
}

// deltaChange is one of the changes, made to A's folder as a program
// would make it.
type deltaChange struct {
	name   string
	maxMiB float64 // drive-node's target for what A sends
	// edit records the change in f's model of A's folder and returns the
	// change itself, which the caller times.
	edit func(b *testing.B, f *deltaFolder) (change func())
}

var deltaChanges = [...]deltaChange{
	{"overwrite 4 KiB in place at 100 MiB", 0.30, overwrite4KiB},
	{"insert 1 byte at 100 MiB (editor-style save)", 0.30, insertByte},
	{"append 1 MiB", 1.3, appendMiB},
	{"copy to a new name", 0.05, copyToNewName},
	{"rename", 0.05, renameCopy},
}

// deltaStep is one change's result: MiB host A sent and the time from
// just before the change until B matched.
type deltaStep struct {
	done bool
	mib  float64
	took time.Duration
}

// deltaFigures are one tool's delta results, by speed and change.
type deltaFigures [len(deltaSpeeds)][len(deltaChanges)]deltaStep

// overwrite4KiB opens the file write-only, writes 4 KiB of new bytes at
// 100 MiB, flushes it and closes it: a database or a disk image changed
// in place.
func overwrite4KiB(b *testing.B, f *deltaFolder) func() {
	data := f.random(4 << 10)
	copy(f.files[f.name][deltaAt:], data)
	return func() {
		fd := openFile(b, f.path(f.name), os.O_WRONLY)
		if _, err := fd.WriteAt(data, deltaAt); err != nil {
			b.Fatal(err)
		}
		syncClose(b, fd)
	}
}

// insertByte saves as an editor does: a new file in the same directory
// (named as GLib's g_file_replace, which GNOME's editors use, names it)
// holding the first 100 MiB, one new byte and the rest, flushed, then
// renamed over the file.
func insertByte(b *testing.B, f *deltaFolder) func() {
	old, one := f.files[f.name], f.random(1)
	f.files[f.name] = slices.Concat(old[:deltaAt], one, old[deltaAt:])
	return func() {
		tmp := f.path(".goutputstream-DELTA1")
		fd := openFile(b, tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL)
		for _, part := range [][]byte{old[:deltaAt], one, old[deltaAt:]} {
			if _, err := fd.Write(part); err != nil {
				b.Fatal(err)
			}
		}
		syncClose(b, fd)
		if err := os.Rename(tmp, f.path(f.name)); err != nil {
			b.Fatal(err)
		}
	}
}

// appendMiB appends 1 MiB of new bytes and flushes: a log or a growing
// archive.
func appendMiB(b *testing.B, f *deltaFolder) func() {
	data := f.random(1 << 20)
	f.files[f.name] = slices.Concat(f.files[f.name], data)
	return func() {
		fd := openFile(b, f.path(f.name), os.O_WRONLY|os.O_APPEND)
		if _, err := fd.Write(data); err != nil {
			b.Fatal(err)
		}
		syncClose(b, fd)
	}
}

// copyToNewName copies the file to a new name as cp does: a new file,
// every byte written, flushed.
func copyToNewName(b *testing.B, f *deltaFolder) func() {
	f.files[f.copied()] = f.files[f.name] // neither changes after this
	return func() {
		src := openFile(b, f.path(f.name), os.O_RDONLY)
		defer src.Close()
		dst := openFile(b, f.path(f.copied()), os.O_WRONLY|os.O_CREATE|os.O_EXCL)
		if _, err := io.Copy(dst, src); err != nil {
			b.Fatal(err)
		}
		syncClose(b, dst)
	}
}

// renameCopy renames the copy: B must have the new name and not the old.
func renameCopy(b *testing.B, f *deltaFolder) func() {
	f.files[f.renamed()] = f.files[f.copied()]
	delete(f.files, f.copied())
	return func() {
		if err := os.Rename(f.path(f.copied()), f.path(f.renamed())); err != nil {
			b.Fatal(err)
		}
	}
}

func openFile(b *testing.B, path string, flag int) *os.File {
	fd, err := os.OpenFile(path, flag, 0o644)
	if err != nil {
		b.Fatal(err)
	}
	return fd
}

func syncClose(b *testing.B, fd *os.File) {
	if err := fd.Sync(); err != nil {
		b.Fatal(err)
	}
	if err := fd.Close(); err != nil {
		b.Fatal(err)
	}
}

// deltaFolder is the model of the delta files in A's folder: what each
// holds after the changes so far. The changes' new bytes come from one
// seeded generator, so every run, and every tool in a run, gets the same.
type deltaFolder struct {
	dir   string
	name  string            // the big file
	files map[string][]byte // name → content
	rng   *rand.ChaCha8
}

func newDeltaFolder(dir, name string, seed byte) *deltaFolder {
	return &deltaFolder{dir: dir, name: name, files: map[string][]byte{},
		rng: rand.NewChaCha8([32]byte{'d', 'e', 'l', 't', 'a', seed})}
}

func (f *deltaFolder) path(name string) string { return filepath.Join(f.dir, name) }

func (f *deltaFolder) copied() string { return strings.TrimSuffix(f.name, ".bin") + "-copy.bin" }

func (f *deltaFolder) renamed() string { return strings.TrimSuffix(f.name, ".bin") + "-renamed.bin" }

func (f *deltaFolder) random(n int) []byte {
	buf := make([]byte, n)
	f.rng.Read(buf)
	return buf
}

// want is what B must hold: each file's size and SHA-256.
func (f *deltaFolder) want() map[string]wantFile {
	w := map[string]wantFile{}
	for name, content := range f.files {
		w[name] = wantFile{int64(len(content)), sha256.Sum256(content)}
	}
	return w
}

// check fails the benchmark unless A's files are what the model says: a
// figure of a change the harness did not make would mean nothing.
func (f *deltaFolder) check(b *testing.B, what string) {
	for name, w := range f.want() {
		if sum, err := hashFile(f.path(name)); err != nil || sum != w.sum {
			b.Fatalf("%s: A's %s is not what the change made (%v)", what, name, err)
		}
	}
}

// deltaTransfer takes one tool's delta figures. At each speed in turn (the
// lab's links reshaped to it, and to lanRate again at the end) it moves a
// fresh file of deltaSize random bytes into A's folder, waits until B has
// it, then makes the five changes, each once A's link has gone quiet after
// the one before. The files of one speed are deleted, on both hosts,
// before the next.
func deltaTransfer(b *testing.B, name string, lab *netlab.Lab, stage, dirA, dirB string) deltaFigures {
	var d deltaFigures
	a := lab.Host(0)
	for i, sp := range deltaSpeeds {
		lab.Shape(b, sp.rate)
		what := fmt.Sprintf("%s at %s", name, sp.name)
		f := newDeltaFolder(dirA, "delta-"+sp.rate+".bin", byte(i))
		r := &replica{dir: dirB, sums: map[fileKey][sha256.Size]byte{}}

		f.files[f.name] = f.random(deltaSize)
		staged := filepath.Join(stage, f.name)
		fd := openFile(b, staged, os.O_WRONLY|os.O_CREATE|os.O_EXCL)
		if _, err := fd.Write(f.files[f.name]); err != nil {
			b.Fatal(err)
		}
		syncClose(b, fd)
		start := time.Now()
		if err := os.Rename(staged, f.path(f.name)); err != nil {
			b.Fatal(err)
		}
		at := r.wait(b, what+": the first copy of the file", f.want(), nil, 10*time.Minute)
		b.Logf("%s: %d MiB file on B after %.2f s", what, deltaSize>>20, at.Sub(start).Seconds())

		for j, c := range deltaChanges {
			waitQuiet(b, what, a)
			before := f.want()
			change := c.edit(b, f)
			want := f.want()
			var gone []string
			for n := range before {
				if _, ok := want[n]; !ok {
					gone = append(gone, n)
				}
			}
			sent := a.IfaceCounter(b, "tx_bytes")
			start := time.Now()
			change()
			made := time.Since(start)
			at := r.wait(b, what+": "+c.name, want, gone, sp.limit)
			sent = a.IfaceCounter(b, "tx_bytes") - sent
			d[i][j] = deltaStep{done: true, mib: float64(sent) / (1 << 20), took: at.Sub(start)}
			b.Logf("%s: %s: A sent %d bytes (%.3f MiB), B matched after %.3f s (making the change took %.3f s)",
				what, c.name, sent, d[i][j].mib, d[i][j].took.Seconds(), made.Seconds())
			f.check(b, what+": "+c.name)
		}

		for name := range f.files {
			if err := os.Remove(f.path(name)); err != nil {
				b.Fatal(err)
			}
		}
		r.wait(b, what+": deleting the files", nil, slices.Collect(maps.Keys(f.files)), sp.limit)
	}
	lab.Shape(b, lanRate)
	return d
}

// waitQuiet waits until host a's LAN interface has sent less than 16 KiB
// in half a second, so that what a change is charged with is its own
// (a tool may still exchange indexes after B has a file). A link that
// stays busy for a minute is logged and the change made anyway.
func waitQuiet(b *testing.B, what string, a *netlab.Host) {
	const window, quiet, limit = 500 * time.Millisecond, 16 << 10, time.Minute
	start := time.Now()
	last := a.IfaceCounter(b, "tx_bytes")
	for {
		time.Sleep(window) // the window measured, not a wait for an event
		now := a.IfaceCounter(b, "tx_bytes")
		if now-last < quiet {
			return
		}
		if time.Since(start) > limit {
			b.Logf("%s: A still sending after %v (%d bytes in the last %v); going on", what, limit, now-last, window)
			return
		}
		last = now
	}
}

// wantFile is what one of B's files must be.
type wantFile struct {
	size int64
	sum  [sha256.Size]byte
}

// replica is B's folder as the delta figures watch it: its files are
// polled by stat and hashed only when the stat shows content not yet
// hashed.
type replica struct {
	dir  string
	sums map[fileKey][sha256.Size]byte
}

// fileKey tells one content of a file from another: any write changes the
// change time, and a rename over it the inode.
type fileKey struct {
	ino          uint64
	size         int64
	mtime, ctime syscall.Timespec
}

func statKey(path string) (fileKey, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return fileKey{}, err
	}
	return fileKey{st.Ino, st.Size, st.Mtim, st.Ctim}, nil
}

func hashFile(path string) ([sha256.Size]byte, error) {
	var sum [sha256.Size]byte
	fd, err := os.Open(path)
	if err != nil {
		return sum, err
	}
	defer fd.Close()
	h := sha256.New()
	if _, err := io.CopyBuffer(h, fd, make([]byte, 1<<20)); err != nil {
		return sum, err
	}
	h.Sum(sum[:0])
	return sum, nil
}

// probe is what the poll knows of one name on B.
type probe struct {
	key   fileKey
	seen  time.Time // when key was first seen
	since time.Time // since when the name has been as wanted; zero if it is not
	state string    // what B has, for a failure
}

// wait polls B's folder every 5 ms until every file of want is there with
// its size and content and no name of gone is, and returns the moment that
// became so: the latest of the moments each name was first seen as it
// ended (a file's is the stat before its hash, so hashing is not counted).
// A file is hashed once two polls in a row see the same stat. After limit
// it fails the benchmark with what B has.
func (r *replica) wait(b *testing.B, what string, want map[string]wantFile, gone []string, limit time.Duration) time.Time {
	probes := map[string]*probe{}
	for name := range want {
		probes[name] = &probe{}
	}
	for _, name := range gone {
		probes[name] = &probe{}
	}
	start := time.Now()
	for {
		now := time.Now()
		done, at := true, time.Time{}
		for name, p := range probes {
			w, wanted := want[name]
			path := filepath.Join(r.dir, name)
			ok := r.look(path, w, wanted, p, now)
			switch {
			case !ok:
				p.since = time.Time{}
				done = false
			case p.since.IsZero():
				p.since = now
				if wanted {
					p.since = p.seen
				}
			}
			if p.since.After(at) {
				at = p.since
			}
		}
		if done {
			return at
		}
		if time.Since(start) > limit {
			var states []string
			for name, p := range probes {
				states = append(states, name+": "+p.state)
			}
			sort.Strings(states)
			b.Fatalf("%s: B does not match A after %v; B has:\n%s", what, limit, strings.Join(states, "\n"))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// look reports whether the name at path is as wanted (the file w if
// wanted, else absent), and records in p what it found.
func (r *replica) look(path string, w wantFile, wanted bool, p *probe, now time.Time) bool {
	key, err := statKey(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		p.key, p.seen = fileKey{}, time.Time{}
		p.state = "missing"
		return !wanted
	case err != nil:
		p.state = err.Error()
		return false
	case !wanted:
		p.state = fmt.Sprintf("still there (%d bytes)", key.size)
		return false
	case key != p.key || p.seen.IsZero():
		p.key, p.seen = key, now
		p.state = fmt.Sprintf("%d of %d bytes", key.size, w.size)
		return false // hashed once the next poll sees the same stat
	case key.size != w.size:
		return false
	}
	sum, ok := r.sums[key]
	if !ok {
		hashed := time.Now()
		var err error
		if sum, err = hashFile(path); err != nil {
			p.state = err.Error()
			return false
		}
		if after, err := statKey(path); err != nil || after != key {
			return false // changed while hashed: the next poll looks again
		}
		// Two writes within one tick of the file system's clock leave the
		// same stat: a hash is kept only for a file changed well before.
		if time.Unix(key.ctime.Unix()).Before(hashed.Add(-50 * time.Millisecond)) {
			r.sums[key] = sum
		}
	}
	if sum != w.sum {
		p.state = fmt.Sprintf("all %d bytes, SHA-256 %s…, A's is %s…", key.size,
			hex.EncodeToString(sum[:6]), hex.EncodeToString(w.sum[:6]))
		return false
	}
	p.state = "matches"
	return true
}

// formatDeltaTable is the delta figures' table: one row per speed and
// change, both tools' MiB sent and seconds, and whether drive-node met its
// target. A tool that was not run shows dashes and judges nothing.
func formatDeltaTable(d, s deltaFigures) string {
	var w strings.Builder
	fmt.Fprintf(&w, "\nDelta transfer, %s: one %d MiB file of random bytes, then five changes in turn; MiB is what host A sent "+
		"(its LAN interface's tx_bytes), seconds from just before the change until B's copy matched (SHA-256)\n\n",
		time.Now().UTC().Format("2006-01-02"), deltaSize>>20)
	fmt.Fprintf(&w, "| link | change | drive-node MiB sent | drive-node s | Syncthing MiB sent | Syncthing s | target |\n")
	fmt.Fprintf(&w, "|---|---|---|---|---|---|---|\n")
	for i, sp := range deltaSpeeds {
		for j, c := range deltaChanges {
			ours, theirs := d[i][j], s[i][j]
			verdict := fmt.Sprintf("≤ %.2f MiB and ≤ Syncthing's, ≤ %.1f s", c.maxMiB, deltaMaxSeconds)
			met := ours.mib <= c.maxMiB && ours.took.Seconds() <= deltaMaxSeconds
			switch {
			case !ours.done:
				verdict += " — not measured"
			case !met:
				verdict += " — not met"
			case !theirs.done:
				verdict += " — Syncthing not measured"
			case ours.mib <= theirs.mib:
				verdict += " — met"
			default:
				verdict += " — not met"
			}
			fmt.Fprintf(&w, "| %s | %s | %s | %s | %s | %s | %s |\n", sp.name, c.name,
				ours.mibCell(), ours.secondsCell(), theirs.mibCell(), theirs.secondsCell(), verdict)
		}
	}
	return w.String()
}

func (s deltaStep) mibCell() string {
	switch {
	case !s.done:
		return "—"
	case s.mib < 10:
		return fmt.Sprintf("%.3f", s.mib)
	}
	return fmt.Sprintf("%.1f", s.mib)
}

func (s deltaStep) secondsCell() string {
	if !s.done {
		return "—"
	}
	return fmt.Sprintf("%.2f", s.took.Seconds())
}

func TestDeltaTableJudgesTargets(t *testing.T) {
	step := func(mib, secs float64) deltaStep {
		return deltaStep{done: true, mib: mib, took: time.Duration(secs * float64(time.Second))}
	}
	fill := func(steps ...deltaStep) (f deltaFigures) {
		for i := range f {
			copy(f[i][:], steps)
		}
		return f
	}
	good := fill(step(0.12, 0.08), step(0.2, 0.3), step(1.1, 0.15), step(0.01, 0.4), step(0.004, 0.05))
	whole := fill(step(262.1, 2.5), step(262.2, 2.9), step(263.0, 2.6), step(0.02, 0.3), step(0.003, 0.06))
	syncthing := fill(step(0.5, 1.6), step(1.2, 1.9), step(1.4, 1.5), step(0.3, 2.5), step(0.01, 1.1))

	cases := []struct {
		name   string
		d, s   deltaFigures
		rows   map[string]string // row prefix → what it must say
		absent []string
	}{
		{"all met", good, syncthing, map[string]string{
			"1 Gbit/s | overwrite 4 KiB":  "| 0.120 | 0.08 | 0.500 | 1.60 | ≤ 0.30 MiB and ≤ Syncthing's, ≤ 0.5 s — met |",
			"100 Mbit/s | append 1 MiB":   "| 1.100 | 0.15 | 1.400 | 1.50 | ≤ 1.30 MiB and ≤ Syncthing's, ≤ 0.5 s — met |",
			"100 Mbit/s | rename":         "| 0.004 | 0.05 | 0.010 | 1.10 | ≤ 0.05 MiB and ≤ Syncthing's, ≤ 0.5 s — met |",
			"1 Gbit/s | copy to a new na": "— met |",
		}, []string{"not met", "| — |"}},
		{"whole files resent", whole, syncthing, map[string]string{
			"1 Gbit/s | overwrite 4 KiB": "| 262.1 | 2.50 | 0.500 | 1.60 | ≤ 0.30 MiB and ≤ Syncthing's, ≤ 0.5 s — not met |",
			"100 Mbit/s | insert 1 byte": "— not met |",
			"1 Gbit/s | copy to a new":   "| 0.020 | 0.30 | 0.300 | 2.50 | ≤ 0.05 MiB and ≤ Syncthing's, ≤ 0.5 s — met |",
			"1 Gbit/s | rename":          "| 0.003 | 0.06 | 0.010 | 1.10 | ≤ 0.05 MiB and ≤ Syncthing's, ≤ 0.5 s — met |",
		}, nil},
		{"more than Syncthing", fill(step(0.2, 0.1)), fill(step(0.1, 1)), map[string]string{
			"1 Gbit/s | overwrite 4 KiB": "| 0.200 | 0.10 | 0.100 | 1.00 | ≤ 0.30 MiB and ≤ Syncthing's, ≤ 0.5 s — not met |",
		}, nil},
		{"drive-node alone", good, deltaFigures{}, map[string]string{
			"1 Gbit/s | overwrite 4 KiB": "| 0.120 | 0.08 | — | — | ≤ 0.30 MiB and ≤ Syncthing's, ≤ 0.5 s — Syncthing not measured |",
			"1 Gbit/s | append 1 MiB":    "— Syncthing not measured |",
		}, []string{"— met", "NaN", "Inf"}},
		{"drive-node alone, too slow", fill(step(0.1, 0.6)), deltaFigures{}, map[string]string{
			"100 Mbit/s | overwrite 4 KiB": "| 0.100 | 0.60 | — | — | ≤ 0.30 MiB and ≤ Syncthing's, ≤ 0.5 s — not met |",
		}, nil},
		{"Syncthing alone", deltaFigures{}, syncthing, map[string]string{
			"1 Gbit/s | overwrite 4 KiB": "| — | — | 0.500 | 1.60 | ≤ 0.30 MiB and ≤ Syncthing's, ≤ 0.5 s — not measured |",
		}, []string{"— met", "not met"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			table := formatDeltaTable(c.d, c.s)
			rows := 0
			for _, line := range strings.Split(table, "\n") {
				if strings.HasPrefix(line, "| 1") {
					rows++
				}
			}
			if rows != len(deltaSpeeds)*len(deltaChanges) {
				t.Errorf("%d rows, want %d:\n%s", rows, len(deltaSpeeds)*len(deltaChanges), table)
			}
			for prefix, want := range c.rows {
				if line := rowOf(table, prefix); !strings.Contains(line, want) {
					t.Errorf("row %q = %q, want it to contain %q", prefix, line, want)
				}
			}
			for _, never := range c.absent {
				for _, line := range strings.Split(table, "\n") {
					if strings.HasPrefix(line, "| 1") && strings.Contains(line, never) {
						t.Errorf("row %q contains %q", line, never)
					}
				}
			}
		})
	}
}
