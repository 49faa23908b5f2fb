package volume

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"runtime"
	"strings"
	"time"

	"github.com/drive-node/drive-node/node/internal/folder"
)

// probeChars are the printable characters some file system refuses in a
// name. The backslash is left out: no path with one is ever synced.
const probeChars = `:*?"<>|`

// probeTime is the modification time the probe sets: an odd second and
// a fraction with a digit in every place, so that what is kept of it shows
// the step times are kept in.
var probeTime = time.Unix(1700000001, 123456789)

// precisions are the steps in which file systems keep times, finest first.
var precisions = []time.Duration{time.Nanosecond, time.Microsecond, time.Millisecond, 10 * time.Millisecond,
	100 * time.Millisecond, time.Second, 2 * time.Second}

// Probe finds out what the file system under f can hold by creating,
// looking at and removing files in the directory scratch of f, which it
// makes, empties first (a crash may have left it) and removes when done.
// The caller picks a name its watcher ignores. An error means the folder
// could not be probed at all (it cannot be written, or it vanished); a
// name the file system refuses is a finding, not an error.
func Probe(f folder.Folder, scratch string) (Traits, error) {
	if err := empty(f, scratch); err != nil {
		return Traits{}, err
	}
	defer func() {
		empty(f, scratch)
		f.Remove(scratch)
	}()
	if err := f.MkdirAll(scratch, 0o700); err != nil {
		return Traits{}, fmt.Errorf("probe the folder's file system: %w", err)
	}
	p := prober{f: f, dir: scratch}
	var t Traits
	if err := p.create("probe-Ab"); err != nil {
		return Traits{}, fmt.Errorf("probe the folder's file system: %w", err)
	}
	t.CaseInsensitive = p.exists("probe-aB")
	// An e with a combining acute accent (NFD) is found as the precomposed
	// é (NFC) only where the file system compares names by normal form.
	if p.create("probe-e\u0301") == nil {
		t.NormInsensitive = p.exists("probe-\u00e9")
	}
	if runtime.GOOS == "windows" {
		// A device name opens a device there instead of failing: the
		// rules are taken as Windows has them rather than tried.
		w := Windows()
		t.RefusedChars, t.RefusesControl, t.RefusesTrailing, t.RefusesDevices = w.RefusedChars, true, true, true
	} else {
		for i, r := range probeChars {
			if p.create(fmt.Sprintf("probe-c%d%cx", i, r)) != nil {
				t.RefusedChars += string(r)
			}
		}
		t.RefusesControl = p.create("probe-ctl\x01x") != nil
		t.RefusesTrailing = !p.keeps("probe-dot.") || !p.keeps("probe-space ")
		t.RefusesDevices = p.create("CON") != nil || p.create("nul.txt") != nil
	}
	t.MaxName = p.maxName()
	if err := p.create("probe-meta"); err != nil {
		return Traits{}, fmt.Errorf("probe the folder's file system: %w", err)
	}
	t.NoModes = !p.keepsMode("probe-meta", 0o600) || !p.keepsMode("probe-meta", 0o640)
	prec, err := p.mtimePrecision("probe-meta")
	if err != nil {
		return Traits{}, fmt.Errorf("probe the folder's file system: %w", err)
	}
	t.MTimePrecision = prec
	return t, nil
}

// prober creates names in one scratch directory.
type prober struct {
	f   folder.Folder
	dir string
}

func (p prober) create(name string) error {
	fl, err := p.f.OpenFile(path.Join(p.dir, name), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	return fl.Close()
}

func (p prober) exists(name string) bool {
	_, err := p.f.Lstat(path.Join(p.dir, name))
	return err == nil
}

// keeps reports whether name can be created and is then listed under
// that very name (a file system that drops a trailing dot lists another).
func (p prober) keeps(name string) bool {
	if p.create(name) != nil {
		return false
	}
	names, err := p.list()
	if err != nil {
		return false
	}
	for _, n := range names {
		if n == name {
			return true
		}
	}
	return false
}

func (p prober) list() ([]string, error) {
	d, err := p.f.Open(p.dir)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	return d.Readdirnames(-1)
}

// maxName returns the longest name of ASCII letters the file system
// takes, up to 255 bytes, or 0 if it takes none tried.
func (p prober) maxName() int {
	try := func(n int) bool {
		name := "probe-" + strings.Repeat("n", n-len("probe-"))
		if p.create(name) != nil {
			return false
		}
		p.f.Remove(path.Join(p.dir, name))
		return true
	}
	if try(255) {
		return 255
	}
	lo, hi := len("probe-"), 255 // lo may be taken, hi is not
	if !try(lo + 1) {
		return 0
	}
	lo++
	for hi-lo > 1 {
		mid := (lo + hi) / 2
		if try(mid) {
			lo = mid
		} else {
			hi = mid
		}
	}
	return lo
}

func (p prober) keepsMode(name string, mode fs.FileMode) bool {
	full := path.Join(p.dir, name)
	if p.f.Chmod(full, mode) != nil {
		return false
	}
	st, err := p.f.Lstat(full)
	return err == nil && st.Mode().Perm() == mode
}

// mtimePrecision sets name's modification time to probeTime and returns
// the finest step that explains what was kept.
func (p prober) mtimePrecision(name string) (time.Duration, error) {
	full := path.Join(p.dir, name)
	if err := p.f.Chtimes(full, probeTime, probeTime); err != nil {
		return 0, fmt.Errorf("set a modification time: %w", err)
	}
	st, err := p.f.Lstat(full)
	if err != nil {
		return 0, err
	}
	return precisionOf(probeTime.UnixNano(), st.ModTime().UnixNano()), nil
}

// precisionOf returns the finest step in which set was kept as got, or
// the coarsest known one if none explains it.
func precisionOf(set, got int64) time.Duration {
	diff := set - got
	if diff < 0 {
		diff = -diff
	}
	for _, p := range precisions {
		if diff < int64(p) {
			return p
		}
	}
	return precisions[len(precisions)-1]
}

// empty removes what dir holds (files only: the probe makes nothing
// else), and nothing if dir is not there.
func empty(f folder.Folder, dir string) error {
	d, err := f.Open(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("probe the folder's file system: %w", err)
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return fmt.Errorf("probe the folder's file system: %w", err)
	}
	for _, n := range names {
		f.Remove(path.Join(dir, n))
	}
	return nil
}
