package node

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"sync"
	"sync/atomic"
	"time"

	"github.com/drive-node/drive-node/certs"
	"github.com/drive-node/drive-node/content"
	"github.com/drive-node/drive-node/internal/kick"
	"github.com/drive-node/drive-node/oplog"
	"github.com/drive-node/drive-node/quicnet"
	"github.com/drive-node/drive-node/state"
)

// relayWait bounds how long a peer's request for a content this device
// does not hold waits while this device is applying received ops. A peer
// that heard of a change through this device (a chain 1 – 2 – 3, where 3
// never sees 1) asks for its content as soon as the op arrives, which is
// often before this device has fetched and placed it; answered "not held",
// it would retry seconds later. Waiting for the apply instead hands it the
// content the moment it is placed. The bound keeps a request for a
// content that is not coming from holding a stream for long.
const relayWait = 5 * time.Second

// applyProgress tells requests waiting for a content (see relayWait) when
// to look again: while an apply pass is due or running, after each chunk
// it records, when it starts fetching, and when the pass ends.
type applyProgress struct {
	// due is set when an apply pass is asked for and cleared when one
	// starts; running while one runs.
	due, running atomic.Bool
	recorded     kick.Broadcast
}

// busy reports whether ops received here are being, or are about to be,
// applied.
func (a *applyProgress) busy() bool { return a.due.Load() || a.running.Load() }

// passStarted and passEnded bracket an apply pass.
func (a *applyProgress) passStarted() {
	a.running.Store(true) // before due goes: busy throughout
	a.due.Store(false)
}

func (a *applyProgress) passEnded() {
	a.running.Store(false)
	a.recorded.Fire()
}

// relaySource is the node's content as the transport serves it to peers:
// while this device is applying received ops, a content or chunk list it
// does not hold yet is waited for, up to relayWait (see there); otherwise,
// or after that, the error wraps fs.ErrNotExist as the node's own says.
type relaySource struct{ n *Node }

// OpenContent implements quicnet.ContentSource.
func (s relaySource) OpenContent(ctx context.Context, h content.Hash) (r io.ReadSeekCloser, size int64, err error) {
	err = s.n.whileApplying(ctx, requestOf(ctx, h), func() error {
		r, size, err = s.n.OpenContent(ctx, h)
		return err
	})
	return r, size, err
}

// Batch implements quicnet.BatchSource: the files holding the contents
// of a peer's batch are found with one look-up for all of them, not one
// each.
func (s relaySource) Batch(ctx context.Context, hs []content.Hash) quicnet.ContentSource {
	gen := s.n.db.FilesGeneration()
	found, err := s.n.db.ContentFilesOf(ctx, hs)
	if err != nil {
		s.n.log.Debug("looking up a batch of contents failed; each is looked up alone", "contents", len(hs), "err", err)
		return s
	}
	return batchSource{s, found, gen}
}

// batchSource serves a peer's batch of contents from what one look-up
// found. A content it found no live file for is looked up again alone
// if records were written since (an apply may have placed it while the
// batch was served), then served from elsewhere (see openContentFrom), as
// one asked for alone would be.
type batchSource struct {
	relaySource
	found map[content.Hash][]state.ContentFile
	gen   uint64 // the records' generation before the look-up
}

// OpenContent implements quicnet.ContentSource.
func (s batchSource) OpenContent(ctx context.Context, h content.Hash) (r io.ReadSeekCloser, size int64, err error) {
	files := func(ctx context.Context, h content.Hash) ([]state.ContentFile, error) {
		if held, ok := s.found[h]; ok || s.n.db.FilesGeneration() == s.gen {
			return held, nil
		}
		return s.n.db.ContentFiles(ctx, h)
	}
	err = s.n.whileApplying(ctx, requestOf(ctx, h), func() error {
		r, size, err = s.n.serveContent(ctx, h, files)
		return err
	})
	return r, size, err
}

// OpenChunkList implements quicnet.ContentSource.
func (s relaySource) OpenChunkList(ctx context.Context, h content.Hash) (r io.ReadCloser, size int64, err error) {
	err = s.n.whileApplying(ctx, requestOf(ctx, h), func() error {
		r, size, err = s.n.OpenChunkList(ctx, h)
		return err
	})
	return r, size, err
}

// request is a peer's request for a content, as whileApplying weighs it.
type request struct {
	h       content.Hash
	from    certs.DeviceID // the peer asking, when known
	known   bool
	inBatch bool // one content of a batch (see quicnet.InBatch)
}

