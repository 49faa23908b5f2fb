package node

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"sync"
	"time"

	"github.com/drive-node/drive-node/certs"
	"github.com/drive-node/drive-node/internal/kick"
	"github.com/drive-node/drive-node/node/internal/digest"
	"github.com/drive-node/drive-node/state"
	"github.com/drive-node/drive-node/wire"
)

// A device's state digest is a Merkle tree over its recorded state
// (package digest): every device whose records converged has the same
// root. The daemon computes it once its records have been quiet for
// digestQuiet, announces it to every peer (wire.StateDigest), records
// what each peer announces, and answers a peer's requests to walk its
// tree (wire.DigestRequest), so that `drive-node status` can say
// "identical" or list where two devices differ and why.

const (
	// digestQuiet is how long the records must stay unchanged before the
	// digest is computed again: a sync of many files costs one digest at
	// its end, not one per batch.
	digestQuiet = 2 * time.Second
	// digestSpacing is how many times its own duration a computation
	// waits before the next, so that a trickle of changes never keeps a
	// core busy with digests.
	digestSpacing = 10
	// digestAskTimeout bounds a walk request to a peer.
	digestAskTimeout = 10 * time.Second
	// digestQueue bounds the walk requests of one peer waiting to be
	// answered; one beyond it is answered "busy" at once.
	digestQueue = 4
	// outboxMax bounds the control messages waiting for a session's
	// sender besides ops and progress.
	outboxMax = 16
	// metaDigest holds this device's last digest (JSON, see StateDigest).
	metaDigest = "state_digest"
	// metaDigestChanges holds the count of record writes (state.Stats
	// Changes) the last digest was computed at, after digestScheme.
	metaDigestChanges = "state_digest_changes"
	// digestScheme names how a stored digest was summed; a digest stored
	// under another is summed again (the tree's encoding changed).
	digestScheme = "v1:"
)

// ownDigest is this device's digest as last computed.
type ownDigest struct {
	Root    digest.Hash
	Files   uint64
	Applied map[certs.DeviceID]uint64
	At      time.Time
	// Changes is the count of record writes it was computed at.
	Changes uint64
}

// digestState keeps the last digest computed and wakes the sessions'
// senders when it changes.
type digestState struct {
	mu    sync.Mutex
	cur   *ownDigest
	gen   uint64 // advanced each time cur changes
	watch logWatch
	// quiet is digestQuiet; tests shorten it.
	quiet time.Duration
	// summing is held by a computation: two would save the tree over
	// each other and could leave a directory's stale hash unmarked.
	summing sync.Mutex
}

// current returns the last digest computed (nil before the first) and
// its generation.
func (s *digestState) current() (*ownDigest, uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur, s.gen
}

// set publishes d if it differs from the current digest, and reports
// whether it did.
func (s *digestState) set(d *ownDigest) bool {
	s.mu.Lock()
	if s.cur != nil && s.cur.Root == d.Root && maps.Equal(s.cur.Applied, d.Applied) {
		s.mu.Unlock()
		return false
	}
	s.cur = d
	s.gen++
	s.mu.Unlock()
	s.watch.notify()
	return true
}

// StateDigest is a state digest as status shows it.
type StateDigest struct {
	// Root is the digest's root in hex; status prints its first 6 bytes.
	Root string `json:"root"`
	// Files counts the live records (files and directories) it covers.
	Files uint64    `json:"files"`
	At    time.Time `json:"at"`
}

// Short is the root's first 6 bytes in hex, as status prints it.
func (d StateDigest) Short() string {
	if len(d.Root) < 12 {
		return d.Root
	}
	return d.Root[:12]
}

