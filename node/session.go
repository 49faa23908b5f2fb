package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"sort"
	"sync"
	"time"

	"github.com/drive-node/drive-node/certs"
	"github.com/drive-node/drive-node/content"
	"github.com/drive-node/drive-node/internal/kick"
	"github.com/drive-node/drive-node/oplog"
	"github.com/drive-node/drive-node/quicnet"
	"github.com/drive-node/drive-node/state"
	"github.com/drive-node/drive-node/wire"
)

// opsPerFrame bounds how many ops one Ops message carries; wire.OpsBatch
// also keeps each frame within wire.MaxFrame bytes.
const opsPerFrame = 2000

// logWatch lets senders wait for the op log to grow without polling.
type logWatch struct {
	mu sync.Mutex
	ch chan struct{}
}

// changed returns a channel closed at the next notify.
func (w *logWatch) changed() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ch == nil {
		w.ch = make(chan struct{})
	}
	return w.ch
}

func (w *logWatch) notify() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ch != nil {
		close(w.ch)
		w.ch = nil
	}
}

// servePeer runs the sync protocol with one connected peer until the
// connection ends: exchange Hello (each side's log vector), then each side
// streams the ops the other lacks, and keeps streaming new ones as its log
// grows. Received ops are persisted in the log before anything else, then
// acknowledged with a Progress message: the vector of this log, every op
// in it durable here.
//
// After the Hello exchange one goroutine writes to the control stream, the
// sender (sendOps), and one reads, the receive loop below. The receive
// loop never writes to the control stream: it posts the Progress it wants
// sent (progressBox, latest wins) and goes on reading; the sender sends it
// between Ops frames. Otherwise two peers with many ops for each other
// deadlock: each sender blocks on the other's flow control in the middle
// of a large Ops frame, each receive loop waits for its own sender to let
// it write, and neither reads. Receiving must therefore never wait on the
// peer.
func (n *Node) servePeer(ctx context.Context, p *quicnet.Peer) {
	log := n.log.With("peer", p.ID.Short())
	if err := p.Send(ctx, &wire.Hello{Version: wire.ProtocolVersion, Name: n.cfg.Name, Have: n.ops.Vector()}); err != nil {
		log.Warn("sending hello failed", "err", err)
		return
	}
	m, err := p.Recv(ctx)
	if err != nil {
		log.Warn("no hello from peer", "err", err)
		return
	}
	hello, ok := m.(*wire.Hello)
	if !ok || hello.Version != wire.ProtocolVersion {
		log.Warn("peer speaks another protocol; closing", "got", m.Type().String())
		p.CloseWithError(fmt.Sprintf("want hello version %d", wire.ProtocolVersion))
		return
	}
	if err := n.admitPeer(ctx, p); err != nil {
		log.Warn("recording the peer's key failed; closing", "err", err)
		p.CloseWithError("key not recorded")
		return
	}
	peerHas := &knownVector{}
	peerHas.raise(hello.Have)
	digests := newDigestSession()
	n.peerUp(ctx, p, hello, peerHas, digests)
	defer n.peerDown(p)
	gate := newOriginGate(n, p.ID)
	var runs unsignedRuns
	folds := map[certs.DeviceID]uint64{} // what the peer said it folded (wire.Fold)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	progress := newProgressBox()
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		if err := n.sendOps(ctx, p, peerHas, progress, digests.out); err != nil && ctx.Err() == nil {
			log.Warn("sending ops failed", "err", err)
			p.CloseWithError("send failed")
		}
	}()
	// The sender reads the op log: it ends before the session does, so
	// Close never shuts the log under it; the digest server reads the
	// database.
	served := make(chan struct{})
	go func() { defer close(served); n.serveDigests(ctx, digests) }()
	defer func() { cancel(); <-sent; <-served }()
	for {
		m, err := p.Recv(ctx)
		if err != nil {
			if ctx.Err() == nil {
				log.Info("connection ended", "err", err)
			}
			return
		}
		switch m := m.(type) {
		case *wire.Origins:
			if err := gate.introduce(ctx, m); err != nil {
				log.Warn("taking the keys a peer introduced failed; closing", "err", err)
				p.CloseWithError("bad origins")
				return
			}
		case *wire.Fold:
			if _, known := folds[m.Origin]; !known && len(folds) >= maxGateEntries {
				log.Warn("closing the connection to a peer that names too many devices", "folds", len(folds))
				p.CloseWithError("too many devices")
				return
			}
			folds[m.Origin] = max(folds[m.Origin], m.Through)
		case *wire.Ops:
			ops, err := gate.filter(m.Ops)
			if err != nil {
				log.Warn("closing the connection to a peer that names too many devices", "err", err)
				p.CloseWithError("too many devices")
				return
			}
			// Before the ops reach the log, whose growth wakes the sender.
			peerHas.raiseOps(ops)
			if err := n.receiveOps(ctx, p, ops, folds, gate, &runs, progress); err != nil {
				log.Warn("receiving ops failed; reconnecting resynchronises", "err", err)
				p.CloseWithError("bad ops")
				return
			}
		case *wire.Progress:
			peerHas.raise(m.Have)
			n.peerProgress(ctx, p.ID, m.Have)
		case *wire.StateDigest:
			n.notePeerDigest(ctx, p.ID, m)
		case *wire.DigestRequest:
			digests.take(m)
		case *wire.DigestResponse:
			digests.deliver(m)
		case *wire.Introduce:
			// A refused introduction is logged; the session goes on.
			if _, err := n.takeIntroduction(ctx, p, m); err != nil {
				log.Warn("introduction refused", "err", err)
			}
		case *wire.Revoke:
			if _, err := n.takeRevoke(ctx, p, m); err != nil {
				log.Warn("revocation refused", "err", err)
			}
		default:
			log.Warn("unexpected message on the control stream", "type", m.Type().String())
		}
	}
}

