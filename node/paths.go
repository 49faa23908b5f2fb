package node

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"unicode/utf8"
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
// state or temporary files. Symlinks are handled where files are opened
// (os.Root refuses to follow one out of the folder).
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
	case len(p) >= 2 && p[1] == ':':
		return bad("has a drive letter")
	}
	for _, c := range strings.Split(p, "/") {
		switch {
		case c == "" || c == ".":
			return bad("empty or '.' component")
		case c == "..":
			return bad("'..' component")
		case len(c) > maxComponentLen:
			return bad(fmt.Sprintf("component longer than %d bytes", maxComponentLen))
		case c == StateDirName || c == MarkerName || strings.HasPrefix(c, TempPrefix):
			return bad("names drive-node's own files")
		}
	}
	return nil
}

// throughSymlink refuses a path whose existing parent directories include
// a symlink: following it could lead out of the folder. (os.Root refuses
// such writes as well; this turns them into a clear refusal instead of a
// retry.)
func (n *Node) throughSymlink(p string) error {
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
