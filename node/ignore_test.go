package node

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drive-node/drive-node/watcher"
)

// recorded reports whether n has a live record of p.
func recorded(t *testing.T, n *runningNode, p string) bool {
	t.Helper()
	f, ok, err := n.db.File(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	return ok && !f.Deleted
}

// fileIs returns "" when the file at path holds want ("" for no file), or
// what it holds.
func fileIs(path, want string) string {
	b, err := os.ReadFile(path)
	switch {
	case want == "" && os.IsNotExist(err):
		return ""
	case want == "":
		return path + " is there"
	case err != nil:
		return err.Error()
	case string(b) != want:
		return path + " holds " + string(b)
	}
	return ""
}

// setAside returns how many ops n set aside for why.
func setAside(t *testing.T, n *runningNode, why string) int {
	t.Helper()
	c, err := n.db.SetAsideCounts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return c[why]
}

// TestIgnoreRulesAcrossTwoNodes: junk and what .driveignore names are
// never recorded or sent; a rule that appears after a file synced deletes
// it nowhere and stops its changes; a device-only rule sets a peer's ops
// aside there, and removing it carries them out; removing a folder rule
// sends what changed meanwhile.
func TestIgnoreRulesAcrossTwoNodes(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	pairFolders(t, a, b)
	addrA, addrB := freeUDPPort(t), freeUDPPort(t)
	write(t, filepath.Join(a, IgnoreFileName), "build/\n*.log\n")
	write(t, filepath.Join(a, "keep.txt"), "keep")
	write(t, filepath.Join(a, "build/out.o"), "object")
	write(t, filepath.Join(a, "x.log"), "log")
	write(t, filepath.Join(a, ".DS_Store"), "finder")
	write(t, filepath.Join(a, "sub/Thumbs.db"), "thumbs")
	write(t, filepath.Join(a, "data/cache.bin"), "cache 1")
	fast := func(n *Node) { n.ignorePoll = 50 * time.Millisecond }
	ra := startNodeWith(t, a, addrA, fast, addrB)
	rb := startNodeWith(t, b, addrB, fast, addrA)
	waitFor(t, "the files not ignored reach B", func() string {
		return fileIs(filepath.Join(b, "keep.txt"), "keep") + fileIs(filepath.Join(b, "data/cache.bin"), "cache 1") +
			fileIs(filepath.Join(b, IgnoreFileName), "build/\n*.log\n")
	})
	for _, p := range []string{"build", "build/out.o", "x.log", ".DS_Store", "sub/Thumbs.db"} {
		if recorded(t, ra, p) {
			t.Errorf("A recorded the ignored path %s", p)
		}
		if _, err := os.Lstat(filepath.Join(b, p)); err == nil {
			t.Errorf("the ignored path %s reached B", p)
		}
	}

	// A rule on A for data/: nothing is deleted, and A's edit there stays
	// on A.
	write(t, filepath.Join(a, IgnoreFileName), "build/\n*.log\ndata/\n")
	waitFor(t, "the new rule reaches B", func() string {
		return fileIs(filepath.Join(b, IgnoreFileName), "build/\n*.log\ndata/\n")
	})
	waitFor(t, "A puts the rule in force", func() string {
		if !ra.ignored("data/cache.bin", false) {
			return "not yet"
		}
		return ""
	})
	write(t, filepath.Join(a, "data/cache.bin"), "cache 2")
	write(t, filepath.Join(a, "after.txt"), "after")
	waitFor(t, "a later change reaches B", func() string { return fileIs(filepath.Join(b, "after.txt"), "after") })
	if msg := fileIs(filepath.Join(b, "data/cache.bin"), "cache 1"); msg != "" {
		t.Fatalf("B's data/cache.bin changed under the rule: %s", msg)
	}
	if !recorded(t, ra, "data/cache.bin") || !recorded(t, rb, "data/cache.bin") {
		t.Fatal("a record of data/cache.bin was dropped when the rule appeared")
	}

	// A device-only rule on B: A's new video is set aside there.
	write(t, filepath.Join(b, StateDirName, DeviceIgnoreName), "videos/\n")
	waitFor(t, "B puts its own rule in force", func() string {
		if !rb.ignored("videos/v1.mp4", false) {
			return "not yet"
		}
		return ""
	})
	write(t, filepath.Join(a, "videos/v1.mp4"), "a video")
	waitFor(t, "B sets the video aside", func() string {
		if n := setAside(t, rb, whyIgnored); n < 2 { // the directory and the file
			return fmt.Sprintf("%d set aside", n)
		}
		return ""
	})
	write(t, filepath.Join(a, "videos/v1.mp4"), "a video, cut")
	write(t, filepath.Join(a, "after2.txt"), "after")
	waitFor(t, "a later change reaches B", func() string { return fileIs(filepath.Join(b, "after2.txt"), "after") })
	waitFor(t, "B sets the second version aside", func() string {
		if n := setAside(t, rb, whyIgnored); n < 3 {
			return fmt.Sprintf("%d set aside", n)
		}
		return ""
	})
	if msg := fileIs(filepath.Join(b, "videos/v1.mp4"), ""); msg != "" {
		t.Fatalf("the video reached B under its own rule: %s", msg)
	}
	if err := os.Remove(filepath.Join(b, StateDirName, DeviceIgnoreName)); err != nil {
		t.Fatal(err)
	}
	// The first version, replaced by the second, is not fetched: nothing
	// stays set aside.
	waitFor(t, "the video reaches B once its rule is gone", func() string {
		return fileIs(filepath.Join(b, "videos/v1.mp4"), "a video, cut")
	})
	waitFor(t, "nothing set aside on B", func() string {
		if n := setAside(t, rb, whyIgnored); n != 0 {
			return "still set aside"
		}
		return ""
	})

	// The data/ rule goes: A's edit made under it reaches B.
	write(t, filepath.Join(a, IgnoreFileName), "build/\n*.log\n")
	waitFor(t, "A's edit under the removed rule reaches B", func() string {
		return fileIs(filepath.Join(b, "data/cache.bin"), "cache 2")
	})
	waitFor(t, "both trees alike but for what is ignored", func() string {
		for _, p := range []string{"build", "x.log", ".DS_Store", "sub/Thumbs.db"} {
			os.RemoveAll(filepath.Join(a, p))
		}
		return sameTree(a, b)
	})
}

// TestIgnoreRulesLastInForceWhenUnreadable: a start that cannot read the
// rules file (here, one over the size read) keeps the rules last in force
// instead of syncing what they hide.
func TestIgnoreRulesLastInForceWhenUnreadable(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, IgnoreFileName), "secret/\n")
	r := startNode(t, dir, freeUDPPort(t))
	r.stop(t)
	big := strings.Repeat("# padding\n", maxIgnoreBytes/10+1)
	write(t, filepath.Join(dir, IgnoreFileName), big)
	write(t, filepath.Join(dir, "secret/key.txt"), "do not sync")
	write(t, filepath.Join(dir, "plain.txt"), "sync")
	r = startNode(t, dir, freeUDPPort(t))
	waitFor(t, "plain.txt recorded", func() string {
		if !recorded(t, r, "plain.txt") {
			return "not yet"
		}
		return ""
	})
	if recorded(t, r, "secret/key.txt") {
		t.Fatal("a start with an unreadable rules file recorded what the rules last in force ignore")
	}
	if !strings.Contains(r.logs.String(), "the rules last in force apply") {
		t.Fatalf("the log does not say the rules file could not be read:\n%s", r.logs)
	}
}

// TestStaleGoneObservationRecordsNothing: a watcher whose rules changed
// in the middle of a scan may report a recorded file gone that is on disk
// (the walk skipped its directory under the old rules, the look for what
// is missing ran under the new ones). The node looks again before it
// records, and sends no delete.
func TestStaleGoneObservationRecordsNothing(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	write(t, filepath.Join(dir, "build/out.o"), "object")
	r := startNode(t, dir, freeUDPPort(t))
	waitFor(t, "build/out.o recorded", func() string {
		if !recorded(t, r, "build/out.o") {
			return "not yet"
		}
		return ""
	})
	before := r.ops.Highest(r.ID())
	if err := r.recordObserved(ctx, []watcher.Observation{{Path: "build/out.o"}, {Path: "build"}}); err != nil {
		t.Fatal(err)
	}
	if !recorded(t, r, "build/out.o") {
		t.Fatal("a stale report of a file gone removed its record")
	}
	if after := r.ops.Highest(r.ID()); after != before {
		t.Fatalf("a stale report of a file gone made %d ops", after-before)
	}
}
