package node

import (
	"context"
	"flag"
	"fmt"
	"math/rand"
	"strings"
	"testing"
	"time"

	"github.com/drive-node/drive-node/state"
)

// The simulation with roles and ignore rules: device 1 is a receive-only
// mirror, device 2 ignores d2/ and *.doc by rules of its own, and a fifth
// device, when there is one, is a send-only master; users edit every
// device, ignored paths and the mirror included.

var simRolesSeeds = flag.Int("sim.rolesseeds", 200, "simulation seeds to run with roles and ignore rules")

// simRules are the ignore rules of device 2 in a roles simulation.
const simRules = "d2/\n*.doc\n"

// toggleRules adds device 2's rules if it has none, or removes them, as
// its user editing its rules file would: the rules are swapped under the
// commit lock, the ops set aside are due, and the watcher's rescan
// records what changed where they no longer apply.
func (s *sim) toggleRules(ctx context.Context) error {
	r := s.reps[2]
	if r.rules == "" {
		r.rules = simRules
	} else {
		r.rules = ""
	}
	s.tracef("rules of 2: %q", r.rules)
	r.node.commitMu.Lock()
	r.node.ignoreRules.Store(newIgnoreRules(nil, []byte(r.rules), "(sim)"))
	r.node.commitMu.Unlock()
	r.node.setAsideDue.Store(true)
	s.toggled++
	return r.scan(ctx)
}

// rolesSetup gives device i of a roles simulation its role and rules.
func rolesSetup(i int, r *replica) {
	switch i {
	case 1:
		r.role = ReceiveOnly
	case 2:
		r.rules = simRules
	case 4:
		r.role = SendOnly
	default:
		return
	}
	r.node.cfg.Role = r.role
	if r.rules != "" {
		r.node.ignoreRules.Store(newIgnoreRules(nil, []byte(r.rules), "(sim)"))
	}
}

// checkRoles: the devices with neither role nor rules agree as in check,
// and no accepted write is lost. The master, if any, records nothing but
// its own ops. The mirror has their records, and their
// folder but at the paths it lists as local changes (and below them); no
// log holds an op of it. The device with rules has their records and
// folder at every path its rules do not ignore, no record where they do,
// and no peer's op ever wrote there.
func (s *sim) checkRoles(ctx context.Context) error {
	plain := []*replica{}
	for _, r := range s.reps[3:] {
		if r.role == SendOnly {
			if err := ownRecordsOnly(ctx, r); err != nil {
				return err
			}
			continue
		}
		plain = append(plain, r)
	}
	if err := s.sameAsFirst(ctx, plain); err != nil {
		return err
	}
	if err := s.writesKept(ctx); err != nil {
		return err
	}
	want, wantRec := s.reps[0].files(), recordsByPath(ctx, s.reps[0])
	mirror := s.reps[1]
	for i, r := range s.reps {
		if got := r.ops.Highest(mirror.id); got != 0 {
			return fmt.Errorf("replica %d's log holds %d ops of the receive-only replica 1", i, got)
		}
	}
	local, err := mirror.node.LocalChangesList(ctx)
	if err != nil {
		return err
	}
	listed := func(p string) bool {
		for _, c := range local {
			if p == c.Path || strings.HasPrefix(p, c.Path+"/") {
				return true
			}
		}
		return false
	}
	if err := sameExcept(want, mirror.files(), listed); err != nil {
		return fmt.Errorf("replica 1 (receive-only, local changes %+v): %w\nreplica 0: %s\nreplica 1: %s", local, err, s.reps[0].describeFS(), mirror.describeFS())
	}
	if err := sameRecordsExcept(wantRec, recordsByPath(ctx, mirror), func(string) bool { return false }); err != nil {
		return fmt.Errorf("replica 1 (receive-only): %w", err)
	}
	ruled := s.reps[2]
	if ruled.rules == "" {
		// Its rules were removed: it caught up with everything they
		// had kept from it, and is a device like the plain ones.
		if len(ruled.wroteIgnored) > 0 {
			return fmt.Errorf("replica 2: peers' ops wrote where its rules ignored: %v", ruled.wroteIgnored)
		}
		if err := s.sameAsFirst(ctx, []*replica{ruled}); err != nil {
			return fmt.Errorf("replica 2, its rules removed: %w", err)
		}
		s.localChanges += len(local)
		return nil
	}
	ignored := func(p string) bool { return ruled.node.ignored(p, false) || ruled.node.ignored(p, true) }
	if len(ruled.wroteIgnored) > 0 {
		return fmt.Errorf("replica 2: peers' ops wrote where its rules ignore: %v", ruled.wroteIgnored)
	}
	if err := sameExcept(want, ruled.files(), ignored); err != nil {
		return fmt.Errorf("replica 2 (rules %q): %w\nreplica 0: %s\nreplica 2: %s", simRules, err, s.reps[0].describeFS(), ruled.describeFS())
	}
	recs := recordsByPath(ctx, ruled)
	for p, rec := range recs {
		if ignored(p) && !strings.Contains(rec, ":true:") {
			return fmt.Errorf("replica 2 records %s, which its rules ignore: %s", p, rec)
		}
	}
	if err := sameRecordsExcept(wantRec, recs, ignored); err != nil {
		return fmt.Errorf("replica 2 (rules %q): %w", simRules, err)
	}
	for _, r := range s.reps {
		if err := r.storeSound(ctx); err != nil {
			return err
		}
	}
	s.localChanges += len(local)
	s.setAside += setAsideCount(ctx, ruled)
	return nil
}

