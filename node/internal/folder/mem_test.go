package folder

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"syscall"
	"testing"
	"time"
)

var _ Folder = (*Mem)(nil)

func read(t *testing.T, m *Mem, name string) (string, error) {
	t.Helper()
	f, err := m.Open(name)
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	return string(b), err
}

func TestMemBehavesLikeAFileSystem(t *testing.T) {
	m := NewMem(time.Unix(1000, 0))
	if err := m.MkdirAll("a/b", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := m.WriteFile("a/b/f", []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := read(t, m, "a/b/f"); err != nil || got != "hello" {
		t.Fatalf("read = %q, %v", got, err)
	}
	st, err := m.Lstat("a/b/f")
	if err != nil || st.Size() != 5 || st.IsDir() || st.Mode().Perm() != 0o644 {
		t.Fatalf("lstat = %v, %v", st, err)
	}
	if err := m.Remove("a/b"); !errors.Is(err, syscall.ENOTEMPTY) {
		t.Errorf("removing a directory with entries: %v, want ENOTEMPTY", err)
	}
	if err := m.Rename("a/b/f", "a/g"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Lstat("a/b/f"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("renamed source still there: %v", err)
	}
	if _, err := m.Lstat("a/g/x"); !errors.Is(err, syscall.ENOTDIR) {
		t.Errorf("a path under a file: %v, want ENOTDIR", err)
	}
	if err := m.MkdirAll("a/g/x", 0o755); !errors.Is(err, syscall.ENOTDIR) {
		t.Errorf("mkdir under a file: %v, want ENOTDIR", err)
	}
	if err := m.Rename("a/g", "a/b"); !errors.Is(err, syscall.EISDIR) {
		t.Errorf("a file renamed over a directory: %v, want EISDIR", err)
	}
	d, err := m.Open("a")
	if err != nil {
		t.Fatal(err)
	}
	names, err := d.Readdirnames(-1)
	if err != nil || len(names) != 2 || names[0] != "b" || names[1] != "g" {
		t.Errorf("entries of a = %v, %v", names, err)
	}
	before, _ := m.Lstat("a/g")
	m.WriteFile("a/g", []byte("world"), 0o644)
	after, _ := m.Lstat("a/g")
	if !after.ModTime().After(before.ModTime()) {
		t.Error("a write did not advance the mtime: the engine could not tell the edit")
	}
}

func TestMemCrashKeepsOnlyWhatWasSynced(t *testing.T) {
	m := NewMem(time.Unix(1000, 0))
	// synced data, synced name: kept.
	f, _ := m.OpenFile("kept", os.O_WRONLY|os.O_CREATE, 0o644)
	f.Write([]byte("data"))
	f.Sync()
	// data not synced, name synced: an empty file.
	m.WriteFile("torn", []byte("data"), 0o644)
	m.SyncDir("")
	// name never synced: gone.
	g, _ := m.OpenFile("lost", os.O_WRONLY|os.O_CREATE, 0o644)
	g.Write([]byte("data"))
	g.Sync()
	// a rename whose directory was not synced: undone.
	m.Rename("kept", "moved")

	m.Restart()
	if got, err := read(t, m, "kept"); err != nil || got != "data" {
		t.Errorf("kept = %q, %v; want the synced data under the synced name", got, err)
	}
	if _, err := m.Lstat("moved"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("an unsynced rename survived the crash: %v", err)
	}
	if got, err := read(t, m, "torn"); err != nil || got != "" {
		t.Errorf("torn = %q, %v; want an empty file", got, err)
	}
	if _, err := m.Lstat("lost"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a file whose name was never synced survived: %v", err)
	}
	// SyncFS makes everything durable.
	m.WriteFile("all", []byte("x"), 0o644)
	m.Rename("kept", "moved")
	m.SyncFS()
	m.Restart()
	if got, _ := read(t, m, "all"); got != "x" {
		t.Errorf("after SyncFS: all = %q", got)
	}
	if got, _ := read(t, m, "moved"); got != "data" {
		t.Errorf("after SyncFS: moved = %q", got)
	}
}

func TestMemFailsAndCrashesOnDemand(t *testing.T) {
	m := NewMem(time.Unix(1000, 0))
	injected := errors.New("injected")
	m.FailAt(2, injected)
	if err := m.MkdirAll("d", 0o755); err != nil {
		t.Fatalf("first change: %v", err)
	}
	if err := m.Rename("d", "e"); !errors.Is(err, injected) {
		t.Fatalf("second change = %v, want the injected error", err)
	}
	if err := m.Rename("d", "e"); err != nil {
		t.Fatalf("a fault fails once: %v", err)
	}
	m.SyncDir("")
	m.CrashAt(2)
	if err := m.WriteFile("f", []byte("x"), 0o644); err != nil { // create (1), write (2) fails
		if !errors.Is(err, ErrCrashed) {
			t.Fatalf("write = %v, want ErrCrashed", err)
		}
	} else {
		t.Fatal("the change at the crash succeeded")
	}
	if _, err := m.Lstat("e"); !errors.Is(err, ErrCrashed) || !m.Crashed() {
		t.Fatalf("a read after the crash = %v, want ErrCrashed", err)
	}
	m.Restart()
	if _, err := m.Lstat("e"); err != nil {
		t.Errorf("synced directory lost: %v", err)
	}
	if _, err := m.Lstat("f"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a file created just before the crash survived: %v", err)
	}
}
