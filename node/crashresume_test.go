package node

import (
	"context"
	"syscall"
	"testing"
)

// stopAfterEffects applies what r received, stopping before the batch is
// recorded: the directory sync that comes after the effects (change
// syncAt of the apply) fails. Then the machine stops with every change
// on disk, as a file system that flushed on its own leaves it, and a
// node opens over what is left and scans the folder.
func (sc *scenario) stopAfterEffects(r *replica, syncAt int) {
	sc.t.Helper()
	r.folder.FailAt(syncAt, syscall.EIO)
	r.node.applyPending(sc.ctx) // fails: nothing is recorded
	r.folder.ClearFaults()
	sc.must(r.folder.SyncFS())
	r.folder.Restart()
	sc.must(r.start(sc.ctx))
	sc.must(r.scan(sc.ctx))
}

// newScenario makes a scenario of two replicas, connected to each other.
func newScenario(t *testing.T) (*scenario, *replica, *replica) {
	sc := &scenario{t: t, ctx: context.Background(), clock: newSimClock()}
	dir := simDBDir(t)
	return sc, sc.replica(0, dir), sc.replica(1, dir)
}

// converged fails the test unless a and b hold the same folder and the
// same records, with everything applied.
func (sc *scenario) converged(a, b *replica) {
	sc.t.Helper()
	for _, r := range []*replica{a, b} {
		if ok, err := r.applied(sc.ctx); err != nil || !ok {
			sc.t.Fatalf("replica %s did not apply everything it received (%v)", r.id.Short(), err)
		}
	}
	ra, err := a.describeRecords(sc.ctx)
	sc.must(err)
	rb, err := b.describeRecords(sc.ctx)
	sc.must(err)
	if ra != rb {
		sc.t.Fatalf("records differ between a (-) and b (+):\n%s", diffLines(ra, rb))
	}
	if a.listing() != b.listing() {
		sc.t.Fatalf("folders differ:\n%s\n%s", a.listing(), b.listing())
	}
}

// A delete found carried out after a crash is recorded with the heads it
// joins: a deletion concurrent with it stays a head, as on the devices
// that applied it without a crash, so the records agree.
func TestOpResumedAfterACrashKeepsConcurrentHeads(t *testing.T) {
	sc, a, b := newScenario(t)
	sc.put(a, "f", "v1")
	sc.exchange(a, b)
	sc.put(a, "f", "v2") // a edits
	sc.del(b, "f")       // b deletes, concurrently
	sc.send(a, b)        // on b the edit beats the delete: f is back
	sc.del(a, "f")       // a deletes after its edit, not knowing b's delete
	sc.receive(a, b)
	sc.stopAfterEffects(b, 2) // change 1 removes f, change 2 syncs its directory
	sc.exchange(a, b)
	sc.converged(a, b)
}

// A directory found after a crash where a received mkdir puts one is
// taken as that op's work, not as a local change; the op then does not
// wait for ever for the file it would move aside to be recorded as gone.
func TestDirectoryFoundAfterACrashDoesNotBlockTheMkdir(t *testing.T) {
	sc, a, b := newScenario(t)
	sc.put(b, "d", "file") // on b, d is a file
	sc.must(a.folder.MkdirAll("d", 0o755))
	sc.must(a.report(sc.ctx, "d")) // on a, concurrently, a directory
	sc.receive(a, b)
	// b's user turns the file into a directory, and the machine stops
	// before the watcher reports it (the change is on disk).
	sc.must(b.folder.Remove("d"))
	sc.must(b.folder.MkdirAll("d", 0o755))
	sc.must(b.folder.SyncFS())
	b.folder.Restart()
	sc.must(b.start(sc.ctx))
	sc.must(b.scan(sc.ctx))
	sc.exchange(a, b)
	sc.converged(a, b)
}

// A file a crash took away, while a rename of it was pending, is
// recorded as gone: the rename is then decided again instead of trying
// for ever to move a file that is not there.
func TestFileLostInACrashDoesNotBlockItsRename(t *testing.T) {
	sc, a, b := newScenario(t)
	sc.put(b, "f", "v1") // b's user writes f and never syncs it
	sc.send(b, a)
	sc.put(b, "f", "v2")     // b edits f
	sc.move(a, "f", "g")     // a renames f, concurrently
	sc.receive(a, b)         // on b the rename would carry the edit to g
	b.folder.Restart()       // b stops: f was never durable
	sc.must(b.start(sc.ctx)) // the rename waits: f is not there
	sc.must(b.scan(sc.ctx))
	sc.exchange(a, b)
	sc.converged(a, b)
}

// A file a received op placed keeps the op's mode and mtime through a
// crash once the op is recorded. They are set on the temp file after its
// data was flushed, so the flush that makes the rename durable must
// cover them too: else the next scan finds the temp file's mode 0600 on
// a recorded file and sends it to every device as the user's chmod.
func TestPlacedFileKeepsItsModeThroughACrash(t *testing.T) {
	sc, a, b := newScenario(t)
	sc.put(a, "f", "placed by a peer")
	sc.send(a, b)
	rec, ok, err := b.db.File(sc.ctx, "f")
	sc.must(err)
	if !ok {
		t.Fatal("the received file is not recorded")
	}
	b.folder.Restart() // the machine stops: what was not made durable is gone
	st, err := b.folder.Lstat("f")
	sc.must(err)
	if st.Mode().Perm() != fileMode(rec.Mode) || st.ModTime().UnixNano() != rec.MTime {
		t.Fatalf("after a crash f has mode %v and mtime %d; its record says %v and %d",
			st.Mode().Perm(), st.ModTime().UnixNano(), fileMode(rec.Mode), rec.MTime)
	}
}