// progressBox hands the Progress the receive loop wants sent to the sender
// without blocking: one slot, the latest vector wins. Dropping an earlier
// vector loses nothing, since the log only grows and a later Progress
// acknowledges everything an earlier one did.
type progressBox struct {
	mu    sync.Mutex
	have  map[certs.DeviceID]uint64 // nil when nothing waits to be sent
	ready kick.Signal               // wakes the sender; may fire when the vector was already taken
}

func newProgressBox() *progressBox { return &progressBox{} }

// post replaces the vector waiting to be sent, if any, and wakes the
// sender. It never blocks.
func (b *progressBox) post(have map[certs.DeviceID]uint64) {
	b.mu.Lock()
	b.have = have
	b.mu.Unlock()
	b.ready.Kick()
}

// take returns the vector posted since the last take, or nil.
func (b *progressBox) take() map[certs.DeviceID]uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	have := b.have
	b.have = nil
	return have
}

// knownVector is what the peer is known to have, per origin: its Hello,
// its Progress messages, and the ops it sent (a peer sends only ops its log
// holds, and its log has no gaps). The receive loop raises it; the sender
// reads it, so ops that came from the peer are not sent back to it.
type knownVector struct {
	mu   sync.Mutex
	have map[certs.DeviceID]uint64
}

// raise notes that the peer has every op up to v[o] of each origin o.
func (k *knownVector) raise(v map[certs.DeviceID]uint64) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for o, seq := range v {
		k.note(o, seq)
	}
}

// raiseOps notes that the peer has ops (and all before them of each origin).
func (k *knownVector) raiseOps(ops []oplog.Op) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, op := range ops {
		k.note(op.Origin, op.Seq)
	}
}

func (k *knownVector) note(o certs.DeviceID, seq uint64) {
	if k.have == nil {
		k.have = map[certs.DeviceID]uint64{}
	}
	k.have[o] = max(k.have[o], seq)
}

// skip raises sent to what the peer is known to have.
func (k *knownVector) skip(sent map[certs.DeviceID]uint64) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for o, seq := range k.have {
		sent[o] = max(sent[o], seq)
	}
}

