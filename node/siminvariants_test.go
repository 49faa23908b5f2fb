package node

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/drive-node/drive-node/content"
	"github.com/drive-node/drive-node/oplog"
	"github.com/drive-node/drive-node/state"
)

// The simulation's invariants, checked once every device has settled.

// check: every replica has the same folder and the same records, and
// every accepted write is still somewhere unless a later op made after
// seeing it replaced it.
func (s *sim) check(ctx context.Context) error {
	if err := s.sameAsFirst(ctx, s.reps[1:]); err != nil {
		return err
	}
	for i, r := range s.reps {
		if err := r.storeSound(ctx); err != nil {
			return fmt.Errorf("replica %d: %w", i, err)
		}
	}
	return s.writesKept(ctx)
}

// storeSound checks the replica's version store against its records:
// each version's content is in the store and hashes to its name, and
// each content in the store is named by a version.
func (r *replica) storeSound(ctx context.Context) error {
	vs, err := r.node.db.AllVersions(ctx)
	if err != nil {
		return err
	}
	named := map[string]bool{}
	for _, v := range vs {
		named[versionPath(v.Hash)] = true
		f, err := r.folder.Open(versionPath(v.Hash))
		if err != nil {
			return fmt.Errorf("version of %s (%s) is not in the store: %w", v.Path, v.Hash.Short(), err)
		}
		h, _, err := content.Reader(ctx, f)
		f.Close()
		if err != nil || h != v.Hash {
			return fmt.Errorf("version of %s: the store holds %s under %s (%v)", v.Path, h.Short(), v.Hash.Short(), err)
		}
	}
	top, err := r.folder.Open(VersionsDirName)
	if err != nil {
		return nil // nothing kept
	}
	subs, _ := top.Readdirnames(-1)
	top.Close()
	for _, sub := range subs {
		d, err := r.folder.Open(VersionsDirName + "/" + sub)
		if err != nil {
			continue
		}
		names, _ := d.Readdirnames(-1)
		d.Close()
		for _, name := range names {
			if p := VersionsDirName + "/" + sub + "/" + name; !named[p] {
				return fmt.Errorf("the store holds %s, which no version names", p)
			}
		}
	}
	return nil
}

// sameAsFirst checks that every replica of reps has replica 0's folder,
// records and state digest.
func (s *sim) sameAsFirst(ctx context.Context, reps []*replica) error {
	want := s.reps[0].describeFS()
	wantRec, err := s.reps[0].describeRecords(ctx)
	if err != nil {
		return err
	}
	wantDigest, err := s.reps[0].node.computeDigest(ctx)
	if err != nil {
		return err
	}
	for i, r := range s.reps {
		if !slices.Contains(reps, r) {
			continue
		}
		if got := r.describeFS(); got != want {
			return fmt.Errorf("folders differ:\nreplica 0: %s\nreplica %d: %s", want, i, got)
		}
		got, err := r.describeRecords(ctx)
		if err != nil {
			return err
		}
		if got != wantRec {
			return fmt.Errorf("records differ between replica 0 (-) and %d (+):\n%s", i, diffLines(wantRec, got))
		}
		d, err := r.node.computeDigest(ctx)
		if err != nil {
			return err
		}
		if d.Root != wantDigest.Root {
			return fmt.Errorf("state digests differ: replica 0 %s, replica %d %s:\n%s", wantDigest.Root.Short(), i, d.Root.Short(),
				diffLines(s.reps[0].describeDigested(ctx), r.describeDigested(ctx)))
		}
	}
	return nil
}

// writesKept checks, on replica 0's folder and log, that every accepted
// write is still somewhere unless a later op made after seeing it
// replaced it.
func (s *sim) writesKept(ctx context.Context) error {
	present := map[content.Hash]bool{}
	for p, e := range s.reps[0].files() {
		present[e.hash] = true
		if strings.Contains(p, ".conflict-") {
			s.conflicts++
		}
	}
	all, err := s.reps[0].allOps(ctx)
	if err != nil {
		return err
	}
	// A write is safe when its content is in the folder, when an op on its
	// path was made after seeing it (a knowing overwrite or delete), or
	// when a copy of it (a conflict copy, a rename) is safe.
	byHash := map[content.Hash][]oplog.Op{}
	for _, w := range all {
		if w.Kind == oplog.KindWrite || w.Kind == oplog.KindRename {
			byHash[w.Hash] = append(byHash[w.Hash], w)
		}
	}
	memo := map[state.OpID]bool{}
	var safe func(w oplog.Op) bool
	safe = func(w oplog.Op) bool {
		id := state.OpID{Origin: w.Origin, Seq: w.Seq}
		if v, ok := memo[id]; ok {
			return v
		}
		memo[id] = false // cycles through copies prove nothing
		p := w.Path
		if w.Kind == oplog.KindRename {
			p = w.NewPath
		}
		ok := present[w.Hash]
		for _, o := range all {
			if ok {
				break
			}
			ok = o.Path == p && !(o.Origin == w.Origin && o.Seq == w.Seq) && o.Parent.Dominates(w.Version())
		}
		for _, c := range byHash[w.Hash] {
			if ok {
				break
			}
			if c.Origin != w.Origin || c.Seq != w.Seq {
				ok = safe(c)
			}
		}
		memo[id] = ok
		return ok
	}
	for _, w := range all {
		if (w.Kind == oplog.KindWrite || w.Kind == oplog.KindRename) && !safe(w) {
			return fmt.Errorf("accepted write lost: %s (content %s) is nowhere and nothing replaced it knowingly", w, w.Hash.Short())
		}
	}
	return nil
}

// diffLines lists the lines only a has (-) and only b has (+).
func diffLines(a, b string) string {
	inA, inB := map[string]bool{}, map[string]bool{}
	for _, l := range strings.Split(a, "\n") {
		inA[l] = true
	}
	for _, l := range strings.Split(b, "\n") {
		inB[l] = true
	}
	var out []string
	for l := range inA {
		if !inB[l] {
			out = append(out, "- "+l)
		}
	}
	for l := range inB {
		if !inA[l] {
			out = append(out, "+ "+l)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i][2:] < out[j][2:] })
	return strings.Join(out, "\n")
}

// describeDigested lists what the state digest covers of each live
// record, one a line.
func (r *replica) describeDigested(ctx context.Context) string {
	var parts []string
	r.db.LiveEntries(ctx, "", func(e state.LiveEntry) error {
		disk := ""
		if st, err := r.folder.Stat(e.Path); err == nil {
			disk = fmt.Sprintf(" disk=%o", st.Mode().Perm())
		}
		parts = append(parts, fmt.Sprintf("%s dir=%v %s mode=%o%s", e.Path, e.Dir, e.Hash.Short(), e.Mode, disk))
		return nil
	})
	return strings.Join(parts, "\n")
}
