package node

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strings"

	"github.com/drive-node/drive-node/certs"
	"github.com/drive-node/drive-node/node/internal/digest"
	"github.com/drive-node/drive-node/oplog"
	"github.com/drive-node/drive-node/state"
	"github.com/drive-node/drive-node/wire"
)

// Difference is one path where this device's recorded state and a
// peer's differ, and why, as far as this device can tell.
type Difference struct {
	Path string `json:"path"`
	// Here and There are what each side holds at Path: "file",
	// "directory", "absent", or "" when not known (the peer is not
	// connected, so its tree was not walked).
	Here  string `json:"here,omitempty"`
	There string `json:"there,omitempty"`
	Why   string `json:"why"`
}

// Why a path differs from a peer's, as Difference.Why says it.
const (
	WhyHeld        = "held by the brake"
	WhyPending     = "pending here"
	WhyUnplaced    = "not placeable here"
	WhyIgnored     = "ignored here"
	WhySetAside    = "set aside here"
	WhyLocalOnly   = "changed here only"
	WhyPeerBehind  = "peer has not caught up"
	WhyNotReceived = "not received here yet"
	WhyOnPeer      = "not taken by the peer (see its status)"
)

// Bounds of a walk: the differences listed by default and at most, and
// the requests one walk sends the peer.
const (
	DefaultDifferences = 20
	maxDifferences     = 1000
	maxWalkAsks        = 256
	// explainScan bounds the ops read to explain differences.
	explainScan = 200_000
)

// ErrNoPeerDigest is returned by Differences for a peer that has
// announced no state digest yet.
var ErrNoPeerDigest = errors.New("the peer has announced no state digest yet")

// Differences lists up to limit paths where this device's recorded state
// and peer's last announced one differ, each with why. It is empty when
// the two digests are equal. A connected peer's tree is walked (a few
// requests per differing directory); for a peer not connected the paths
// come from the ops one of the two has applied and the other has not.
func (n *Node) Differences(ctx context.Context, peer certs.DeviceID, limit int) ([]Difference, error) {
	if limit <= 0 {
		limit = DefaultDifferences
	}
	limit = min(limit, maxDifferences)
	n.peersMu.Lock()
	var (
		theirs *wire.StateDigest
		walk   *digestSession
	)
	if ps, ok := n.peers[peer]; ok {
		theirs, walk = ps.digest, ps.digests
	}
	n.peersMu.Unlock()
	if theirs == nil {
		known, err := n.db.PeerDigests(ctx)
		if err != nil {
			return nil, err
		}
		d, ok := known[peer]
		if !ok {
			return nil, fmt.Errorf("peer %s: %w", peer.Short(), ErrNoPeerDigest)
		}
		theirs, walk = &wire.StateDigest{Root: d.Root, Files: d.Files, Applied: d.Applied}, nil
	}
	own, err := n.computeDigest(ctx)
	if err != nil {
		return nil, err
	}
	if own.Root == theirs.Root {
		return []Difference{}, nil
	}
	var found []Difference
	if walk != nil {
		if found, err = n.walkDifferences(ctx, walk, limit); err != nil {
			return nil, err
		}
	} else if found, err = n.vectorDifferences(ctx, own.Applied, theirs.Applied, limit); err != nil {
		return nil, err
	}
	return found, n.explain(ctx, found, own.Applied, theirs.Applied)
}

// walkDifferences walks the peer's tree from the root, into the
// directories whose hashes differ from this device's, until limit paths
// are found or the tree is walked.
func (n *Node) walkDifferences(ctx context.Context, s *digestSession, limit int) ([]Difference, error) {
	var found []Difference
	queue := []string{""}
	asks := 0
	for len(queue) > 0 && len(found) < limit {
		dir := queue[0]
		queue = queue[1:]
		var theirs []digest.Child
		after := ""
		for {
			if asks++; asks > maxWalkAsks {
				return found, nil
			}
			r, err := s.ask(ctx, dir, after)
			if err != nil {
				return nil, err
			}
			for _, e := range r.Entries {
				theirs = append(theirs, digest.Child{Name: e.Name, Kind: digest.Kind(e.Kind), Hash: e.Hash})
			}
			if !r.More || len(r.Entries) == 0 {
				break
			}
			after = r.Entries[len(r.Entries)-1].Name
		}
		ours, err := n.treeDir(ctx, dir)
		if err != nil {
			return nil, err
		}
		for _, d := range digest.Diff(ours, theirs) {
			p := path.Join(dir, d.Name)
			if d.Descend {
				queue = append(queue, p)
				continue
			}
			found = append(found, Difference{Path: p, Here: kindName(d.Ours), There: kindName(d.Theirs)})
			if len(found) == limit {
				break
			}
		}
	}
	return found, nil
}