// sameExcept reports the first path where have differs from want, leaving
// out the paths skip accepts.
func sameExcept(want, have map[string]simEntry, skip func(string) bool) error {
	for p, w := range want {
		if h, ok := have[p]; !skip(p) && (!ok || h != w) {
			return fmt.Errorf("%s is %+v (present %v), want %+v", p, h, ok, w)
		}
	}
	for p, h := range have {
		if _, ok := want[p]; !ok && !skip(p) {
			return fmt.Errorf("holds %s (%+v), which replica 0 does not", p, h)
		}
	}
	return nil
}

// recordsByPath is a replica's records as describeRecords writes them, by
// path.
func recordsByPath(ctx context.Context, r *replica) map[string]string {
	out := map[string]string{}
	desc, _ := r.describeRecords(ctx)
	for _, line := range strings.Split(desc, "\n") {
		if p, _, ok := strings.Cut(line, ":"); ok {
			out[p] = line
		}
	}
	return out
}

// sameRecordsExcept reports the first record that differs between want
// and have, leaving out the paths skip accepts. A tombstone and no record
// are alike (tombstones of paths never seen are not made).
func sameRecordsExcept(want, have map[string]string, skip func(string) bool) error {
	for p, w := range want {
		if skip(p) {
			continue
		}
		if h := have[p]; h != w {
			return fmt.Errorf("record of %s is %q, want %q", p, h, w)
		}
	}
	for p, h := range have {
		if _, ok := want[p]; !ok && !skip(p) {
			return fmt.Errorf("records %s (%q), which replica 0 does not", p, h)
		}
	}
	return nil
}

func setAsideCount(ctx context.Context, r *replica) int {
	c, _ := r.db.SetAsideCounts(ctx)
	return c[whyIgnored]
}

// TestSimulationRoles runs the simulation with a receive-only device and
// a device with ignore rules of its own, over seeds of their own.
func TestSimulationRoles(t *testing.T) {
	seeds := simSeedList(*simRolesSeeds)
	start := time.Now()
	results := runSeedsOf(t, seeds, func(seed int64) *sim {
		// Every third seed, device 2's user adds and removes its rules.
		return &sim{rng: rand.New(rand.NewSource(seed)), clock: newSimClock(), faults: *simFault, roles: true, toggles: seed%3 == 0}
	})
	local, aside, toggled := 0, 0, 0
	for _, r := range results {
		if r.err != nil {
			r.fail(t)
		}
		local += r.sim.localChanges
		aside += r.sim.setAside
		toggled += r.sim.toggled
	}
	t.Logf("%d seeds with a mirror and a device with rules converged in %v; %d local changes kept on mirrors; %d ops set aside by rules; rules added or removed %d times",
		len(seeds), time.Since(start).Round(time.Millisecond), local, aside, toggled)
	if len(seeds) > 100 && (local == 0 || aside == 0 || toggled == 0) {
		t.Fatal("no seed left a local change on the mirror, set an op aside or changed rules: the schedule does not exercise them")
	}
}

// ownRecordsOnly checks that the send-only replica r recorded nothing but
// its own ops, and that its folder is what they made.
func ownRecordsOnly(ctx context.Context, r *replica) error {
	var err error
	if ferr := r.db.Files(ctx, func(f state.File) error {
		if f.Origin != r.id && err == nil {
			err = fmt.Errorf("the send-only replica recorded %s from %s", f.Path, f.Origin.Short())
		}
		return nil
	}); ferr != nil {
		return ferr
	}
	if err != nil {
		return err
	}
	changed, cerr := r.changed(ctx)
	if cerr != nil {
		return cerr
	}
	if len(changed) > 0 {
		return fmt.Errorf("the send-only replica's folder differs from its records at %v", changed)
	}
	return nil
}