// sendOps streams to p every op in the log beyond what p is known to have
// (peerHas), then waits for the log to grow and repeats. It is the only writer of the control stream
// after the Hello exchange: between Ops frames, and while waiting, it also
// sends the Progress the receive loop posted in progress, the messages
// posted in out (walk requests and answers), this device's introductions
// and revocations to a mesh member at the start and each time the mesh
// changes (mesh.go), and this device's state digest each time it changes.
func (n *Node) sendOps(ctx context.Context, p *quicnet.Peer, peerHas *knownVector, progress *progressBox, out *outbox) error {
	sent := map[certs.DeviceID]uint64{}
	var digestSent uint64             // the digest generation last sent; 0: none
	meshSent := n.mesh.gen.Load() - 1 // the mesh generation last sent: none yet
	introduced := map[certs.DeviceID]bool{}
	// Origins whose next op is a legacy (unsigned) one that this device
	// did not make, and its sequence: the peer takes those only from
	// their origin, so nothing more of that origin is sent from here
	// unless the peer gets that op elsewhere.
	legacy := map[certs.DeviceID]uint64{}
	// The Folded each origin was last announced with (wire.Fold): the
	// peer takes ops across a gap only after hearing of it.
	foldSent := map[certs.DeviceID]uint64{}
	// sendDigest sends this device's state digest if it changed since.
	sendDigest := func() error {
		if d, gen := n.digests.current(); d != nil && gen != digestSent {
			digestSent = gen
			return p.Send(ctx, &wire.StateDigest{Root: d.Root, Files: d.Files, Applied: d.Applied})
		}
		return nil
	}
	for {
		// While a pause was asked for, no op or progress goes out; what
		// the log gained meanwhile is sent after it.
		if err := n.sendWhilePaused(ctx, p, out, sendDigest); err != nil {
			return err
		}
		changed := n.logWatch.changed()
		digestChanged := n.digests.watch.changed()
		meshChanged := n.mesh.watch.changed()
		peerHas.skip(sent)
		mine := n.ops.Vector()
		origins := make([]certs.DeviceID, 0, len(mine))
		for o := range mine {
			origins = append(origins, o)
		}
		sort.Slice(origins, func(i, j int) bool { return string(origins[i][:]) < string(origins[j][:]) })
		var toSend []certs.DeviceID
		for _, o := range origins {
			if mine[o] > sent[o] && legacy[o] != sent[o]+1 {
				toSend = append(toSend, o)
			}
		}
		keys := n.originsToIntroduce(p.ID, toSend, introduced)
		for len(keys) > 0 {
			k := min(len(keys), wire.MaxOriginsPerFrame)
			if err := p.Send(ctx, &wire.Origins{Keys: keys[:k]}); err != nil {
				return err
			}
			keys = keys[k:]
		}
		batch := wire.OpsBatch{MaxOps: opsPerFrame}
		// flush sends the batch, if any, then the Progress waiting, if any.
		flush := func() error {
			if batch.Len() > 0 {
				err := p.Send(ctx, &batch)
				batch.Reset()
				if err != nil {
					return err
				}
			}
			if have := progress.take(); have != nil {
				if err := p.Send(ctx, &wire.Progress{Have: have}); err != nil {
					return err
				}
			}
			for _, m := range out.take() {
				if err := p.Send(ctx, m); err != nil {
					return err
				}
			}
			if gen := n.mesh.gen.Load(); gen != meshSent {
				// A failure to make them is not the peer's: the session
				// goes on, and the next change tries again.
				msgs, err := n.meshMessages(ctx, p.ID)
				if err != nil {
					n.log.Warn("introductions for a mesh member not sent", "peer", p.ID.Short(), "err", err)
				}
				meshSent = gen
				for _, m := range msgs {
					if err := p.Send(ctx, m); err != nil {
						return err
					}
				}
			}
			return sendDigest()
		}
		for _, o := range toSend {
			err := n.ops.Iterate(ctx, o, sent[o]+1, func(op oplog.Op) error {
				if op.Seq > mine[o] {
					return errStop
				}
				// Read at the gap, not before: a fold may have run since.
				if op.Seq > sent[o]+1 && op.Seq-1 > foldSent[o] {
					if f := n.ops.Folded(o); f >= op.Seq-1 {
						if err := p.Send(ctx, &wire.Fold{Origin: o, Through: f}); err != nil {
							return err
						}
						foldSent[o] = f
					}
				}
				if op.Legacy && o != n.id.ID {
					legacy[o] = op.Seq
					return errStop
				}
				full, err := batch.Add(op)
				if err != nil {
					return err
				}
				sent[o] = op.Seq
				if full {
					return flush()
				}
				return nil
			})
			if err != nil && !errors.Is(err, errStop) {
				return err
			}
		}
		if err := flush(); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		case <-progress.ready.C(): // the next flush sends it
		case <-out.ready.C():
		case <-digestChanged:
		case <-meshChanged:
		}
	}
}

// sendWhilePaused returns at once unless a pause was asked for; then it
// waits for the pause to end, sending only this device's state digest
// (sendDigest) and the walk answers and requests posted in out meanwhile:
// a peer asking where the two differ is answered, not kept waiting out
// its deadline. It returns nil when ctx ends.
func (n *Node) sendWhilePaused(ctx context.Context, p *quicnet.Peer, out *outbox, sendDigest func() error) error {
	for {
		paused := n.request.wait()
		if paused == nil {
			return nil
		}
		digestChanged := n.digests.watch.changed()
		if err := sendDigest(); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-paused:
		case <-digestChanged:
		case <-out.ready.C():
			for _, m := range out.take() {
				if err := p.Send(ctx, m); err != nil {
					return err
				}
			}
		}
	}
}

