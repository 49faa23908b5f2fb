package node

import (
	"testing"
)

// Content a batch placed is copied from where it was placed for a later
// op of the batch. If an op in between moved it aside or replaced it,
// the later op gets the content elsewhere instead of waiting for the next
// pass (and holding back every later op of its origin).
func TestBatchContentMovedAsideIsTakenFromElsewhere(t *testing.T) {
	sc, a, b := newScenario(t)
	c := sc.replica(2, simDBDir(t))
	sc.put(a, "p", "same") // a writes p
	sc.put(b, "p", "diff") // b writes p, concurrently, and wins (higher device)
	sc.put(a, "q", "same") // a writes q with p's content
	sc.receive(a, c)
	sc.receive(b, c)
	// One batch on c: a's p is placed, moved aside for b's p, and q is
	// to be copied from where a's p was placed.
	sc.must(ignoreWaiting(c.node.applyPending(sc.ctx)))
	if ok, err := c.applied(sc.ctx); err != nil || !ok {
		t.Fatalf("ops left pending after one pass (%v): %s", err, c.listing())
	}
	if !c.holds("q", "same") || !c.holds("p", "diff") {
		t.Fatalf("folder %s", c.listing())
	}
}
