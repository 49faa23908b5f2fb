package node

import (
	"context"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/drive-node/drive-node/content"
	"github.com/drive-node/drive-node/internal/clock"
)

// scenario drives two real replicas for one hand-written case; a step
// that fails ends the test.
type scenario struct {
	t     *testing.T
	ctx   context.Context
	clock *clock.Fake
	reps  []*replica // every replica made, all connected to each other
}

func (sc *scenario) replica(i int, dbDir string) *replica {
	var self *replica
	others := func() (out []*replica) {
		for _, r := range sc.reps {
			if r != self {
				out = append(out, r)
			}
		}
		return out
	}
	r, err := newReplica(sc.ctx, i, dbDir, sc.clock, others)
	self = r
	sc.reps = append(sc.reps, r)
	if err != nil {
		sc.t.Fatal(err)
	}
	sc.t.Cleanup(r.close)
	return r
}

func (sc *scenario) must(err error) {
	sc.t.Helper()
	if err != nil {
		sc.t.Fatal(err)
	}
}

// receive inserts what from's log holds into to's, without applying it.
func (sc *scenario) receive(from, to *replica) {
	sc.t.Helper()
	for origin := range from.vector() {
		ops, err := from.opsAfter(sc.ctx, origin, 0)
		sc.must(err)
		_, err = to.ops.Insert(sc.ctx, from.id, ops...)
		sc.must(err)
	}
}

// send gives to its everything from's log holds, and applies it.
func (sc *scenario) send(from, to *replica) {
	sc.t.Helper()
	sc.receive(from, to)
	sc.must(ignoreWaiting(to.node.applyPending(sc.ctx)))
}

// exchange brings two replicas' logs together and applies them.
func (sc *scenario) exchange(a, b *replica) {
	sc.t.Helper()
	for i := 0; i < 3; i++ {
		sc.send(a, b)
		sc.send(b, a)
	}
}

func (sc *scenario) put(r *replica, p, data string) {
	sc.t.Helper()
	sc.clock.Advance(time.Second)
	sc.must(r.write(sc.ctx, p, data))
}

func (sc *scenario) del(r *replica, p string) {
	sc.t.Helper()
	sc.must(r.removeTree(sc.ctx, p))
}

func (sc *scenario) move(r *replica, from, to string) {
	sc.t.Helper()
	sc.must(r.move(sc.ctx, from, to))
}

