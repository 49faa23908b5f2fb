package core

import (
	"path"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/drive-node/drive-node/content"
)

func TestConflictNamesFitTheFileSystem(t *testing.T) {
	at := time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC)
	h := content.Sum([]byte("x"))
	for _, c := range []struct {
		name, p, ext string
	}{
		{"short", "dir/report.txt", ".txt"},
		{"240-byte stem", "dir/" + strings.Repeat("a", 236) + ".txt", ".txt"},
		{"multi-byte characters", strings.Repeat("é", 125) + ".md", ".md"},
		{"long extension", "x." + strings.Repeat("e", 250), ""},
		{"no extension", strings.Repeat("b", 255), ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := conflictName(c.p, "ABCDEFG", at, h)
			base := path.Base(got)
			if len(base) > nameMax {
				t.Errorf("%d bytes: %q", len(base), base)
			}
			if !utf8.ValidString(got) || !strings.Contains(base, ".conflict-ABCDEFG-20261202-080000-") || !strings.HasSuffix(base, c.ext) {
				t.Errorf("malformed copy name %q", got)
			}
			if path.Dir(got) != path.Dir(c.p) {
				t.Errorf("copy %q is not beside %q", got, c.p)
			}
			if again := conflictName(c.p, "ABCDEFG", at, h); again != got {
				t.Errorf("two devices name the copy differently: %q and %q", got, again)
			}
			if short, ok := CopyHash(got); !ok || short != h.String()[:6] {
				t.Errorf("CopyHash(%q) = %q, %v; want %q", got, short, ok, h.String()[:6])
			}
			if short, ok := CopyHash(c.p); ok {
				t.Errorf("CopyHash(%q), not a copy, = %q", c.p, short)
			}
		})
	}
}