// requestOf is the request for h that ctx, from the transport, describes.
func requestOf(ctx context.Context, h content.Hash) request {
	from, known := quicnet.Requester(ctx)
	return request{h: h, from: from, known: known, inBatch: quicnet.InBatch(ctx)}
}

// relayLook bounds how long a request waits for this device's apply to
// turn out to want the content at all: an apply that runs for other
// contents makes a request for one it will not bring answered this late,
// no later.
const relayLook = time.Second

// whileApplying calls look, and again after each chunk an apply records,
// for as long as look finds nothing (fs.ErrNotExist), an apply is due or
// running and ctx has not ended: up to relayLook until this device's
// apply wants the content, up to relayWait once it does. It returns
// look's last error. One content of a batch is never waited for.
//
// Two devices that both lack h must not wait for each other: a request
// from the peer this device is itself asking for h right now, or from its
// only connected peer, is answered at once; and while a peer waits here
// for h, this device asks the others for h first (see relays.order).
func (n *Node) whileApplying(ctx context.Context, req request, look func() error) error {
	h, from, known := req.h, req.from, req.known
	var wait, wanted <-chan time.Time
	for {
		// The wake-up is taken before the look: a chunk recorded, or a
		// want noted, between the two is not missed.
		changed := n.applying.recorded.Wait()
		err := look()
		if !errors.Is(err, fs.ErrNotExist) || !n.applying.busy() || req.inBatch {
			return err
		}
		if known && (n.relays.asking(h, from) || !n.connectedBesides(from)) {
			return err
		}
		switch {
		case wait == nil:
			t := n.clock.NewTimer(relayLook)
			defer t.Stop()
			wait = t.C()
			if known {
				defer n.relays.waiting(h, from)()
			}
		case wanted == nil && n.relays.wants(h):
			t := n.clock.NewTimer(relayWait)
			defer t.Stop()
			wait, wanted = t.C(), t.C()
		}
		select {
		case <-changed:
		case <-wait:
			if wanted != nil {
				n.log.Debug("a content a peer waits for was not placed in time", "hash", h.Short(), "waited", relayWait)
			}
			return err
		case <-ctx.Done():
			return err
		}
	}
}

// connectedBesides reports whether a peer other than id is connected.
func (n *Node) connectedBesides(id certs.DeviceID) bool {
	n.peersMu.Lock()
	defer n.peersMu.Unlock()
	for other := range n.peers {
		if other != id {
			return true
		}
	}
	return false
}

// relays tracks, per content, the peers this device is asking for it
// and the peers waiting here for it.
type relays struct {
	mu       sync.Mutex
	askingOf map[content.Hash]map[certs.DeviceID]int
	waitedBy map[content.Hash]map[certs.DeviceID]int
	// wanted counts the fetches of this device's applies that want each
	// content.
	wanted map[content.Hash]int
	// broughtBy is the peer that sent this device the op naming each
	// content, first, for contents not yet fetched: at most maxBrought.
	broughtBy map[content.Hash]certs.DeviceID
}

// maxBrought bounds relays.broughtBy: past it, the notes start again (a
// content whose bringer is not noted is asked of the peers in any order). An entry costs
// about 170 bytes, and a large sync keeps the map full: this bound holds
// it to about 1.4 MiB of a daemon's 32 MiB heap.
const maxBrought = 1 << 13

// brought notes that peer id sent ops, for the contents they name that
// no earlier op's sender was noted for.
func (r *relays) brought(id certs.DeviceID, ops []oplog.Op) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.broughtBy == nil {
		r.broughtBy = map[content.Hash]certs.DeviceID{}
	}
	for _, op := range ops {
		if op.Hash.IsZero() {
			continue
		}
		if len(r.broughtBy) >= maxBrought {
			// Notes are a hint. Some outlive their chunk (ops a pass
			// decided before they were noted); rather than keep those and
			// note nobody, start again.
			r.broughtBy = map[content.Hash]certs.DeviceID{}
		}
		if _, ok := r.broughtBy[op.Hash]; !ok {
			r.broughtBy[op.Hash] = id
		}
	}
}

// fetched forgets who brought the contents hs: they are here, or the
// ops naming them were decided without fetching them.
func (r *relays) fetched(hs []content.Hash) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, h := range hs {
		delete(r.broughtBy, h)
	}
	if len(r.broughtBy) == 0 {
		r.broughtBy = nil // a map keeps its largest size: give it back
	}
}