func (r *replica) listing() string {
	var out []string
	for p, e := range r.files() {
		if e.dir {
			out = append(out, p+"/")
			continue
		}
		out = append(out, p)
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

func (r *replica) holds(p, data string) bool {
	e, ok := r.files()[p]
	return ok && e.hash == content.Sum([]byte(data))
}

// TestConcurrentScenarios runs two real nodes through the classic
// concurrent cases, with either replica's ops arriving first.
func TestConcurrentScenarios(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(sc *scenario, a *replica)
		a, b  func(sc *scenario, r *replica)
		check func(t *testing.T, r *replica)
	}{
		{
			name:  "concurrent edits: one winner, loser kept as a conflict copy",
			setup: func(sc *scenario, a *replica) { sc.put(a, "report.txt", "draft") },
			a:     func(sc *scenario, r *replica) { sc.put(r, "report.txt", "A's edit") },
			b:     func(sc *scenario, r *replica) { sc.put(r, "report.txt", "B's edit") },
			check: func(t *testing.T, r *replica) {
				copies := 0
				for p := range r.files() {
					if strings.HasPrefix(p, "report.conflict-") && strings.HasSuffix(p, ".txt") {
						copies++
					}
				}
				if copies != 1 || !(r.holds("report.txt", "A's edit") || r.holds("report.txt", "B's edit")) {
					t.Fatalf("folder %s", r.listing())
				}
			},
		},
		{
			name:  "delete vs edit: the edit stays",
			setup: func(sc *scenario, a *replica) { sc.put(a, "notes.txt", "v1") },
			a:     func(sc *scenario, r *replica) { sc.del(r, "notes.txt") },
			b:     func(sc *scenario, r *replica) { sc.put(r, "notes.txt", "v2") },
			check: func(t *testing.T, r *replica) {
				if !r.holds("notes.txt", "v2") {
					t.Fatalf("edit lost: %s", r.listing())
				}
			},
		},
		{
			name: "same content created on both: no conflict",
			a:    func(sc *scenario, r *replica) { sc.put(r, "same.txt", "identical") },
			b:    func(sc *scenario, r *replica) { sc.put(r, "same.txt", "identical") },
			check: func(t *testing.T, r *replica) {
				if r.listing() != "same.txt" {
					t.Fatalf("folder %s", r.listing())
				}
			},
		},
		{
			name:  "directory deleted while a file was made in it: it comes back",
			setup: func(sc *scenario, a *replica) { sc.put(a, "dir/old.txt", "old") },
			a:     func(sc *scenario, r *replica) { sc.del(r, "dir") },
			b:     func(sc *scenario, r *replica) { sc.put(r, "dir/new.txt", "new") },
			check: func(t *testing.T, r *replica) {
				if !r.holds("dir/new.txt", "new") || !r.files()["dir"].dir {
					t.Fatalf("folder %s", r.listing())
				}
			},
		},
		{
			name:  "rename vs edit: the edit is kept at the new name",
			setup: func(sc *scenario, a *replica) { sc.put(a, "a.txt", "original") },
			a:     func(sc *scenario, r *replica) { sc.move(r, "a.txt", "b.txt") },
			b:     func(sc *scenario, r *replica) { sc.put(r, "a.txt", "edited") },
			check: func(t *testing.T, r *replica) {
				if r.listing() != "b.txt" || !r.holds("b.txt", "edited") {
					t.Fatalf("folder %s", r.listing())
				}
			},
		},
		{
			name:  "rename into a folder vs edit: the edit follows",
			setup: func(sc *scenario, a *replica) { sc.put(a, "draft.txt", "original") },
			a:     func(sc *scenario, r *replica) { sc.move(r, "draft.txt", "archive/final.txt") },
			b: func(sc *scenario, r *replica) {
				sc.put(r, "draft.txt", "edited")
				sc.put(r, "draft.txt", "edited twice")
			},
			check: func(t *testing.T, r *replica) {
				if r.listing() != "archive/ archive/final.txt" || !r.holds("archive/final.txt", "edited twice") {
					t.Fatalf("folder %s", r.listing())
				}
			},
		},
		{
			name:  "rename vs edit vs edit: one winner at the new name, the other a conflict copy",
			setup: func(sc *scenario, a *replica) { sc.put(a, "a.txt", "original") },
			a: func(sc *scenario, r *replica) {
				sc.move(r, "a.txt", "b.txt")
				sc.put(r, "b.txt", "A edits the renamed file")
			},
			b: func(sc *scenario, r *replica) { sc.put(r, "a.txt", "B edits the old name") },
			check: func(t *testing.T, r *replica) {
				copies := 0
				for p := range r.files() {
					if strings.HasPrefix(p, "b.conflict-") {
						copies++
					}
				}
				if copies != 1 || r.files()["a.txt"] != (simEntry{}) {
					t.Fatalf("folder %s", r.listing())
				}
			},
		},
	} {
		for _, aFirst := range []bool{true, false} {
			t.Run(tc.name, func(t *testing.T) {
				sc, a, b := newScenario(t)
				if tc.setup != nil {
					tc.setup(sc, a)
					sc.exchange(a, b)
				}
				tc.a(sc, a)
				tc.b(sc, b)
				if aFirst {
					sc.send(a, b)
				} else {
					sc.send(b, a)
				}
				sc.exchange(a, b)
				ra, err := a.describeRecords(sc.ctx)
				sc.must(err)
				rb, err := b.describeRecords(sc.ctx)
				sc.must(err)
				if a.listing() != b.listing() || ra != rb {
					t.Fatalf("replicas differ:\n%s\n%s", a.listing(), b.listing())
				}
				tc.check(t, a)
			})
		}
	}
}
