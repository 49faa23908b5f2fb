package state

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/drive-node/drive-node/content"
)

// EachHead names every record's op and heads, tombstones included, and
// stops at the first error of its callback.
func TestEachHead(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	files := []File{
		{Path: "a", Hash: content.Sum([]byte("a")), Origin: dev(1), Seq: 3, Heads: []OpID{{dev(1), 3}}},
		{Path: "b", Hash: content.Sum([]byte("b")), Origin: dev(2), Seq: 7, Heads: []OpID{{dev(2), 7}, {dev(1), 5}}},
		{Path: "gone", Deleted: true, Origin: dev(1), Seq: 9},
	}
	if err := db.Apply(ctx, Batch{Files: files}); err != nil {
		t.Fatal(err)
	}
	var got []OpID
	if err := db.EachHead(ctx, func(id OpID) error { got = append(got, id); return nil }); err != nil {
		t.Fatal(err)
	}
	for _, want := range []OpID{{dev(1), 3}, {dev(2), 7}, {dev(1), 5}, {dev(1), 9}} {
		if !slices.Contains(got, want) {
			t.Fatalf("EachHead named %v, not %s#%d", got, want.Origin.Short(), want.Seq)
		}
	}
	if slices.Contains(got, OpID{dev(2), 5}) {
		t.Fatalf("EachHead named an op no record names: %v", got)
	}
	stop := errors.New("stop")
	n := 0
	if err := db.EachHead(ctx, func(OpID) error { n++; return stop }); err != stop || n != 1 {
		t.Fatalf("a callback's error: %v after %d calls, want it unchanged after one", err, n)
	}
}
