package node

import (
	"context"
	"flag"
	"fmt"
	"math/rand"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/text/unicode/norm"

	"github.com/drive-node/drive-node/content"
	"github.com/drive-node/drive-node/node/internal/digest"
	"github.com/drive-node/drive-node/node/internal/folder"
)

// The simulation on mixed disks: device 0 (and 3 and 4) on a POSIX disk,
// device 1 on exFAT (names compared without case, : * ? " < > | refused,
// no modes, times to the second) and device 2 on HFS+ (names compared
// without case or Unicode form, kept decomposed). Users write names that
// differ only in case or form, and names exFAT refuses.

var simMixedSeeds = flag.Int("sim.mixedseeds", 500, "simulation seeds to run on mixed disks")

// Names for mixed disks: simFiles and simDirs with case twins (A.txt and
// a.txt, D1 and d1, d2/Z.txt), a name in both Unicode forms and names
// exFAT refuses.
var (
	mixedFiles = append(slices.Clip(simFiles), "A.txt", "D1/x.txt", "d2/Z.txt", "caf\u00e9.txt", "cafe\u0301.txt", "what?.txt", "d2/a:b.txt")
	mixedDirs  = append(slices.Clip(simDirs), "D1")
)

// hfsPlus is how a Mac's HFS+ disk behaves: names compared without case
// or Unicode form, new names kept decomposed.
var hfsPlus = folder.Behaviour{
	Key:   func(n string) string { return foldCase(norm.NFC.String(n)) },
	Store: norm.NFD.String,
}

// mixedDisks gives device i of a mixed simulation its disk, before
// anything is written to it.
func mixedDisks(ctx context.Context, i int, r *replica) {
	switch i {
	case 1:
		r.folder.BehaveAs(exfat)
		r.folder.RefuseNames(exfatRefuses)
		r.folds = true
	case 2:
		r.folder.BehaveAs(hfsPlus)
		r.folds, r.decomposes = true, true
	default:
		return
	}
	r.node.probeVolume(ctx)
}

// checkMixed: the devices on POSIX disks agree, as in check; no accepted
// write is lost (on device 0's folder and log); and each device on a
// folding disk holds every file of device 0's folder that it can, with
// the same content, lists each one it cannot as not placed, and holds
// nothing else.
func (s *sim) checkMixed(ctx context.Context) error {
	var posix []*replica
	for _, r := range s.reps[1:] {
		if !r.folds {
			posix = append(posix, r)
		}
	}
	if err := s.sameAsFirst(ctx, posix); err != nil {
		return err
	}
	if err := s.writesKept(ctx); err != nil {
		return err
	}
	want := s.reps[0].files()
	for i, r := range s.reps {
		if !r.folds {
			continue
		}
		if err := s.placedOrListed(ctx, r, want); err != nil {
			return fmt.Errorf("replica %d: %w\nreplica 0: %s\nreplica %d: %s", i, err, s.reps[0].describeFS(), i, r.describeFS())
		}
		if !r.decomposes {
			if err := s.sameLeaves(ctx, r); err != nil {
				return fmt.Errorf("replica %d: %w", i, err)
			}
		}
	}
	return nil
}

// sameLeaves checks that what the state digest covers of each record of
// r (a device on exFAT, which keeps no modes) is what it covers of
// device 0's record of that path: the digest of a path two devices
// converged on does not depend on their disks.
func (s *sim) sameLeaves(ctx context.Context, r *replica) error {
	leaves := func(r *replica) (map[string]digest.Hash, error) {
		entries, err := r.node.digestEntries(ctx, "")
		out := map[string]digest.Hash{}
		for _, e := range entries {
			out[e.Path] = digest.FileHash(e.Content, e.Mode)
			if e.Kind == digest.Dir {
				out[e.Path] = digest.Hash{}
			}
		}
		return out, err
	}
	want, err := leaves(s.reps[0])
	if err != nil {
		return err
	}
	have, err := leaves(r)
	if err != nil {
		return err
	}
	for p, h := range have {
		if w, ok := want[p]; !ok || w != h {
			return fmt.Errorf("the state digest covers %s otherwise than on device 0 (%s, there %s, recorded there %v)", p, h.Short(), w.Short(), ok)
		}
	}
	return nil
}

// placedOrListed checks a folding device r against want, device 0's
// folder. On HFS+ names are listed decomposed and travel composed (NFC),
// so they are compared in NFC there; exFAT keeps names as written.
func (s *sim) placedOrListed(ctx context.Context, r *replica, want map[string]simEntry) error {
	key := func(p string) string { return p }
	if r.decomposes {
		key = norm.NFC.String
	}
	have := map[string]simEntry{}
	for p, e := range r.files() {
		if !e.dir {
			have[key(p)] = e
		}
	}
	wantByKey := map[string][]content.Hash{}
	for p, w := range want {
		if !w.dir {
			wantByKey[key(p)] = append(wantByKey[key(p)], w.hash)
		}
	}
	list, err := readUnplaced(ctx, r.db)
	if err != nil {
		return err
	}
	listed := map[string]bool{}
	for _, u := range list {
		from, to, _ := strings.Cut(u.Path, " -> ")
		listed[from], listed[to] = true, true
	}
	for k, e := range have {
		if !slices.Contains(wantByKey[k], e.hash) {
			return fmt.Errorf("holds %s=%s, which device 0 does not", k, e.hash.Short())
		}
	}
	for p, w := range want {
		if w.dir {
			continue
		}
		if e, ok := have[key(p)]; ok && e.hash == w.hash {
			continue
		}
		if !listed[p] {
			return fmt.Errorf("lacks %s=%s and does not list it as not placed (listed: %v)", p, w.hash.Short(), list)
		}
		s.unplaced++
	}
	return nil
}

// TestSimulationMixedDisks runs the simulation with devices on exFAT and
// HFS+ disks beside POSIX ones, over seeds of their own; a failure prints
// the seed (rerun it with -sim.seed=N).
func TestSimulationMixedDisks(t *testing.T) {
	seeds := simSeedList(*simMixedSeeds)
	start := time.Now()
	results := runSeedsOf(t, seeds, func(seed int64) *sim {
		return &sim{rng: rand.New(rand.NewSource(seed)), clock: newSimClock(), faults: *simFault, mixed: true}
	})
	unplaced, conflicts := 0, 0
	for _, r := range results {
		if r.err != nil {
			r.fail(t)
		}
		unplaced += r.sim.unplaced
		conflicts += r.sim.conflicts
	}
	took := time.Since(start)
	t.Logf("%d seeds on mixed disks converged in %v; %d files not placed on a folding disk and listed; %d conflict copies",
		len(seeds), took.Round(time.Millisecond), unplaced, conflicts)
	if len(seeds) > 100 && unplaced == 0 {
		t.Fatal("no seed left a file a folding disk could not hold: the schedule does not exercise them")
	}
}
