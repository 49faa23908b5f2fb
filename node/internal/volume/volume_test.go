package volume_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode"

	"golang.org/x/text/unicode/norm"

	"github.com/drive-node/drive-node/node"
	"github.com/drive-node/drive-node/node/internal/folder"
	"github.com/drive-node/drive-node/node/internal/volume"
)

const scratch = ".drive-node-tmp-probe"

// exfatNames refuses what exfat-fuse refuses (checked on a real mount).
func exfatNames(base string) error {
	for _, r := range base {
		if r < 0x20 || strings.ContainsRune(`:*?"<>|`, r) {
			return errors.New("no such file or directory")
		}
	}
	return nil
}

func foldCase(name string) string {
	return strings.Map(func(r rune) rune { return unicode.ToLower(unicode.ToUpper(r)) }, name)
}

func TestProbe(t *testing.T) {
	cases := []struct {
		name  string
		setup func(m *folder.Mem)
		want  volume.Traits
	}{
		{"posix", func(*folder.Mem) {}, volume.Traits{MaxName: 255, MTimePrecision: time.Nanosecond}},
		{"exfat", func(m *folder.Mem) {
			m.BehaveAs(folder.Behaviour{Key: foldCase, NoModes: true, MTimeStep: time.Second})
			m.RefuseNames(exfatNames)
		}, volume.Traits{CaseInsensitive: true, RefusedChars: `:*?"<>|`, RefusesControl: true, MaxName: 255, NoModes: true, MTimePrecision: time.Second}},
		{"apfs", func(m *folder.Mem) {
			m.BehaveAs(folder.Behaviour{Key: func(n string) string { return foldCase(norm.NFC.String(n)) }})
		}, volume.Traits{CaseInsensitive: true, NormInsensitive: true, MaxName: 255, MTimePrecision: time.Nanosecond}},
		{"fat", func(m *folder.Mem) {
			m.BehaveAs(folder.Behaviour{Key: foldCase, NoModes: true, MTimeStep: 2 * time.Second})
			m.RefuseNames(func(base string) error {
				if len(base) > 100 || strings.HasSuffix(base, ".") || volume.DeviceName(base) {
					return errors.New("invalid argument")
				}
				return exfatNames(base)
			})
		}, volume.Traits{CaseInsensitive: true, RefusedChars: `:*?"<>|`, RefusesControl: true, RefusesTrailing: true,
			RefusesDevices: true, MaxName: 100, NoModes: true, MTimePrecision: 2 * time.Second}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := folder.NewMem(time.Unix(1800000000, 0))
			c.setup(m)
			m.WriteFile("kept.txt", []byte("x"), 0o644)
			got, err := volume.Probe(m, scratch)
			if err != nil {
				t.Fatal(err)
			}
			if got != c.want {
				t.Errorf("probe found %+v, want %+v", got, c.want)
			}
			// The probe leaves the folder as it found it.
			d, _ := m.Open(".")
			names, _ := d.Readdirnames(-1)
			if len(names) != 1 || names[0] != "kept.txt" {
				t.Errorf("folder after the probe holds %q, want only kept.txt", names)
			}
		})
	}
}

