package node

import (
	"os"
	"path/filepath"
	"testing"
)

// A directory the folder opens is listed as os.Root lists it: the looks
// at its entries go through the directory opened, not through whatever
// its path leads to later (here a symlink out of the folder, swapped in
// after the open).
func TestOpenedDirectoryListsWhatItOpened(t *testing.T) {
	top := t.TempDir()
	dir := filepath.Join(top, "folder")
	write(t, filepath.Join(dir, "a", "entry"), "inside")
	folder, err := OpenRootFolder(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer folder.Close()
	d, err := folder.OpenFile("a", os.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	entries, err := d.(*os.File).ReadDir(-1)
	if err != nil || len(entries) != 1 {
		t.Fatalf("listed %v, %v", entries, err)
	}
	if err := os.Rename(filepath.Join(dir, "a"), filepath.Join(dir, "a.old")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(top, filepath.Join(dir, "a")); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(top, "entry"), "outside the folder")
	info, err := entries[0].Info()
	if err != nil || info.Size() != int64(len("inside")) {
		t.Fatalf("the entry looks like %v, %v: not what the directory opened holds", info, err)
	}
}
