package node

import (
	"path"
	"sort"
	"strings"
	"testing"

	"github.com/drive-node/drive-node/content"
)

// exchange brings two replicas' logs together and applies them.
func exchange(a, b *replica) {
	for i := 0; i < 3; i++ {
		for _, pair := range [][2]*replica{{a, b}, {b, a}} {
			from, to := pair[0], pair[1]
			for _, ops := range from.log {
				to.insert(ops)
			}
			to.applyPending()
		}
	}
}

func (r *replica) put(p, data string, step int) {
	r.mkdirAll(p)
	r.fs[p] = simEntry{hash: content.Sum([]byte(data)), mode: 0o644, mtime: int64(step) * 1e9}
	touched := []string{p}
	for d := path.Dir(p); d != "."; d = path.Dir(d) {
		touched = append(touched, d)
	}
	r.observe(touched)
}

func (r *replica) del(p string) {
	for q := range r.fs {
		if q == p || strings.HasPrefix(q, p+"/") {
			delete(r.fs, q)
		}
	}
	r.observe([]string{p})
}

func (r *replica) move(from, to string) {
	r.mkdirAll(to)
	r.fs[to] = r.fs[from]
	delete(r.fs, from)
	r.observe([]string{from, to})
}

func (r *replica) listing() string {
	var out []string
	for p, e := range r.fs {
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
	e, ok := r.fs[p]
	return ok && e.hash == content.Sum([]byte(data))
}

// TestConcurrentScenarios runs the engine's decisions on the classic
// concurrent cases, with either replica's ops arriving first.
func TestConcurrentScenarios(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(a *replica)
		a, b  func(r *replica)
		check func(t *testing.T, r *replica)
	}{
		{
			name:  "concurrent edits: one winner, loser kept as a conflict copy",
			setup: func(a *replica) { a.put("report.txt", "draft", 1) },
			a:     func(r *replica) { r.put("report.txt", "A's edit", 2) },
			b:     func(r *replica) { r.put("report.txt", "B's edit", 3) },
			check: func(t *testing.T, r *replica) {
				copies := 0
				for p := range r.fs {
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
			setup: func(a *replica) { a.put("notes.txt", "v1", 1) },
			a:     func(r *replica) { r.del("notes.txt") },
			b:     func(r *replica) { r.put("notes.txt", "v2", 2) },
			check: func(t *testing.T, r *replica) {
				if !r.holds("notes.txt", "v2") {
					t.Fatalf("edit lost: %s", r.listing())
				}
			},
		},
		{
			name: "same content created on both: no conflict",
			a:    func(r *replica) { r.put("same.txt", "identical", 1) },
			b:    func(r *replica) { r.put("same.txt", "identical", 1) },
			check: func(t *testing.T, r *replica) {
				if r.listing() != "same.txt" {
					t.Fatalf("folder %s", r.listing())
				}
			},
		},
		{
			name:  "directory deleted while a file was made in it: it comes back",
			setup: func(a *replica) { a.put("dir/old.txt", "old", 1) },
			a:     func(r *replica) { r.del("dir") },
			b:     func(r *replica) { r.put("dir/new.txt", "new", 2) },
			check: func(t *testing.T, r *replica) {
				if !r.holds("dir/new.txt", "new") || !r.fs["dir"].dir {
					t.Fatalf("folder %s", r.listing())
				}
			},
		},
		{
			name:  "rename vs edit: the edit is kept at the new name",
			setup: func(a *replica) { a.put("a.txt", "original", 1) },
			a:     func(r *replica) { r.move("a.txt", "b.txt") },
			b:     func(r *replica) { r.put("a.txt", "edited", 2) },
			check: func(t *testing.T, r *replica) {
				if r.listing() != "b.txt" || !r.holds("b.txt", "edited") {
					t.Fatalf("folder %s", r.listing())
				}
			},
		},
		{
			name:  "rename into a folder vs edit: the edit follows",
			setup: func(a *replica) { a.put("draft.txt", "original", 1) },
			a:     func(r *replica) { r.move("draft.txt", "archive/final.txt") },
			b:     func(r *replica) { r.put("draft.txt", "edited", 2); r.put("draft.txt", "edited twice", 3) },
			check: func(t *testing.T, r *replica) {
				if r.listing() != "archive/ archive/final.txt" || !r.holds("archive/final.txt", "edited twice") {
					t.Fatalf("folder %s", r.listing())
				}
			},
		},
		{
			name:  "rename vs edit vs edit: one winner at the new name, the other a conflict copy",
			setup: func(a *replica) { a.put("a.txt", "original", 1) },
			a:     func(r *replica) { r.move("a.txt", "b.txt"); r.put("b.txt", "A edits the renamed file", 2) },
			b:     func(r *replica) { r.put("a.txt", "B edits the old name", 3) },
			check: func(t *testing.T, r *replica) {
				copies := 0
				for p := range r.fs {
					if strings.HasPrefix(p, "b.conflict-") {
						copies++
					}
				}
				if copies != 1 || r.fs["a.txt"] != (simEntry{}) {
					t.Fatalf("folder %s", r.listing())
				}
			},
		},
	} {
		for _, aFirst := range []bool{true, false} {
			t.Run(tc.name, func(t *testing.T) {
				a, b := newReplica(0), newReplica(1)
				if tc.setup != nil {
					tc.setup(a)
					exchange(a, b)
				}
				tc.a(a)
				tc.b(b)
				if aFirst {
					b.insert(a.log[a.id])
					b.applyPending()
				} else {
					a.insert(b.log[b.id])
					a.applyPending()
				}
				exchange(a, b)
				if a.listing() != b.listing() || describeRecords(a) != describeRecords(b) {
					t.Fatalf("replicas differ:\n%s\n%s", a.listing(), b.listing())
				}
				tc.check(t, a)
			})
		}
	}
}