// TestProbeRealDisk probes the test's temporary directory, whatever file
// system it is on here: it must at least find what every Linux disk does.
func TestProbeRealDisk(t *testing.T) {
	dir := t.TempDir()
	// A crash during an earlier probe left its scratch directory.
	os.MkdirAll(filepath.Join(dir, scratch), 0o700)
	os.WriteFile(filepath.Join(dir, scratch, "probe-Ab"), nil, 0o644)
	f, err := node.OpenRootFolder(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, err := volume.Probe(f, scratch)
	if err != nil {
		t.Fatal(err)
	}
	if got.NoModes || got.MaxName != 255 || got.RefusedChars != "" || got.MTimePrecision <= 0 || got.MTimePrecision > time.Second {
		t.Errorf("probe of a Linux temporary directory found %+v", got)
	}
	if _, err := os.Stat(filepath.Join(dir, scratch)); !os.IsNotExist(err) {
		t.Errorf("the probe left its scratch directory: %v", err)
	}
	if _, err := volume.Probe(f, "missing/"+scratch); err != nil {
		t.Logf("probe under a missing directory: %v", err) // MkdirAll makes it
	}
}

func TestRefuses(t *testing.T) {
	exfat := volume.Traits{CaseInsensitive: true, RefusedChars: `:*?"<>|`, RefusesControl: true, MaxName: 255}
	win := volume.Windows()
	cases := []struct {
		t    volume.Traits
		name string
		want string // "" for accepted, else a word of the reason
	}{
		{volume.Traits{}, "a:b.txt", ""},
		{volume.Traits{}, "CON", ""},
		{exfat, "a:b.txt", "':'"},
		{exfat, "what?.txt", "'?'"},
		{exfat, "tab\there", "control character U+0009"},
		{exfat, "trailing.", ""},
		{exfat, "CON", ""},
		{exfat, strings.Repeat("x", 256), "longer than 255"},
		{exfat, "Report.txt", ""},
		{win, "trailing.", "dot or space"},
		{win, "trailing ", "dot or space"},
		{win, "con", "device name"},
		{win, "Aux.h", "device name"},
		{win, "nul .txt", "device name"},
		{win, "COM1", "device name"},
		{win, "com¹", "device name"},
		{win, "LPT9.log", "device name"},
		{win, "COM0", ""},
		{win, "CONSOLE", ""},
		{win, "lpt", ""},
		{win, "a|b", "'|'"},
		{win, "é.txt", ""},
	}
	for _, c := range cases {
		err := c.t.Refuses(c.name)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%+v refuses %q: %v", c.t, c.name, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want) || !errors.Is(err, volume.ErrRefused)):
			t.Errorf("%+v on %q: got %v, want an error saying %s", c.t, c.name, err, c.want)
		}
	}
}

func TestKey(t *testing.T) {
	nfd, nfc := "e\u0301t\u00e9", "\u00e9t\u00e9"
	cases := []struct {
		t    volume.Traits
		a, b string
		same bool
	}{
		{volume.Traits{}, "Report.txt", "report.txt", false},
		{volume.Traits{CaseInsensitive: true}, "Report.txt", "report.txt", true},
		{volume.Traits{CaseInsensitive: true}, "ÉTÉ", "été", true},
		{volume.Traits{CaseInsensitive: true}, nfd, nfc, false},
		{volume.Traits{NormInsensitive: true}, nfd, nfc, true},
		{volume.Traits{NormInsensitive: true}, "A", "a", false},
		{volume.Traits{CaseInsensitive: true, NormInsensitive: true}, strings.ToUpper(nfd), nfc, true},
		{volume.Traits{CaseInsensitive: true}, "docs/a", "Docs/A", true},
		{volume.Traits{CaseInsensitive: true}, "a.txt", "b.txt", false},
	}
	for _, c := range cases {
		if got := c.t.Key(c.a) == c.t.Key(c.b); got != c.same {
			t.Errorf("%+v: %q and %q one name = %v, want %v", c.t, c.a, c.b, got, c.same)
		}
	}
}

func TestTruncate(t *testing.T) {
	cases := []struct {
		t    int64
		p    time.Duration
		want int64
	}{
		{1700000001123456789, time.Nanosecond, 1700000001123456789},
		{1700000001123456789, 0, 1700000001123456789},
		{1700000001123456789, time.Second, 1700000001000000000},
		{1700000001123456789, 2 * time.Second, 1700000000000000000},
		{1700000001123456789, 10 * time.Millisecond, 1700000001120000000},
		{-1500000000, time.Second, -2000000000},
	}
	for _, c := range cases {
		if got := volume.Truncate(c.t, c.p); got != c.want {
			t.Errorf("Truncate(%d, %v) = %d, want %d", c.t, c.p, got, c.want)
		}
	}
}

func TestString(t *testing.T) {
	exfat := volume.Traits{CaseInsensitive: true, RefusedChars: `:*`, RefusesControl: true, NoModes: true, MTimePrecision: time.Second}
	got := exfat.String()
	for _, want := range []string{"case-insensitive", "refuses : * control characters", "keeps no Unix modes", "mtime to 1s"} {
		if !strings.Contains(got, want) {
			t.Errorf("%q does not say %q", got, want)
		}
	}
}
