package core

import (
	"bytes"
	"path"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/drive-node/drive-node/content"
)

// wins reports whether version a=(lamport, device) beats b.
func wins(aLamport uint64, aDev []byte, bLamport uint64, bDev []byte) bool {
	if aLamport != bLamport {
		return aLamport > bLamport
	}
	return bytes.Compare(aDev, bDev) > 0
}

// conflictName returns the name of the conflict copy of p that keeps the
// losing content h made by device loserShort at time t:
// "report.conflict-ABCDEFG-20261124-183000-1a2b3c.txt". Every device
// computes the same name for the same loser; the content's short hash
// keeps two losers from one device in one second apart.
func conflictName(p, loserShort string, t time.Time, h content.Hash) string {
	dir, base := path.Split(p)
	ext := path.Ext(base)
	if ext == base || len(ext) > maxKeptExt { // ".bashrc" has no stem to keep apart from the extension
		ext = ""
	}
	stem := strings.TrimSuffix(base, ext)
	tag := ".conflict-" + loserShort + "-" + t.UTC().Format("20060102-150405") + "-" + h.String()[:6]
	// A copy's name must fit where the original's did: the stem is cut,
	// at a character boundary, so that the name stays within nameMax.
	stem = cutToBytes(stem, nameMax-len(tag)-len(ext))
	return dir + stem + tag + ext
}

// CopyHash returns the short content hash in the name of a conflict copy
// (conflictName), and whether p is named as one.
func CopyHash(p string) (string, bool) {
	base := path.Base(p)
	i := strings.LastIndex(base, ".conflict-")
	if i < 0 {
		return "", false
	}
	// The device, the date, the time, then the hash and the extension.
	fields := strings.SplitN(base[i+len(".conflict-"):], "-", 4)
	if len(fields) < 4 || len(fields[3]) < 6 {
		return "", false
	}
	return fields[3][:6], true
}

// nameMax is the longest file name, in bytes, that the file systems the
// folder lives on hold (ext4, APFS, exFAT's 255 UTF-16 units are more).
const nameMax = 255

// maxKeptExt is the longest extension a conflict copy keeps at its end;
// a longer one is cut with the stem.
const maxKeptExt = 32

// cutToBytes returns the longest prefix of s of at most n bytes that
// ends at a character boundary.
func cutToBytes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	if n <= 0 {
		return ""
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
