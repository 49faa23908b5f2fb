package node

import (
	"os"
	"testing"
)

// TestSyncDirAfterRename: flushing the folder and a directory in it after
// a rename succeeds on every platform (on Windows a directory handle
// cannot be flushed, so SyncDir must not try).
func TestSyncDirAfterRename(t *testing.T) {
	root, err := os.OpenRoot(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	if err := root.Mkdir("sub", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := root.WriteFile("sub/tmp", []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := root.Rename("sub/tmp", "sub/file"); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{"", "sub"} {
		if err := (RootFolder{Root: root}).SyncDir(dir); err != nil {
			t.Errorf("SyncDir(%q): %v", dir, err)
		}
	}
}