// receiveOps persists ops from a peer (across the gaps folds, what the
// peer said it folded, allows), acknowledges them (posts the
// Progress for the sender to send: it does not write to the peer), and
// wakes the applier. Ops of an origin the log refuses (a gap, a forgery,
// a conflict) are left out for the rest of the session (see originGate);
// a reconnect starts over from what is durable. Only a failure of the
// log or the state dir, or a peer past the session's bounds, fails the
// call, and with it the connection.
func (n *Node) receiveOps(ctx context.Context, p *quicnet.Peer, ops []oplog.Op, folds map[certs.DeviceID]uint64, gate *originGate, runs *unsignedRuns, progress *progressBox) error {
	ops, err := runs.add(ops, gate)
	if err != nil {
		return err
	}
	for _, op := range ops {
		for _, path := range []string{op.Path, op.NewPath} {
			if path == "" {
				continue
			}
			if err := checkPath(path); err != nil {
				// Kept in the log (every device's log stays the same),
				// never applied: execute refuses it too.
				n.log.Error("peer sent an op with an unsafe path; it will not be applied", "peer", p.ID.Short(), "op", op.String(), "err", err)
			}
		}
	}
	// Ops are persisted before they are acknowledged, so a state dir that
	// cannot take them holds the peer back (it resends from what is durable
	// after a reconnect) instead of failing the log.
	if err := n.checkStateDir(); err != nil {
		n.log.Warn("holding back ops from a peer until the state dir can take them", "peer", p.ID.Short(), "ops", len(ops), "err", err)
		if err := n.waitForStateDir(ctx); err != nil {
			return err
		}
	}
	// The insert is waited for even when the session ends meanwhile (the
	// connection replaced by a simultaneous dial's, say): once queued, the
	// log commits it whatever ctx does, and only this call learns which
	// ops it stored. Returning early would leave them in the log with the
	// applier and the senders never told; the next session's resend of
	// them is a duplicate that tells them nothing either.
	inserted, err := n.ops.InsertFolded(context.WithoutCancel(ctx), p.ID, folds, ops...)
	if len(inserted) > 0 {
		n.relays.brought(p.ID, inserted)
		// Due before the other peers hear of the ops: one that asks for
		// their content at once is answered when it is placed (relay.go).
		n.kickApply()
		n.logWatch.notify()
	}
	// Ops of origins the log refused are left out for the rest of the
	// session, and the others' go on: one origin's bad op does not hold
	// back the rest.
	var refused *oplog.InsertError
	if errors.As(err, &refused) {
		for o, why := range refused.Refused {
			runs.drop(o)
			if err := gate.refuse(o, why); err != nil {
				return err
			}
		}
		err = nil
	}
	if err != nil {
		return err
	}
	progress.post(n.ops.Vector())
	return nil
}

func (n *Node) kickApply() {
	n.applying.due.Store(true)
	n.applyKick.Kick()
}

// applyRetry is how long after a pass that left work behind the next
// one runs when nothing kicks it sooner.
const applyRetry = 3 * time.Second

// applyLoop applies received ops as they arrive (kickApply), and retries
// work a pass left behind (ops whose content is not available yet, ops
// set aside, changes held apart by a case conflict) every applyRetry. The
// retry timer runs only while such work waits: an idle node is not woken
// every few seconds to find the log and the database level again.
func (n *Node) applyLoop(ctx context.Context) {
	retry := n.clock.NewTimer(applyRetry)
	if !n.applyWaits(ctx) {
		retry.Stop()
	}
	defer retry.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-n.applyKick.C():
		case <-retry.C():
		}
		// A pass that does not run (paused) ends too: nobody waits for
		// what it would have placed.
		n.applying.passStarted()
		failed := n.applyRound(ctx)
		n.applying.passEnded()
		retry.Stop()
		select {
		case <-retry.C(): // a tick that fired during the pass is stale
		default:
		}
		if failed || n.applyWaits(ctx) {
			retry.Reset(applyRetry)
		}
	}
}

