// Package volume says what the file system under a synced folder can
// hold: whether it tells names apart by case or by Unicode form, which
// names it refuses, whether it keeps Unix modes, and how precisely it keeps
// modification times. Probe finds out by trying, in a scratch directory of
// the folder; Traits then answers the engine's questions about a name
// without touching the disk.
package volume

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"

	"golang.org/x/text/unicode/norm"
)

// Traits is what a probe found about a folder's file system. The zero
// value describes a POSIX file system (ext4, XFS, btrfs): names are byte
// strings, any byte but '/' and NUL is allowed, modes and nanosecond
// times are kept.
type Traits struct {
	// CaseInsensitive: names that differ only in letter case are one
	// name (exFAT, FAT, NTFS, APFS and HFS+ by default). Such a file
	// system keeps the case a name was created with.
	CaseInsensitive bool `json:"case_insensitive"`
	// NormInsensitive: names that differ only in Unicode normalization
	// form are one name (APFS, HFS+).
	NormInsensitive bool `json:"normalization_insensitive"`
	// RefusedChars lists the printable characters no name may hold.
	RefusedChars string `json:"refused_chars,omitempty"`
	// RefusesControl: no name may hold a control character (U+0001 to
	// U+001F).
	RefusesControl bool `json:"refuses_control,omitempty"`
	// RefusesTrailing: no name may end in a dot or a space (Windows drops
	// them, so the file would get another name).
	RefusesTrailing bool `json:"refuses_trailing_dot_space,omitempty"`
	// RefusesDevices: the DOS device names (CON, PRN, AUX, NUL, COM1-9,
	// LPT1-9, with or without an extension) cannot be files.
	RefusesDevices bool `json:"refuses_device_names,omitempty"`
	// MaxName is the longest name, in bytes of UTF-8, the file system
	// took; 0 when it was not found out.
	MaxName int `json:"max_name_bytes,omitempty"`
	// NoModes: the file system keeps no Unix permission bits: every file
	// shows the same mode whatever is set.
	NoModes bool `json:"no_unix_modes,omitempty"`
	// MTimePrecision is the step modification times are kept in (1 ns on
	// ext4, 1 s through exfat-fuse, 2 s on FAT); 0 when it was not found
	// out, which compares times exactly.
	MTimePrecision time.Duration `json:"mtime_precision,omitempty"`
}

// ErrRefused is wrapped by the errors Refuses returns.
var ErrRefused = errors.New("the folder's file system cannot hold this name")

// Refuses says why the file system cannot hold name (one path component),
// or returns nil. It knows only what the probe tried: a name it accepts
// may still be refused by a rule the probe did not test.
func (t Traits) Refuses(name string) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %q %s", ErrRefused, name, fmt.Sprintf(format, args...))
	}
	for _, r := range name {
		switch {
		case t.RefusesControl && r > 0 && r < 0x20:
			return bad("contains the control character %U", r)
		case r < 0x80 && strings.ContainsRune(t.RefusedChars, r):
			return bad("contains %q", r)
		}
	}
	if t.RefusesTrailing && (strings.HasSuffix(name, ".") || strings.HasSuffix(name, " ")) {
		return bad("ends in a dot or space")
	}
	if t.RefusesDevices && DeviceName(name) {
		return bad("is a reserved device name")
	}
	if t.MaxName > 0 && len(name) > t.MaxName {
		return bad("is longer than %d bytes", t.MaxName)
	}
	return nil
}

// Key is the form in which the file system compares name: two names with
// the same Key are one name on this folder and cannot be held apart. It
// is name itself on a file system that tells every byte string apart.
func (t Traits) Key(name string) string {
	if t.NormInsensitive {
		name = norm.NFC.String(name)
	}
	if t.CaseInsensitive {
		// Simple case folding, as the upcase tables of exFAT and NTFS
		// do it: letter by letter, never one letter to two.
		name = strings.Map(func(r rune) rune { return unicode.ToLower(unicode.ToUpper(r)) }, name)
	}
	return name
}

// Folds reports whether some distinct names have one Key here.
func (t Traits) Folds() bool { return t.CaseInsensitive || t.NormInsensitive }

// String describes the traits in a line for a person.
func (t Traits) String() string {
	var parts []string
	if t.CaseInsensitive {
		parts = append(parts, "case-insensitive")
	} else {
		parts = append(parts, "case-sensitive")
	}
	if t.NormInsensitive {
		parts = append(parts, "Unicode-normalizing")
	}
	var refuses []string
	for _, r := range t.RefusedChars {
		refuses = append(refuses, string(r))
	}
	if t.RefusesControl {
		refuses = append(refuses, "control characters")
	}
	if t.RefusesTrailing {
		refuses = append(refuses, "a trailing dot or space")
	}
	if t.RefusesDevices {
		refuses = append(refuses, "device names (CON, NUL, COM1…)")
	}
	if len(refuses) > 0 {
		parts = append(parts, "refuses "+strings.Join(refuses, " "))
	}
	if t.MaxName > 0 {
		parts = append(parts, fmt.Sprintf("names up to %d bytes", t.MaxName))
	}
	if t.NoModes {
		parts = append(parts, "keeps no Unix modes")
	}
	if t.MTimePrecision > 0 {
		parts = append(parts, "mtime to "+t.MTimePrecision.String())
	}
	return strings.Join(parts, ", ")
}

// DeviceName reports whether name, without its extension, is a DOS device
// name: CON, PRN, AUX, NUL, COM1-9 or LPT1-9 (and COM, LPT with a
// superscript 1, 2 or 3), CONIN$ or CONOUT$, in any case and with trailing
// spaces, which Windows ignores.
func DeviceName(name string) bool {
	base, _, _ := strings.Cut(name, ".")
	u := strings.ToUpper(strings.TrimRight(base, " "))
	switch u {
	case "CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$":
		return true
	}
	if len(u) < 4 || u[:3] != "COM" && u[:3] != "LPT" {
		return false
	}
	switch u[3:] {
	case "1", "2", "3", "4", "5", "6", "7", "8", "9", "\u00b9", "\u00b2", "\u00b3":
		return true
	}
	return false
}

// Windows is what every Windows file system refuses, whatever a probe
// would find: Windows opens a device for a device name rather than
// failing, so those names cannot be probed there.
func Windows() Traits {
	return Traits{RefusedChars: `<>:"|?*\`, RefusesControl: true, RefusesTrailing: true, RefusesDevices: true}
}

// Truncate returns t in steps of the precision p (t itself for p ≤ 1 ns).
func Truncate(t int64, p time.Duration) int64 {
	if p <= 1 {
		return t
	}
	return t - ((t%int64(p))+int64(p))%int64(p)
}
