package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestParseWhen(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"2h":                        now.Add(-2 * time.Hour),
		"90m":                       now.Add(-90 * time.Minute),
		"2026-12-01T09:00:00Z":      time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC),
		"2026-12-01T10:00:00+01:00": time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC),
	} {
		got, err := parseWhen(in, now)
		if err != nil || !got.Equal(want) {
			t.Errorf("parseWhen(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "yesterday", "-2h", "2026-12-01"} {
		if _, err := parseWhen(in, now); err == nil {
			t.Errorf("parseWhen(%q) accepted", in)
		}
	}
}

func TestFolderRelative(t *testing.T) {
	folder := t.TempDir()
	os.MkdirAll(filepath.Join(folder, "docs"), 0o755)
	outside := t.TempDir()
	t.Chdir(outside)
	for in, want := range map[string]string{
		"docs/a.txt":                        "docs/a.txt",
		".":                                 ".",
		filepath.Join(folder, "docs/a.txt"): "docs/a.txt",
		folder:                              ".",
	} {
		if got, err := folderRelative(folder, in); err != nil || got != want {
			t.Errorf("from outside: folderRelative(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := folderRelative(folder, filepath.Join(outside, "x")); err == nil {
		t.Error("a path outside the folder was accepted")
	}
	t.Chdir(filepath.Join(folder, "docs"))
	for in, want := range map[string]string{"a.txt": "docs/a.txt", ".": "docs", "..": "."} {
		if got, err := folderRelative(folder, in); err != nil || got != want {
			t.Errorf("from docs: folderRelative(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := folderRelative(folder, "../.."); err == nil {
		t.Error("a path above the folder was accepted")
	}
}