// digestLoop computes the digest when the records have changed and then
// stayed unchanged for the quiet period, no sooner than digestSpacing
// times the last computation's duration after it. While records may be
// changing it reads one counter every quarter of the quiet period. Once
// the digest matches the records it sleeps until the op log grows or an
// apply pass records something (what changes records), looking again
// only every digestIdleLook as a backstop: an idle node is not woken
// twice a second to read an unchanged counter.
func (n *Node) digestLoop(ctx context.Context) {
	quiet := n.digests.quiet
	poll := max(quiet/4, time.Millisecond)
	timer := n.clock.NewTimer(poll)
	defer timer.Stop()
	w := digestWatch{quiet: quiet, seenAt: n.clock.Now()}
	// The records a restart finds unchanged have the digest the last run
	// computed: at a million records, summing them again would cost
	// seconds of every start-up.
	gen := n.db.FilesGeneration()
	if d := n.storedDigest(ctx); d != nil {
		n.digests.set(d)
		w.done, w.doneGen = true, gen
		n.log.Debug("state digest as stored", "state", d.Root.Short(), "files", d.Files)
	}
	stirred := w.seenAt // when an event last said records may change
	logGrew, recorded := n.logWatch.changed(), n.applying.recorded.Wait()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C():
		case <-logGrew:
			// Ops are logged before their records are written: the
			// records are looked at for a quiet period from now.
			stirred, logGrew = n.clock.Now(), n.logWatch.changed()
		case <-recorded:
			stirred, recorded = n.clock.Now(), n.applying.recorded.Wait()
		}
		w.look(ctx, n)
		timer.Stop()
		select {
		case <-timer.C(): // fired during the look: stale
		default:
		}
		if w.done && n.db.FilesGeneration() == w.doneGen && n.clock.Now().Sub(stirred) >= quiet {
			timer.Reset(digestIdleLook)
		} else {
			timer.Reset(poll)
		}
	}
}

// digestIdleLook is how often digestLoop looks at records it has a
// digest of: a backstop for a record written with no op logged and no
// apply pass recording it.
const digestIdleLook = 30 * time.Second

// digestWatch is what digestLoop remembers between looks.
type digestWatch struct {
	quiet     time.Duration
	done      bool   // a digest was computed at doneGen
	doneGen   uint64 // the records' generation it was computed at
	seenGen   uint64
	seenAt    time.Time
	notBefore time.Time
}

// look computes and publishes the digest once the records have been
// quiet long enough.
func (w *digestWatch) look(ctx context.Context, n *Node) {
	now := n.clock.Now()
	gen := n.db.FilesGeneration()
	switch {
	case w.done && gen == w.doneGen:
		return
	case gen != w.seenGen:
		w.seenGen, w.seenAt = gen, now
		return
	case now.Sub(w.seenAt) < w.quiet || now.Before(w.notBefore):
		return
	}
	start := time.Now()
	d, err := n.computeDigest(ctx)
	took := time.Since(start)
	w.notBefore = now.Add(digestSpacing * took)
	if err != nil {
		if ctx.Err() == nil {
			n.log.Warn("computing the state digest failed", "err", err)
		}
		return
	}
	if n.db.FilesGeneration() != gen {
		return // the records changed meanwhile: the next quiet period computes it
	}
	w.done, w.doneGen = true, gen
	if n.digests.set(d) {
		n.log.Debug("state digest", "state", d.Root.Short(), "files", d.Files, "took", took.Round(time.Millisecond))
	}
	n.writeDigestMeta(ctx, d) // with the count of writes it was computed at
}

// storedDigest returns the digest the last run recorded if the records
// have not been written since (their count of writes is the one it was
// computed at), else nil.
func (n *Node) storedDigest(ctx context.Context) *ownDigest {
	raw, ok, err := n.db.Meta(ctx, metaDigest)
	if err != nil || !ok {
		return nil
	}
	at, ok, err := n.db.Meta(ctx, metaDigestChanges)
	if err != nil || !ok {
		return nil
	}
	var sd StateDigest
	if json.Unmarshal([]byte(raw), &sd) != nil {
		return nil
	}
	root, err := hex.DecodeString(sd.Root)
	if err != nil || len(root) != len(digest.Hash{}) {
		return nil
	}
	stats, err := n.db.Stats(ctx)
	if err != nil || digestScheme+strconv.FormatUint(stats.Changes, 10) != at {
		return nil
	}
	applied, err := n.db.Applied(ctx)
	if err != nil {
		return nil
	}
	return &ownDigest{Root: digest.Hash(root), Files: sd.Files, Applied: applied, At: sd.At, Changes: stats.Changes}
}

// writeDigestMeta records d for status, which reads the database from
// outside the daemon.
func (n *Node) writeDigestMeta(ctx context.Context, d *ownDigest) {
	b, err := json.Marshal(StateDigest{Root: d.Root.String(), Files: d.Files, At: d.At.UTC()})
	if err == nil {
		err = n.db.SetMetas(ctx, map[string]string{metaDigest: string(b), metaDigestChanges: digestScheme + strconv.FormatUint(d.Changes, 10)})
	}
	if err != nil {
		n.log.Debug("recording the state digest failed", "err", err)
	}
}

