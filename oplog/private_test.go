//go:build unix

package oplog

import (
	"context"
	"io/fs"
	"path/filepath"
	"syscall"
	"testing"
)

// TestLogFilesArePrivate: under the usual umask (022) pebble would create
// its files 0644; the log names every synced path, so no file or
// directory of it may be readable by other users.
func TestLogFilesArePrivate(t *testing.T) {
	defer syscall.Umask(syscall.Umask(0o022))
	dir := filepath.Join(t.TempDir(), "log")
	l := openLog(t, dir, 1)
	if _, err := l.Append(context.Background(), Op{Kind: KindWrite, Path: "secret plans.txt"}); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openLog(t, dir, 1) // a reopen writes a new manifest and WAL
	defer l.Close()
	checkPrivate(t, dir)
}

// checkPrivate fails t for every file or directory under dir that its
// group or others can use.
func checkPrivate(t *testing.T, dir string) {
	t.Helper()
	n := 0
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		info, _ := d.Info()
		if info.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s has mode %v", p, info.Mode())
		}
		n++
		return nil
	})
	if n < 4 {
		t.Fatalf("only %d entries checked", n)
	}
}