func kindName(k digest.Kind) string {
	if k == 0 {
		return "absent"
	}
	return k.String()
}

// vectorDifferences lists the paths of the ops one side has applied and
// the other has not, as far as this device's log holds them.
func (n *Node) vectorDifferences(ctx context.Context, ours, theirs map[certs.DeviceID]uint64, limit int) ([]Difference, error) {
	var found []Difference
	seen := map[string]bool{}
	add := func(op oplog.Op) error {
		for _, p := range []string{op.Path, op.NewPath} {
			if p != "" && !seen[p] && len(found) < limit {
				seen[p] = true
				found = append(found, Difference{Path: p})
			}
		}
		if len(found) >= limit {
			return errStop
		}
		return nil
	}
	budget := explainScan
	for o := range union(ours, theirs) {
		from, to := min(ours[o], theirs[o]), max(ours[o], theirs[o])
		if err := n.scanOps(ctx, o, from, to, &budget, add); err != nil {
			return nil, err
		}
	}
	return found, nil
}

// union is the origins of either vector.
func union(a, b map[certs.DeviceID]uint64) map[certs.DeviceID]bool {
	out := make(map[certs.DeviceID]bool, len(a)+len(b))
	for o := range a {
		out[o] = true
	}
	for o := range b {
		out[o] = true
	}
	return out
}

// scanOps calls fn for origin's ops with sequence in (from, to] that the
// log holds, reading at most *budget ops in all (it lowers the budget);
// fn returning errStop ends the scan without error.
func (n *Node) scanOps(ctx context.Context, origin certs.DeviceID, from, to uint64, budget *int, fn func(oplog.Op) error) error {
	if from >= to || *budget <= 0 {
		return nil
	}
	err := n.ops.Iterate(ctx, origin, from+1, func(op oplog.Op) error {
		if op.Seq > to || *budget <= 0 {
			return errStop
		}
		*budget--
		return fn(op)
	})
	if err != nil && !errors.Is(err, errStop) {
		return err
	}
	return nil
}

// touches reports whether op changes p or something under or above it.
func touches(op oplog.Op, p string) bool {
	for _, q := range []string{op.Path, op.NewPath} {
		if q != "" && (q == p || strings.HasPrefix(q, p+"/") || strings.HasPrefix(p, q+"/")) {
			return true
		}
	}
	return false
}

// touchIndex finds which of a few paths an op touches (see touches) with
// a map lookup per directory of the op's paths, so an explanation reads
// the ops once and keeps none of them.
type touchIndex struct {
	at    map[string][]int // a path → the differences at it
	above map[string][]int // a directory → the differences strictly under it
}

func newTouchIndex(diffs []Difference) touchIndex {
	x := touchIndex{at: map[string][]int{}, above: map[string][]int{}}
	for i, d := range diffs {
		x.at[d.Path] = append(x.at[d.Path], i)
		for _, dir := range slashPrefixes(d.Path) {
			x.above[dir] = append(x.above[dir], i)
		}
	}
	return x
}

// slashPrefixes returns what p starts with before each of its slashes,
// longest first: touches' "under" for any string, however unclean (an
// op's paths are kept as a peer sent them, "/x" or "a//b" too).
func slashPrefixes(p string) []string {
	var out []string
	for i := strings.LastIndexByte(p, '/'); i >= 0; i = strings.LastIndexByte(p[:i], '/') {
		out = append(out, p[:i])
	}
	return out
}

// each calls fn with the index of every difference op touches, possibly
// more than once.
func (x touchIndex) each(op oplog.Op, fn func(i int)) {
	for _, q := range []string{op.Path, op.NewPath} {
		if q == "" {
			continue
		}
		for _, i := range x.at[q] {
			fn(i)
		}
		for _, i := range x.above[q] {
			fn(i)
		}
		for _, dir := range slashPrefixes(q) {
			for _, i := range x.at[dir] {
				fn(i)
			}
		}
	}
}

