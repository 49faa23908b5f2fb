package node

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/drive-node/drive-node/content"
	"github.com/drive-node/drive-node/oplog"
)

// rewriteRounds writes every file of a folder of files rounds times
// over, waiting after each round until r has recorded it (so each round
// is an op per file, not merged with the next) and until synced, if set.
func rewriteRounds(t *testing.T, r *runningNode, files, rounds int, synced func() string) {
	t.Helper()
	for round := 0; round < rounds; round++ {
		body := func(i int) string { return fmt.Sprintf("file %d, round %d of %p", i, round, &round) }
		for i := 0; i < files; i++ {
			write(t, filepath.Join(r.folder, fileName(i)), body(i))
		}
		waitFor(t, fmt.Sprintf("round %d recorded", round), func() string {
			for i := 0; i < files; i++ {
				rec, ok, err := r.db.File(context.Background(), fileName(i))
				if err != nil || !ok || rec.Hash != content.Sum([]byte(body(i))) {
					return fmt.Sprintf("%s not recorded (%v)", fileName(i), err)
				}
			}
			return ""
		})
		if synced != nil {
			waitFor(t, fmt.Sprintf("round %d synced", round), synced)
		}
	}
}

func fileName(i int) string { return fmt.Sprintf("d%d/f%03d.txt", i%4, i) }

// A log folded while one device was away and before another was paired:
// both catch up from the ops that were kept, across the gaps, and end
// with the same folder; the folded devices' logs shrink to about the
// folder's size.
func TestFoldedLogCatchesUpReturningAndNewDevices(t *testing.T) {
	ctx := context.Background()
	a, b, c := t.TempDir(), t.TempDir(), t.TempDir()
	pairFolders(t, a, b)
	pairFolders(t, a, c)
	const files = 60
	addrA, addrB, addrC := freeUDPPort(t), freeUDPPort(t), freeUDPPort(t)
	noAutoFold := func(cfg *Config) { cfg.FoldAfter = -1 }
	na := startNodeConfig(t, a, addrA, noAutoFold, nil, addrB)
	nb := startNodeConfig(t, b, addrB, noAutoFold, nil, addrA)
	rewriteRounds(t, na, files, 1, func() string { return sameTree(a, b) })
	nb.stop(t)

	rewriteRounds(t, na, files, 3, nil)
	waitFor(t, "a records its rewrites", func() string {
		applied, err := na.db.Applied(ctx)
		if err != nil {
			return err.Error()
		}
		if got := applied[na.ID()]; got < na.ops.Highest(na.ID()) || na.ops.Highest(na.ID()) < 4*files {
			return fmt.Sprintf("applied %d of %d ops", got, na.ops.Highest(na.ID()))
		}
		return ""
	})
	res, err := na.foldPass(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Of four writes per file, three are superseded; one op per Append
	// call may stay to keep runs proven, and the last op stays.
	if res.Folded < 2*files {
		t.Fatalf("folded %d of %d ops read; want at least %d", res.Folded, res.Read, 2*files)
	}
	t.Logf("a folded %d of the %d ops it read", res.Folded, res.Read)
	if na.ops.Folded(na.ID()) == 0 {
		t.Fatal("a's log does not say it is folded")
	}
	if err := na.ops.(*oplog.Log).Check(ctx); err != nil {
		t.Fatalf("a's folded log: %v", err)
	}

	nb = startNodeConfig(t, b, addrB, noAutoFold, nil, addrA)
	waitFor(t, "the device that was away catches up", func() string { return sameTree(a, b) })
	nc := startNodeConfig(t, c, addrC, noAutoFold, nil, addrA)
	waitFor(t, "a device paired after the fold catches up", func() string { return sameTree(a, c) })
	for name, r := range map[string]*runningNode{"b": nb, "c": nc} {
		if got, want := r.ops.Highest(na.ID()), na.ops.Highest(na.ID()); got != want {
			t.Fatalf("%s holds a's ops up to %d, want %d", name, got, want)
		}
	}
	if nc.ops.Folded(na.ID()) == 0 {
		t.Fatal("c took a's folded ops without noting the gaps")
	}

	// Edits after the fold still flow both ways.
	replace(t, filepath.Join(c, "from-c.txt"), "after the fold")
	waitFor(t, "a change from c", func() string { return sameTree(a, c) })
	waitFor(t, "and on to b", func() string { return sameTree(a, b) })
}
