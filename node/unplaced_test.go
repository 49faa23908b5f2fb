package node

import (
	"strings"
	"syscall"
	"testing"

	"github.com/drive-node/drive-node/content"
)

// A name this device's file system refuses (exFAT refuses "?") must not
// stop the changes its origin made after it: after unplacedAfter passes
// the op is skipped here, listed for status, and nothing changes on the
// device that has the file.
func TestAnOpThisDeviceCannotPlaceDoesNotStopItsOrigin(t *testing.T) {
	sc, a, b := newScenario(t)
	b.folder.RefuseNames(func(base string) error {
		if strings.Contains(base, "?") {
			return syscall.EINVAL
		}
		return nil
	})
	sc.put(a, "why?.txt", "colon")
	sc.put(a, "c.txt", "after")
	sc.receive(a, b)
	for pass := 1; pass <= unplacedAfter; pass++ {
		if _, ok := b.files()["c.txt"]; ok {
			t.Fatalf("c.txt placed before pass %d: the failing op did not hold its origin back", pass)
		}
		b.node.applyPending(sc.ctx)
	}
	files := b.files()
	if e, ok := files["c.txt"]; !ok || e.hash != content.Sum([]byte("after")) {
		t.Fatalf("c.txt not placed after the op before it was given up: %s", b.listing())
	}
	if _, ok := files["why?.txt"]; ok {
		t.Fatalf("why?.txt is on a device that refuses the name: %s", b.listing())
	}
	if done, err := b.applied(sc.ctx); err != nil || !done {
		t.Fatalf("ops still pending on b (%v): the given-up op holds the log back", err)
	}
	list, err := readUnplaced(sc.ctx, b.db)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].Path != "why?.txt" || list[0].Seq != 1 || !strings.Contains(list[0].Reason, "invalid argument") {
		t.Fatalf("status lists %+v, want why?.txt with its reason", list)
	}
	if _, ok, err := b.db.File(sc.ctx, "why?.txt"); err != nil || ok {
		t.Fatalf("b recorded a path it did not place (%v): its scan would delete it elsewhere", err)
	}
	// Nothing b does takes the file from a.
	sc.exchange(a, b)
	if e, ok := a.files()["why?.txt"]; !ok || e.hash != content.Sum([]byte("colon")) {
		t.Fatalf("a lost why?.txt after syncing with b: %s", a.listing())
	}
}

// A failure that may go away (here an I/O error) never gives the op up.
func TestAnOpThatMaySucceedLaterIsNeverGivenUp(t *testing.T) {
	sc, a, b := newScenario(t)
	failing := true
	b.folder.RefuseNames(func(base string) error {
		if failing && base == "x.txt" {
			return syscall.EIO
		}
		return nil
	})
	sc.put(a, "x.txt", "data")
	sc.receive(a, b)
	for pass := 0; pass < 2*unplacedAfter; pass++ {
		b.node.applyPending(sc.ctx)
	}
	if list, _ := readUnplaced(sc.ctx, b.db); len(list) != 0 {
		t.Fatalf("an I/O error gave the op up: %+v", list)
	}
	failing = false
	sc.must(b.node.applyPending(sc.ctx))
	if _, ok := b.files()["x.txt"]; !ok {
		t.Fatalf("x.txt not placed once the disk works: %s", b.listing())
	}
}