// add counts id under h in m until the returned func is called.
func (r *relays) add(m *map[content.Hash]map[certs.DeviceID]int, h content.Hash, id certs.DeviceID) func() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if *m == nil {
		*m = map[content.Hash]map[certs.DeviceID]int{}
	}
	if (*m)[h] == nil {
		(*m)[h] = map[certs.DeviceID]int{}
	}
	(*m)[h][id]++
	return func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		if (*m)[h][id]--; (*m)[h][id] == 0 {
			delete((*m)[h], id)
			if len((*m)[h]) == 0 {
				delete(*m, h)
			}
		}
	}
}

// asks records that this device asks peer id for h, until the returned
// func is called.
func (r *relays) asks(h content.Hash, id certs.DeviceID) func() { return r.add(&r.askingOf, h, id) }

// waiting records that peer id waits here for h, until the returned func
// is called.
func (r *relays) waiting(h content.Hash, id certs.DeviceID) func() { return r.add(&r.waitedBy, h, id) }

// want records that an apply of this device wants the contents hs, until
// the returned func is called, and wakes the requests waiting to know.
func (n *Node) wantContents(hs []content.Hash) func() {
	r := &n.relays
	r.mu.Lock()
	if r.wanted == nil {
		r.wanted = map[content.Hash]int{}
	}
	for _, h := range hs {
		r.wanted[h]++
	}
	r.mu.Unlock()
	n.applying.recorded.Fire()
	return func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, h := range hs {
			if r.wanted[h]--; r.wanted[h] <= 0 {
				delete(r.wanted, h)
			}
		}
	}
}

// wants reports whether an apply of this device wants h.
func (r *relays) wants(h content.Hash) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.wanted[h] > 0
}

// asking reports whether this device is asking peer id for h.
func (r *relays) asking(h content.Hash, id certs.DeviceID) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.askingOf[h][id] > 0
}

// order returns peers with the one that brought the op naming h first
// (it had the op before this device: in a chain 1 – 2 – 3, 2 asks 1, not
// 3, which heard of it from 2) and those waiting here for h last: they
// lack it.
func (r *relays) order(h content.Hash, peers []contentFetcher) []contentFetcher {
	r.mu.Lock()
	defer r.mu.Unlock()
	waiting := r.waitedBy[h]
	bringer, brought := r.broughtBy[h]
	if len(waiting) == 0 && !brought {
		return peers
	}
	var first, middle, last []contentFetcher
	for _, p := range peers {
		id, ok := peerIDOf(p)
		switch {
		case ok && brought && id == bringer:
			first = append(first, p)
		case ok && waiting[id] > 0:
			last = append(last, p)
		default:
			middle = append(middle, p)
		}
	}
	return append(append(first, middle...), last...)
}

// peerIDOf returns the device a fetcher fetches from, when it is a
// connected peer.
func peerIDOf(p any) (certs.DeviceID, bool) {
	switch p := p.(type) {
	case trackedPeer:
		return p.p.ID, true
	case *quicnet.Peer:
		return p.ID, true
	}
	return certs.DeviceID{}, false
}

// trackedPeer is a connected peer as the fetches use it: each request
// for a content is recorded in relays while it runs.
type trackedPeer struct {
	p *quicnet.Peer
	r *relays
}

func (t trackedPeer) Fetch(ctx context.Context, h content.Hash, offset int64, dst io.Writer) (int64, error) {
	defer t.r.asks(h, t.p.ID)()
	return t.p.Fetch(ctx, h, offset, dst)
}

func (t trackedPeer) FetchChunkList(ctx context.Context, h content.Hash, limit int64, dst io.Writer) (int64, error) {
	defer t.r.asks(h, t.p.ID)()
	return t.p.FetchChunkList(ctx, h, limit, dst)
}

func (t trackedPeer) FetchRange(ctx context.Context, h content.Hash, offset, length int64, dst io.Writer) (int64, error) {
	defer t.r.asks(h, t.p.ID)()
	return t.p.FetchRange(ctx, h, offset, length, dst)
}

func (t trackedPeer) FetchBatch(ctx context.Context, hs []content.Hash, each func(i int, size int64, r io.Reader) error) error {
	for _, h := range hs {
		defer t.r.asks(h, t.p.ID)()
	}
	return t.p.FetchBatch(ctx, hs, each)
}