// CurrentDigest returns this device's state digest as last computed, and
// false before the first.
func (n *Node) CurrentDigest() (StateDigest, bool) {
	d, _ := n.digests.current()
	if d == nil {
		return StateDigest{}, false
	}
	return StateDigest{Root: d.Root.String(), Files: d.Files, At: d.At.UTC()}, true
}

// notePeerDigest keeps what a peer announced, in memory for walks and in
// the database for status. Only a change is written.
func (n *Node) notePeerDigest(ctx context.Context, id certs.DeviceID, m *wire.StateDigest) {
	n.peersMu.Lock()
	ps, ok := n.peers[id]
	same := ok && ps.digest != nil && ps.digest.Root == m.Root && ps.digest.Files == m.Files && maps.Equal(ps.digest.Applied, m.Applied)
	if ok {
		ps.digest = m
	}
	n.peersMu.Unlock()
	if same {
		return
	}
	err := n.db.SetPeerDigest(ctx, state.PeerDigest{Peer: id, Root: m.Root, Files: m.Files, Applied: m.Applied, At: n.clock.Now().UnixNano()})
	if err != nil {
		n.log.Debug("recording a peer's state digest failed", "peer", id.Short(), "err", err)
	}
}

// digestChildren lists the directory dir of this device's tree, after
// the name after, at most wire.MaxDigestChildren entries; more says
// whether more follow. found is false when dir is neither the root nor a
// directory here.
func (n *Node) digestChildren(ctx context.Context, dir, after string) (children []digest.Child, more, found bool, err error) {
	if dir != "" {
		if checkPath(dir) != nil {
			return nil, false, false, nil
		}
		f, ok, err := n.db.File(ctx, dir)
		if err != nil {
			return nil, false, false, err
		}
		if ok && !f.Deleted && !f.Dir {
			return nil, false, false, nil
		}
		found = ok && !f.Deleted
	}
	all, err := n.treeDir(ctx, dir)
	if err != nil {
		return nil, false, false, err
	}
	found = found || dir == "" || len(all) > 0
	i := 0
	for i < len(all) && all[i].Name <= after && after != "" {
		i++
	}
	all = all[i:]
	if len(all) > wire.MaxDigestChildren {
		return all[:wire.MaxDigestChildren], true, found, nil
	}
	return all, false, found, nil
}

// answerDigest answers a peer's walk request.
func (n *Node) answerDigest(ctx context.Context, req *wire.DigestRequest) *wire.DigestResponse {
	children, more, found, err := n.digestChildren(ctx, req.Dir, req.After)
	switch {
	case err != nil:
		n.log.Debug("answering a digest request failed", "dir", req.Dir, "err", err)
		return &wire.DigestResponse{ID: req.ID, Status: wire.DigestBusy}
	case !found:
		return &wire.DigestResponse{ID: req.ID, Status: wire.DigestNoDir}
	}
	resp := &wire.DigestResponse{ID: req.ID, More: more, Entries: make([]wire.DigestEntry, 0, len(children))}
	for _, c := range children {
		resp.Entries = append(resp.Entries, wire.DigestEntry{Name: c.Name, Kind: uint8(c.Kind), Hash: c.Hash})
	}
	if len(resp.Entries) == 0 {
		resp.Entries = nil
	}
	return resp
}

// outbox holds the control messages besides ops and progress that wait
// for a session's sender, in order, at most outboxMax.
type outbox struct {
	mu    sync.Mutex
	msgs  []wire.Message
	ready kick.Signal
}

// post queues m for the sender and wakes it; it reports false, dropping
// m, when the box is full. It never blocks.
func (o *outbox) post(m wire.Message) bool {
	o.mu.Lock()
	if len(o.msgs) >= outboxMax {
		o.mu.Unlock()
		return false
	}
	o.msgs = append(o.msgs, m)
	o.mu.Unlock()
	o.ready.Kick()
	return true
}

// take returns the messages queued since the last take.
func (o *outbox) take() []wire.Message {
	o.mu.Lock()
	defer o.mu.Unlock()
	m := o.msgs
	o.msgs = nil
	return m
}

