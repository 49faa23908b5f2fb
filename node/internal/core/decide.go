package core

import (
	"bytes"
	"path"
	"strings"
	"time"

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
	if ext == base { // ".bashrc" has no stem to keep apart from the extension
		ext = ""
	}
	stem := strings.TrimSuffix(base, ext)
	return dir + stem + ".conflict-" + loserShort + "-" + t.UTC().Format("20060102-150405") + "-" + h.String()[:6] + ext
}
