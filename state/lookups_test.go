package state

import (
	"context"
	"fmt"
	"reflect"
	"testing"

	"github.com/drive-node/drive-node/content"
)

// TestFilesAtAsFileDoes asks for more paths than one group holds, some
// recorded, some tombstones, some never recorded, some twice, and
// compares every answer with File's.
func TestFilesAtAsFileDoes(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	var b Batch
	for i := 1; i <= 150; i++ {
		f := benchFile(i)
		if i%7 == 0 {
			f.Deleted, f.DeletedAt, f.Hash = true, int64(i), content.Hash{}
		}
		b.Files = append(b.Files, f)
	}
	if err := db.Apply(ctx, b); err != nil {
		t.Fatal(err)
	}
	var paths []string
	for i := 1; i <= 200; i++ {
		paths = append(paths, benchFile(i).Path) // 151 to 200 are not recorded
		if i%13 == 0 {
			paths = append(paths, benchFile(i).Path)
		}
	}
	// Some answers are kept from File before, the rest read.
	for _, p := range paths[:20] {
		if _, _, err := db.File(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	got, err := db.FilesAt(ctx, paths)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 150 {
		t.Errorf("FilesAt found %d records, want 150", len(got))
	}
	fresh := openTest(t, db.path) // File of another handle: nothing kept from FilesAt
	for _, p := range paths {
		want, ok, err := fresh.File(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		g, found := got[p]
		if found != ok || !reflect.DeepEqual(g, want) {
			t.Errorf("%s: FilesAt says %+v (%v), File %+v (%v)", p, g, found, want, ok)
		}
	}
}

// TestContentFilesOfAsContentFilesDoes asks for more contents than one
// group holds: some held by two live files, some only by a tombstone,
// some by nobody, the zero hash, one twice.
func TestContentFilesOfAsContentFilesDoes(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	var b Batch
	var hs []content.Hash
	for i := 1; i <= 100; i++ {
		f := benchFile(i)
		f.Hash = content.Sum(fmt.Appendf(nil, "content %d", i/2)) // two files each
		if i%9 == 0 {
			f.Deleted, f.DeletedAt = true, int64(i)
		}
		b.Files = append(b.Files, f)
		hs = append(hs, f.Hash)
	}
	if err := db.Apply(ctx, b); err != nil {
		t.Fatal(err)
	}
	hs = append(hs, content.Hash{}, content.Sum([]byte("nobody's")), hs[3])
	got, err := db.ContentFilesOf(ctx, hs)
	if err != nil {
		t.Fatal(err)
	}
	two := 0
	for _, h := range hs {
		want, err := db.ContentFiles(ctx, h)
		if err != nil {
			t.Fatal(err)
		}
		if len(want) == 2 {
			two++
		}
		if g := got[h]; len(g) != len(want) || len(want) > 0 && !reflect.DeepEqual(g, want) {
			t.Errorf("%s: ContentFilesOf says %+v, ContentFiles %+v", h.Short(), g, want)
		}
	}
	if two == 0 {
		t.Fatal("no content is held by two files: the test asks nothing of the order")
	}
}

// TestFilesAtKeepsFewAtHand: what a small FilesAt reads is kept, and a
// read of more paths than half of what is kept at hand keeps none of
// them, so it does not push out what was kept before.
func TestFilesAtKeepsFewAtHand(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	if err := db.Apply(ctx, Batch{Files: []File{benchFile(1), benchFile(2)}}); err != nil {
		t.Fatal(err)
	}
	kept := func(p string) bool { _, _, hit, _ := db.cache.get(p); return hit }
	if _, err := db.FilesAt(ctx, []string{benchFile(1).Path}); err != nil {
		t.Fatal(err)
	}
	if !kept(benchFile(1).Path) {
		t.Fatal("a small FilesAt kept nothing")
	}
	var many []string
	for i := range maxCachedFiles {
		many = append(many, fmt.Sprintf("moved-in/%d", i))
	}
	many = append(many, benchFile(2).Path)
	got, err := db.FilesAt(ctx, many)
	if err != nil || len(got) != 1 {
		t.Fatalf("FilesAt of %d paths found %d, %v", len(many), len(got), err)
	}
	if !kept(benchFile(1).Path) || kept(many[0]) || kept(benchFile(2).Path) {
		t.Fatal("a large FilesAt changed what is kept at hand")
	}
}