// digestSession is one session's part in walks: the requests it asked
// the peer and waits for, and those the peer asked and wait here.
type digestSession struct {
	out  *outbox
	reqs chan *wire.DigestRequest

	mu     sync.Mutex
	nextID uint64
	asks   map[uint64]chan *wire.DigestResponse
}

func newDigestSession() *digestSession {
	return &digestSession{out: &outbox{}, reqs: make(chan *wire.DigestRequest, digestQueue), asks: map[uint64]chan *wire.DigestResponse{}}
}

// errPeerBusy is returned when a peer cannot take a walk request now.
var errPeerBusy = errors.New("the peer is busy; ask again later")

// ask sends the peer a walk request and waits for its answer, at most
// digestAskTimeout.
func (s *digestSession) ask(ctx context.Context, dir, after string) (*wire.DigestResponse, error) {
	s.mu.Lock()
	s.nextID++
	id := s.nextID
	ch := make(chan *wire.DigestResponse, 1)
	s.asks[id] = ch
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.asks, id)
		s.mu.Unlock()
	}()
	if !s.out.post(&wire.DigestRequest{ID: id, Dir: dir, After: after}) {
		return nil, errPeerBusy
	}
	ctx, cancel := context.WithTimeout(ctx, digestAskTimeout)
	defer cancel()
	select {
	case r := <-ch:
		if r.Status == wire.DigestBusy {
			return nil, errPeerBusy
		}
		return r, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("listing %q on the peer: %w", dir, ctx.Err())
	}
}

// deliver hands a response to the ask waiting for it; one nobody waits
// for (late, or made up) is dropped.
func (s *digestSession) deliver(r *wire.DigestResponse) {
	s.mu.Lock()
	ch, ok := s.asks[r.ID]
	delete(s.asks, r.ID)
	s.mu.Unlock()
	if ok {
		ch <- r
	}
}

// take queues a peer's request for serveDigests, or answers it busy at
// once when digestQueue requests already wait. It never blocks.
func (s *digestSession) take(req *wire.DigestRequest) {
	select {
	case s.reqs <- req:
	default:
		s.out.post(&wire.DigestResponse{ID: req.ID, Status: wire.DigestBusy})
	}
}

// serveDigests answers the peer's walk requests one at a time until ctx
// ends, resting after each as long as it took: a peer that asks without
// pause gets at most half a core's worth of answers.
func (n *Node) serveDigests(ctx context.Context, s *digestSession) {
	for {
		select {
		case <-ctx.Done():
			return
		case req := <-s.reqs:
			start := time.Now()
			rctx, cancel := context.WithTimeout(ctx, digestAskTimeout)
			resp := n.answerDigest(rctx, req)
			cancel()
			if !s.out.post(resp) {
				n.log.Debug("dropped a digest answer: the session's outbox is full", "id", req.ID)
			}
			select {
			case <-ctx.Done():
				return
			case <-n.after(time.Since(start)):
			}
		}
	}
}

// PeerState is a peer's last state digest as status shows it.
type PeerState struct {
	StateDigest
	// Identical is true when the peer's digest is this device's: the two
	// hold the same recorded state.
	Identical bool `json:"identical"`
	// Differences lists where the two differ and why (filled in by
	// `drive-node status` from the daemon, see Node.Differences), or
	// DifferencesError why they could not be listed.
	Differences      []Difference `json:"differences,omitempty"`
	DifferencesError string       `json:"differences_error,omitempty"`
}

// readDigestStatus fills in this device's digest and each peer's.
func readDigestStatus(ctx context.Context, db *state.DB, st *Status) error {
	if raw, ok, _ := db.Meta(ctx, metaDigest); ok {
		var d StateDigest
		if json.Unmarshal([]byte(raw), &d) == nil {
			st.State = &d
		}
	}
	digests, err := db.PeerDigests(ctx)
	if err != nil {
		return err
	}
	for i := range st.Peers {
		id, err := certs.ParseDeviceID(st.Peers[i].ID)
		if err != nil {
			continue
		}
		d, ok := digests[id]
		if !ok {
			continue
		}
		ps := &PeerState{StateDigest: StateDigest{Root: digest.Hash(d.Root).String(), Files: d.Files, At: time.Unix(0, d.At).UTC()}}
		ps.Identical = st.State != nil && st.State.Root == ps.Root
		st.Peers[i].State = ps
	}
	return nil
}
