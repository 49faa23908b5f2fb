package node

import (
	"errors"
	"runtime"
	"strings"
	"testing"
)

func TestCheckPath(t *testing.T) {
	for _, tc := range []struct {
		path string
		ok   bool
	}{
		{"a.txt", true},
		{"dir/sub/file with space.txt", true},
		{"ünïcode/ファイル", true},
		{"..data", true},
		{"", false},
		{"/etc/passwd", false},
		{"../escape", false},
		{"a/../../escape", false},
		{"a/./b", false},
		{"a//b", false},
		{"a/", false},
		{"a\x00b", false},
		{`a\..\b`, false},
		{"C:/x", runtime.GOOS != "windows"}, // a directory "C:" elsewhere
		{".drive-node/state.db", false},
		{"x/.drive-node-tmp-123", false},
		{".drive-node-folder", false},
		{strings.Repeat("a", 256), false},
		{strings.Repeat("a/", 2100) + "a", false},
		{"\xff\xfe", false},
	} {
		err := checkPath(tc.path)
		if (err == nil) != tc.ok {
			t.Errorf("checkPath(%q) = %v, want ok=%v", tc.path, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrUnsafePath) {
			t.Errorf("checkPath(%q) error does not wrap ErrUnsafePath", tc.path)
		}
	}
}

func TestWindowsInvalidPathElement(t *testing.T) {
	for _, tc := range []struct {
		name string
		why  string // part of the reason; "" when the name is fine
	}{
		{"a.txt", ""},
		{"file with space.txt", ""},
		{"ファイル", ""},
		{".hidden", ""},
		{"..data", ""},
		{"console", ""},
		{"con2", ""},
		{"com0", ""},
		{"com10", ""},
		{"lpt", ""},
		{"auxiliary.h", ""},
		{"my.aux", ""},
		{"nul-ish", ""},
		{"CON", "reserved device name"},
		{"con", "reserved device name"},
		{"Prn", "reserved device name"},
		{"aux.h", "reserved device name"},
		{"NUL.tar.gz", "reserved device name"},
		{"nul .txt", "reserved device name"},
		{"COM1", "reserved device name"},
		{"com9.log", "reserved device name"},
		{"LPT1", "reserved device name"},
		{"lpt9", "reserved device name"},
		{"COM\u00b9", "reserved device name"},
		{"lpt\u00b3.txt", "reserved device name"},
		{"CONIN$", "reserved device name"},
		{"conout$", "reserved device name"},
		{"a<b", `'<'`},
		{"a>b", `'>'`},
		{"a:b", `':'`},
		{`a"b`, `'"'`},
		{"a|b", `'|'`},
		{"what?", `'?'`},
		{"*.txt", `'*'`},
		{`a\b`, `'\\'`},
		{"tab\there", "control character U+0009"},
		{"nl\n", "control character U+000A"},
		{"\x1f", "control character U+001F"},
		{"ends.", "ends in a dot or space"},
		{"ends ", "ends in a dot or space"},
		{"aux.", "ends in a dot or space"},
	} {
		err := windowsInvalid(tc.name)
		switch {
		case tc.why == "" && err != nil:
			t.Errorf("windowsInvalid(%q) = %v, want nil", tc.name, err)
		case tc.why != "" && (err == nil || !strings.Contains(err.Error(), tc.why)):
			t.Errorf("windowsInvalid(%q) = %v, want one saying %s", tc.name, err, tc.why)
		}
	}
}

// TestCheckPathWindowsNames: names Windows cannot create are refused on
// Windows only; elsewhere they are ordinary files and are synced.
func TestCheckPathWindowsNames(t *testing.T) {
	for _, p := range []string{"src/aux.h", "CON", "dir/nul.txt", "a/b?.txt", "notes/todo.", "x/trailing ", "lpt1/file"} {
		err := checkPath(p)
		if runtime.GOOS != "windows" {
			if err != nil {
				t.Errorf("checkPath(%q) = %v on %s, want nil", p, err, runtime.GOOS)
			}
			continue
		}
		if !errors.Is(err, ErrUnsafePath) || !strings.Contains(err.Error(), "cannot be created on Windows") {
			t.Errorf("checkPath(%q) = %v on Windows, want ErrUnsafePath naming the component", p, err)
		}
	}
}

// TestCheckPathReservedNamesInAnyForm: a file system that ignores case or
// Unicode form (exFAT, APFS, NTFS) opens these names as the state dir, the
// marker or a temporary file, so they are refused on every device.
func TestCheckPathReservedNamesInAnyForm(t *testing.T) {
	for _, p := range []string{
		".DRIVE-NODE/device-key.pem",
		".Drive-Node/state.db",
		"sub/.Drive-Node-Folder",
		".DRIVE-NODE-FOLDER",
		".DRIVE-NODE-TMP-x",
		"a/.Drive-Node-Tmp-w-0123",
		".drıve-node/device-key.pem",       // dotless i: NTFS upcases it to I
		".drive-node\u200c/device-key.pem", // zero-width non-joiner: HFS+ ignores it
		".ｄｒｉｖｅ-ｎｏｄｅ/device-key.pem",       // fullwidth: NFKC makes it ASCII
		".drive-node-folder.",              // Windows and exFAT drop trailing dots
		".drive-node /device-key.pem",      // and spaces
		"DRIVE-~1/device-key.pem",          // the 8.3 alias of .drive-node
		"drive-~12",                        // in any case, any number
		"DR7A3F~1",                         // the hashed 8.3 alias
		"e\u0301/.DRIVE-NODE/state.db",     // a decomposed parent does not hide it
	} {
		err := checkPath(p)
		if !errors.Is(err, ErrUnsafePath) || !strings.Contains(err.Error(), "names drive-node's own files") {
			t.Errorf("checkPath(%q) = %v, want a refusal naming drive-node's own files", p, err)
		}
	}
	for _, p := range []string{".drive-nodes", "drive-node", ".drive-node-backup/x", "DRIVE-1", "DRIVE~1", "DRZZZZ~1", "DRIVE-~", "DRIVE-~1.TXT", "café/naïve"} {
		if err := checkPath(p); err != nil {
			t.Errorf("checkPath(%q) = %v, want nil", p, err)
		}
	}
}
