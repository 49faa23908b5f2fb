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
