package node

import (
	"testing"
)

// chmod +x on one device reaches the others: the content is unchanged,
// so nothing is fetched or placed, but the mode is applied.
func TestAModeOnlyChangeReachesPeers(t *testing.T) {
	sc, a, b := newScenario(t)
	sc.put(a, "run.sh", "#!/bin/sh\n")
	sc.exchange(a, b)
	sc.must(a.folder.Chmod("run.sh", 0o755))
	sc.must(a.report(sc.ctx, "run.sh"))
	sc.exchange(a, b)
	st, err := b.folder.Stat("run.sh")
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o755 {
		t.Fatalf("b has run.sh at %v, want 0755", st.Mode().Perm())
	}
	// b does not take its own chmod for a local change to send back.
	before := b.vector()[b.id]
	sc.must(b.scan(sc.ctx))
	if after := b.vector()[b.id]; after != before {
		t.Fatalf("b recorded %d local changes after applying the mode", after-before)
	}
}

// A received chmod is made durable with its chunk: after a crash right
// after it is recorded, the disk holds the mode the record says.
func TestAReceivedModeSurvivesACrash(t *testing.T) {
	sc, a, b := newScenario(t)
	sc.put(a, "run.sh", "#!/bin/sh\n")
	sc.exchange(a, b)
	sc.must(b.folder.SyncFS()) // the placed file is on disk for good
	sc.must(a.folder.Chmod("run.sh", 0o755))
	sc.must(a.report(sc.ctx, "run.sh"))
	sc.send(a, b)
	rec, ok, err := b.db.File(sc.ctx, "run.sh")
	sc.must(err)
	if !ok || fileMode(rec.Mode) != 0o755 {
		t.Fatalf("b's record of run.sh: %+v, %v; want mode 0755", rec, ok)
	}
	b.folder.Restart() // the machine stops: what was not made durable is gone
	st, err := b.folder.Lstat("run.sh")
	sc.must(err)
	if st.Mode().Perm() != 0o755 {
		t.Fatalf("after a crash b has run.sh at %v; its record says 0755", st.Mode().Perm())
	}
}