// notePending sets why[i], for each difference i that op (received and
// not applied here) touches and that no earlier op explained: WhyHeld
// when op is at or after where the brake holds its origin (held), else
// WhyPending.
func (x touchIndex) notePending(op oplog.Op, held map[certs.DeviceID]uint64, why []string) {
	x.each(op, func(i int) {
		if why[i] != "" {
			return
		}
		why[i] = WhyPending
		if from, ok := held[op.Origin]; ok && op.Seq >= from {
			why[i] = WhyHeld
		}
	})
}

// explain fills in why each difference is there, from what this device
// knows: its ops pending and held, what it could not place, set aside or
// ignores, its receive-only changes, and the ops one of the two devices
// has applied and the other has not.
func (n *Node) explain(ctx context.Context, diffs []Difference, ours, theirs map[certs.DeviceID]uint64) error {
	if len(diffs) == 0 {
		return nil
	}
	// The ops received and not applied here, with the brake's holds.
	held := map[certs.DeviceID]uint64{}
	if r, err := loadBrake(ctx, n.db); err == nil {
		for _, h := range r.Held {
			if id, err := certs.ParseDeviceID(h.Origin); err == nil {
				held[id] = h.From
			}
		}
	}
	// What the ops received and not applied here, and those the peer
	// lacks, say of each difference: read once, none kept.
	touched := newTouchIndex(diffs)
	pending := make([]string, len(diffs)) // WhyHeld or WhyPending, from the first op met
	peerBehind := make([]bool, len(diffs))
	budget := explainScan
	for o, have := range n.ops.Vector() {
		err := n.scanOps(ctx, o, ours[o], have, &budget, func(op oplog.Op) error {
			touched.notePending(op, held, pending)
			return nil
		})
		if err != nil {
			return err
		}
	}
	for o := range ours {
		err := n.scanOps(ctx, o, theirs[o], ours[o], &budget, func(op oplog.Op) error {
			touched.each(op, func(i int) { peerBehind[i] = true })
			return nil
		})
		if err != nil {
			return err
		}
	}
	notReceived := false
	log := n.ops.Vector()
	for o, seq := range theirs {
		notReceived = notReceived || seq > log[o]
	}
	unplaced, err := readUnplaced(ctx, n.db)
	if err != nil {
		return err
	}
	setAside := map[string]string{}
	if err := n.db.SetAsideOps(ctx, "", func(s state.SetAside) error {
		setAside[s.Path], setAside[s.NewPath] = s.Why, s.Why
		return nil
	}); err != nil {
		return err
	}
	local := map[string]bool{}
	if err := n.db.LocalChanges(ctx, func(c state.LocalChange) error { local[c.Path] = true; return nil }); err != nil {
		return err
	}
	for i := range diffs {
		diffs[i].Why = n.why(diffs[i], pending[i], unplaced, setAside, local, peerBehind[i], notReceived)
	}
	return nil
}

// why is the reason for one difference (see explain), the first that
// applies of: held or pending (pending says which, "" for neither), not
// placeable, set aside or ignored, changed here only, the peer behind,
// this device behind, and else the peer's doing.
func (n *Node) why(d Difference, pending string, unplaced []Unplaced,
	setAside map[string]string, local map[string]bool, peerBehind, notReceived bool) string {
	if pending != "" {
		return pending
	}
	for _, u := range unplaced {
		if touches(oplog.Op{Path: u.Path}, d.Path) {
			return WhyUnplaced + " (" + u.Kind + ")"
		}
	}
	switch setAside[d.Path] {
	case "":
	case whyIgnored:
		return WhyIgnored
	default:
		return WhySetAside + " (" + setAside[d.Path] + ")"
	}
	if n.ignored(d.Path, d.Here == digest.Dir.String() || d.There == digest.Dir.String()) {
		return WhyIgnored
	}
	if local[d.Path] {
		return WhyLocalOnly + " (" + string(ReceiveOnly) + ")"
	}
	if peerBehind {
		return WhyPeerBehind
	}
	if notReceived {
		return WhyNotReceived
	}
	return WhyOnPeer
}
