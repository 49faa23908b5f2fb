package state

import (
	"context"
	"testing"

	"github.com/drive-node/drive-node/content"
	"github.com/drive-node/drive-node/vclock"
)

// TestFileCacheFollowsWrites reads a path before and after writes to it:
// a cached answer, absent or present, never outlives a write, and what a
// caller does to a returned record does not reach the cache.
func TestFileCacheFollowsWrites(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	if _, ok, err := db.File(ctx, "a.txt"); ok || err != nil {
		t.Fatalf("before any write: ok %v err %v", ok, err)
	}
	v1 := File{Path: "a.txt", Hash: content.Sum([]byte("1")), Size: 1, Version: vclock.Vector{{Device: dev(1), Counter: 1}}}
	if err := db.Apply(ctx, Batch{Files: []File{v1}}); err != nil {
		t.Fatal(err)
	}
	got, ok, err := db.File(ctx, "a.txt")
	if !ok || err != nil || got.Hash != v1.Hash {
		t.Fatalf("after the write: %+v ok %v err %v", got, ok, err)
	}
	got.Version[0].Counter = 99 // the caller's copy
	again, _, _ := db.File(ctx, "a.txt")
	if again.Version[0].Counter != 1 {
		t.Fatalf("a caller's change reached the cache: %v", again.Version)
	}
	v2 := v1
	v2.Hash, v2.Size = content.Sum([]byte("22")), 2
	if err := db.Apply(ctx, Batch{Files: []File{v2}}); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := db.File(ctx, "a.txt"); got.Hash != v2.Hash {
		t.Fatalf("after the second write: %v, want %v", got.Hash.Short(), v2.Hash.Short())
	}
	if err := db.Reset(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := db.File(ctx, "a.txt"); ok {
		t.Fatal("after a reset the record is still there")
	}
}

// TestFileCacheForgetsOnlyWhatAnApplyWrote: an Apply forgets the records
// at the paths it stores and keeps the others; a write that does not say
// what it touches forgets every one.
func TestFileCacheForgetsOnlyWhatAnApplyWrote(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	for _, p := range []string{"a.txt", "b.txt"} {
		if _, _, err := db.File(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	cached := func(p string) bool {
		db.cache.mu.Lock()
		defer db.cache.mu.Unlock()
		_, ok := db.cache.m[p]
		return ok
	}
	v1 := File{Path: "a.txt", Hash: content.Sum([]byte("1")), Size: 1, Version: vclock.Vector{{Device: dev(1), Counter: 1}}}
	if err := db.Apply(ctx, Batch{Files: []File{v1}}); err != nil {
		t.Fatal(err)
	}
	if cached("a.txt") || !cached("b.txt") {
		t.Fatalf("after storing a.txt: a.txt cached %v (want false), b.txt cached %v (want true)", cached("a.txt"), cached("b.txt"))
	}
	if got, ok, _ := db.File(ctx, "a.txt"); !ok || got.Hash != v1.Hash {
		t.Fatalf("a.txt after the write: %+v, %v", got, ok)
	}
	if err := db.Pair(ctx, dev(2), "peer"); err != nil {
		t.Fatal(err)
	}
	if cached("a.txt") || cached("b.txt") {
		t.Fatal("a write that does not say what it touches left records cached")
	}
}
