package node

import (
	"errors"
	"fmt"
	"io/fs"
	"runtime"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"

	"github.com/drive-node/drive-node/node/internal/volume"
)

// Limits on paths received from peers.
const (
	maxPathLen      = 4096
	maxComponentLen = 255
)

// ErrUnsafePath is wrapped by checkPath's errors.
var ErrUnsafePath = errors.New("unsafe path")

// checkPath accepts only a path that names something inside the folder:
// relative, slash-separated, no empty, "." or ".." component, no NUL or
// backslash, valid UTF-8, within length limits, and not the node's own
// state or temporary files under any name a file system may take for
// theirs (see reservedName); on Windows, also no component Windows cannot
// create (see windowsInvalid: elsewhere such names are ordinary files, and
// refusing them would stop their sync). Symlinks are handled where files
// are opened (os.Root refuses to follow one out of the folder).
func checkPath(p string) error {
	bad := func(why string) error { return fmt.Errorf("%w %q: %s", ErrUnsafePath, p, why) }
	switch {
	case p == "":
		return bad("empty")
	case len(p) > maxPathLen:
		return bad(fmt.Sprintf("longer than %d bytes", maxPathLen))
	case !utf8.ValidString(p):
		return bad("not valid UTF-8")
	case strings.HasPrefix(p, "/"):
		return bad("absolute")
	case strings.ContainsAny(p, "\x00\\"):
		return bad("contains NUL or backslash")
	}
	for _, c := range strings.Split(p, "/") {
		switch {
		case c == "" || c == ".":
			return bad("empty or '.' component")
		case c == "..":
			return bad("'..' component")
		case len(c) > maxComponentLen:
			return bad(fmt.Sprintf("component longer than %d bytes", maxComponentLen))
		case reservedName(c):
			return bad(fmt.Sprintf("component %q names drive-node's own files (%s, %s, %s or %s*) on a file system that ignores case or Unicode form",
				c, StateDirName, MarkerName, VersionsDirName, TempPrefix))
		}
		if runtime.GOOS == "windows" {
			if err := windowsInvalid(c); err != nil {
				return bad(fmt.Sprintf("component %q cannot be created on Windows: %v", c, err))
			}
		}
	}
	return nil
}

// reservedName reports whether a file system could take the component c
// for the state dir, the marker or a temporary file: a case-insensitive or
// normalizing one (exFAT, APFS, NTFS) opens ".DRIVE-NODE" as ".drive-node",
// so a peer's write there would land in the state dir. c is compared after
// dropping format characters (which HFS+ ignores), NFKC normalization (which
// covers NFC and NFD, and fullwidth look-alikes), mapping every letter to one
// case (so that "ı", "ſ" and the Kelvin sign meet "I", "S" and "K", as NTFS's
// upcase table has them), and trimming trailing dots and spaces (which
// Windows and exFAT drop). It also refuses the 8.3 short names Windows and
// FAT give those files: FAT disks are common on small boards, so this is
// not limited to Windows. Refusing a look-alike that no file system
// confuses costs only that name's sync.
func reservedName(c string) bool {
	f := foldName(c)
	return f == reservedState || f == reservedMarker || f == reservedVersions || strings.HasPrefix(f, reservedTemp) || shortAlias(c)
}

// The reserved names as foldName gives them.
var (
	reservedState    = foldName(StateDirName)
	reservedMarker   = foldName(MarkerName)
	reservedTemp     = foldName(TempPrefix)
	reservedVersions = foldName(VersionsDirName)
)

// foldName is name as the most forgiving file system compares it (see
// reservedName).
func foldName(name string) string {
	name = strings.Map(func(r rune) rune {
		if unicode.Is(unicode.Cf, r) {
			return -1
		}
		return r
	}, name)
	name = strings.Map(func(r rune) rune { return unicode.ToUpper(unicode.ToLower(r)) }, norm.NFKC.String(name))
	return strings.TrimRight(name, ". ")
}

// shortAlias reports whether name is an 8.3 short name that one of
// drive-node's own files can get: they all start ".drive-node", which 8.3
// shortens to "DRIVE-~N", or, once a directory holds more than four such
// names, to "DR", four hex digits and "~N".
func shortAlias(name string) bool {
	base, num, ok := strings.Cut(strings.ToUpper(name), "~")
	if !ok || num == "" || strings.Trim(num, "0123456789") != "" {
		return false
	}
	if base == "DRIVE-" {
		return true
	}
	return len(base) == 6 && base[:2] == "DR" && strings.Trim(base[2:], "0123456789ABCDEF") == ""
}

// windowsInvalid says why Windows cannot create a file or directory named
// name (one path component), or returns nil: a reserved device name, with
// or without an extension ("aux", "AUX.h", "nul .txt"; Windows 11 accepts
// some of the latter, older versions none), a character Windows forbids in
// names (<>:"/\|?* or a control character), or a trailing dot or space
// (which Windows strips, so the file would get another name). It is pure,
// so it is tested on every platform.
func windowsInvalid(name string) error {
	return volume.Windows().Refuses(name)
}

// throughSymlink refuses a path whose existing parent directories include
// a symlink: following it could lead out of the folder. (os.Root refuses
// such writes as well; this turns them into a clear refusal instead of a
// retry.) It looks again for every op: a user may swap a directory for
// a symlink while a chunk is applied.
func (n *Node) throughSymlink(p string) error {
	if f, ok := n.folderRoot().(interface{ NoSymlinkAbove(string) bool }); ok && f.NoSymlinkAbove(p) {
		return nil // the kernel resolved the directories at once
	}
	dir := parentDir(p)
	for dir != "" {
		st, err := n.folderRoot().Lstat(dir)
		if err == nil && st.Mode()&fs.ModeSymlink != 0 {
			return fmt.Errorf("%w %q: goes through the symlink %q", ErrUnsafePath, p, dir)
		}
		dir = parentDir(dir)
	}
	return nil
}
