package node

import (
	"errors"
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
		{"C:/x", false},
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