// applyWaits reports whether work is left that only a later pass does:
// ops in the log the database has not applied, ops set aside, or changes
// held apart by a case conflict. When it cannot tell (the database fails
// to answer), it says there is: a retry too many costs a pass, one too
// few leaves ops unapplied until the next kick.
func (n *Node) applyWaits(ctx context.Context) bool {
	if n.setAsideDue.Load() {
		return true
	}
	applied, err := n.db.Applied(ctx)
	if err != nil || logAhead(n.ops.Vector(), applied) {
		return true
	}
	list, err := readUnplaced(ctx, n.db)
	if err != nil {
		return true
	}
	for _, u := range list {
		if u.Kind == "case-conflict" {
			return true
		}
	}
	return false
}

// applyRound is one turn of applyLoop: a pass, unless the node is paused.
// It reports whether the pass failed, so that the loop tries again.
func (n *Node) applyRound(ctx context.Context) (failed bool) {
	if n.paused.Load() || n.request.on() {
		// Nothing is written into a folder that is not the synced one
		// (or while a pause was asked for); status says why what
		// arrives waits.
		n.pending.write(ctx, n, nil, nil, reasonPaused)
		return false
	}
	if err := n.checkStateDir(); err != nil {
		n.pause(ctx, err.Error()) // applying writes the database and may log conflict copies
		return false
	}
	if err := n.applyPending(ctx); err != nil && ctx.Err() == nil {
		n.log.Warn("applying received changes: some wait for a retry", "err", err)
		return true
	}
	return false
}

// peerUp records a new connection.
func (n *Node) peerUp(ctx context.Context, p *quicnet.Peer, hello *wire.Hello, known *knownVector, digests *digestSession) {
	n.peersMu.Lock()
	n.peers[p.ID] = &peerState{p: p, have: maps.Clone(hello.Have), known: known, digests: digests}
	n.peersMu.Unlock()
	n.kickApply() // content that was missing may be here now
	n.events.publish(EventPeerConnected, EventFields{Peer: p.ID.String(), Address: p.RemoteAddr().String()})
	n.updatePeerRow(ctx, p.ID, p.RemoteAddr().String())
}

func (n *Node) peerDown(p *quicnet.Peer) {
	n.peersMu.Lock()
	if ps, ok := n.peers[p.ID]; ok && ps.p == p {
		delete(n.peers, p.ID)
	}
	n.peersMu.Unlock()
	n.peerLost.Kick()
	n.events.publish(EventPeerDisconnected, EventFields{Peer: p.ID.String(), Address: p.RemoteAddr().String()})
	n.updatePeerRow(context.Background(), p.ID, "")
}

// peerProgress notes how far the peer has each origin's ops. Only origins
// this device's log holds are written, up to what it holds, in one
// transaction: a Progress frame naming thousands of origins, real or made
// up, is not thousands of transactions and permanent rows.
func (n *Node) peerProgress(ctx context.Context, id certs.DeviceID, have map[certs.DeviceID]uint64) {
	n.peersMu.Lock()
	if ps, ok := n.peers[id]; ok {
		ps.have = maps.Clone(have)
	}
	n.peersMu.Unlock()
	known := map[certs.DeviceID]uint64{}
	for origin, held := range n.ops.Vector() {
		if seq := min(have[origin], held); seq > 0 {
			known[origin] = seq
		}
	}
	if err := n.db.SetPeerProgresses(ctx, id, known); err != nil {
		n.log.Debug("recording a peer's progress failed", "peer", id.Short(), "err", err)
	}
	n.updatePeerRow(ctx, id, "")
}

// updatePeerRow writes the peer's connection status for `drive-node status`:
// connected while a session with it is live (an old connection that ends
// after a new one began does not make it look disconnected), with addr as
// its address if not "". Rows are written one at a time, each from the
// sessions as they are then.
func (n *Node) updatePeerRow(ctx context.Context, id certs.DeviceID, addr string) {
	n.peerRowMu.Lock()
	defer n.peerRowMu.Unlock()
	n.peersMu.Lock()
	ps, connected := n.peers[id]
	var have map[certs.DeviceID]uint64
	if connected {
		have = ps.have
	}
	n.peersMu.Unlock()
	row, ok, err := n.db.Peer(ctx, id)
	if err != nil || !ok {
		return
	}
	row.Connected = connected
	row.LastSeen = n.clock.Now().UnixNano()
	if addr != "" {
		row.Address = addr
		row.Addresses = []string{addr}
	}
	if !connected {
		row.Address = ""
	}
	if connected {
		row.Behind = behind(n.ops.Vector(), have)
	}
	if err := n.db.UpdatePeerStatus(ctx, row); err != nil {
		n.log.Debug("updating peer status failed", "peer", id.Short(), "err", err)
	}
}

// behind counts the ops in mine that have lacks.
func behind(mine, have map[certs.DeviceID]uint64) uint64 {
	var n uint64
	for o, s := range mine {
		if s > have[o] {
			n += s - have[o]
		}
	}
	return n
}

// peerState is what the node knows of a connected peer.
type peerState struct {
	p    *quicnet.Peer
	have map[certs.DeviceID]uint64
	// known is what the session knows the peer has (see knownVector).
	known *knownVector
	// digest is the state digest the peer last announced on this
	// connection (nil before its first); digests is the session's part in
	// walks of the peer's tree.
	digest  *wire.StateDigest
	digests *digestSession
}

// fetchers returns the connected peers to fetch content from.
func (n *Node) fetchers() []contentFetcher {
	n.peersMu.Lock()
	peers := make([]*quicnet.Peer, 0, len(n.peers))
	for _, ps := range n.peers {
		peers = append(peers, ps.p)
	}
	n.peersMu.Unlock()
	if n.contentFrom != nil {
		return n.contentFrom(peers)
	}
	out := make([]contentFetcher, len(peers))
	for i, p := range peers {
		out[i] = trackedPeer{p, &n.relays}
	}
	return out
}

// OpenContent serves content to peers from the folder: a live recorded
// file with that hash whose size and mtime still match the record, a file
// whose op was just sent, or the version store's copy. It never waits
// (the transport is given relaySource, which does).
func (n *Node) OpenContent(ctx context.Context, h content.Hash) (io.ReadSeekCloser, int64, error) {
	return n.serveContent(ctx, h, n.db.ContentFiles)
}

// serveContent is OpenContent with the records of the live files that
// hold a content found by files.
func (n *Node) serveContent(ctx context.Context, h content.Hash, files contentFilesFunc) (io.ReadSeekCloser, int64, error) {
	if n.request.on() {
		return nil, 0, fmt.Errorf("content %s: %w", h.Short(), ErrPausedOnRequest)
	}
	r, size, err := n.openContentFrom(ctx, h, files)
	if err != nil {
		return nil, 0, err
	}
	return countedContent{r, &n.live.bytesOut}, size, nil
}

// contentFilesFunc finds the live files holding a content, as
// state.DB.ContentFiles does.
type contentFilesFunc func(ctx context.Context, h content.Hash) ([]state.ContentFile, error)

// openContent is OpenContent without the pause and the count.
func (n *Node) openContent(ctx context.Context, h content.Hash) (io.ReadSeekCloser, int64, error) {
	return n.openContentFrom(ctx, h, n.db.ContentFiles)
}

// openContentFrom is openContent with the live files found by files.
func (n *Node) openContentFrom(ctx context.Context, h content.Hash, find contentFilesFunc) (io.ReadSeekCloser, int64, error) {
	n.noteActivity()
	files, err := find(ctx, h)
	if err != nil {
		return nil, 0, err
	}
	for _, f := range files {
		fh, err := n.folderRoot().Open(f.Path)
		if err != nil {
			continue
		}
		st, err := fh.Stat()
		if err != nil || !st.Mode().IsRegular() || st.Size() != f.Size || st.ModTime().UnixNano() != f.MTime {
			fh.Close()
			continue
		}
		return fh, st.Size(), nil
	}
	// A content of a local op just sent, whose record is being written.
	if f, ok := n.announced.find(h); ok {
		if fh, err := n.folderRoot().Open(f.Path); err == nil {
			if st, err := fh.Stat(); err == nil && st.Mode().IsRegular() && st.Size() == f.Size && st.ModTime().UnixNano() == f.MTime {
				return fh, st.Size(), nil
			}
			fh.Close()
		}
	}
	// A content kept in the version store is served too: a peer restores
	// from this device what it no longer holds itself.
	if f, size, err := n.openVersion(ctx, h); err == nil {
		return f, size, nil
	}
	return nil, 0, fmt.Errorf("content %s: %w", h.Short(), fs.ErrNotExist)
}

// paired is the transport's pairing check.
func (n *Node) paired(id certs.DeviceID) bool {
	ok, err := n.db.IsPaired(context.Background(), id)
	if err != nil {
		n.log.Warn("pairing check failed", "peer", id.Short(), "err", err)
	}
	return ok && err == nil
}
