package node

import (
	"context"
	"io/fs"
	"net/netip"

	"github.com/drive-node/drive-node/certs"
	"github.com/drive-node/drive-node/oplog"
	"github.com/drive-node/drive-node/quicnet"
	"github.com/drive-node/drive-node/quicnet/discovery"
	"github.com/drive-node/drive-node/state"
	"github.com/drive-node/drive-node/watcher"
)

// startNetwork opens the transport, starts LAN discovery and keeps
// connections to every known peer.
func (n *Node) startNetwork(ctx context.Context) error {
	pr := &pairer{ctx: ctx, id: n.id, db: n.db, name: n.cfg.Name, log: n.log, clk: n.clock, discover: !n.cfg.NoDiscovery}
	tr, err := quicnet.Listen(ctx, quicnet.Config{
		Identity:   n.id,
		Listen:     n.cfg.Listen,
		PacketConn: n.cfg.PacketConn,
		Paired:     n.paired,
		OnUnpaired: pr.noteUnpaired,
		OnPairing:  pr.serve,
		Content:    relaySource{n},
		OnPeer:     n.servePeer,
		Logger:     n.log,
		Clock:      n.clock,
	})
	if err != nil {
		return err
	}
	n.tr = tr
	n.log.Info("listening", "addr", tr.Addr().String())
	redial := tr.NewRedialer(ctx)
	// A device this one joined is dialled at once where it answered.
	pr.port = tr.Addr().Port
	pr.joined = func(id certs.DeviceID, addr netip.AddrPort) { redial.Found(id, []netip.AddrPort{addr}) }
	pr.paired = n.mesh.changed
	n.pairer.Store(pr)
	for _, p := range n.cfg.Peers {
		redial.AddStatic(p)
	}
	if n.cfg.NoDiscovery {
		return nil
	}
	if tr.Addr().Port == 0 {
		// A handed-in socket that is not a UDP one has no port to announce.
		n.log.Warn("LAN discovery off: the socket has no UDP port to announce; only --peer addresses are dialled", "addr", tr.Addr())
		return nil
	}
	dcfg := discovery.Config{ID: n.id.ID, Port: tr.Addr().Port, Logger: n.log, Wanted: func() bool { return n.peerMissing(ctx) }}
	disc, err := discovery.Start(ctx, dcfg, func(f discovery.Found) {
		if n.paired(f.ID) {
			redial.Found(f.ID, f.Addrs)
		}
	})
	if err != nil {
		// Static peers still work on a network without multicast.
		n.log.Warn("LAN discovery unavailable; only --peer addresses are dialled", "err", err)
		return nil
	}
	go func() {
		for {
			select {
			case <-ctx.Done():
				disc.Close()
				return
			case <-n.peerLost.C():
				disc.Recheck()
			}
		}
	}()
	return nil
}

// observeLocked records the current state of paths as local changes: a
// conflict copy the node wrote, a directory that had to stay.
func (n *Node) observeLocked(ctx context.Context, paths ...string) error {
	var obs []watcher.Observation
	for _, p := range paths {
		o, err := n.observe(ctx, p)
		if err != nil {
			return err
		}
		obs = append(obs, o...)
	}
	return n.recordFreshLocked(ctx, obs)
}

// recordIfChangedLocked records p as a local change when the disk differs
// from the database at p (the watcher has not reported it yet), unless
// what differs is what op itself, or another op pending since start-up,
// leaves at p: it was carried out before a crash that came before its
// records were written, and it is now carried out again. Recording that
// as this device's change would make a second, concurrent version of the
// op's own result (a conflict copy of identical content, or a file the
// op's origin later deletes coming back).
func (n *Node) recordIfChangedLocked(ctx context.Context, p string, op oplog.Op, pending *batchRecords, seen *lookups, known *rawLook) error {
	differs, err := n.diskDiffersFrom(ctx, p, pending, seen, known)
	if err != nil || !differs {
		return err
	}
	obs, err := n.observe(ctx, p)
	if err != nil {
		return err
	}
	if leftBy(op, p, obs) || n.residue.explains(obs) {
		n.log.Debug("the folder holds what an op left before a crash; not a local change", "op", op.String(), "path", p)
		return nil
	}
	return n.recordFreshLocked(ctx, obs)
}

// diskDiffers reports whether what is at p differs from its record: the
// batch's latest row if pending (which may be nil) has one, else the
// database's. Size and mtime stand for a file's content, as for the
// watcher.
func (n *Node) diskDiffers(ctx context.Context, p string, pending *batchRecords, seen *lookups) (bool, error) {
	return n.diskDiffersFrom(ctx, p, pending, seen, nil)
}

// diskDiffersFrom is diskDiffers with p looked at already when known is
// not nil (see lstatFrom).
func (n *Node) diskDiffersFrom(ctx context.Context, p string, pending *batchRecords, seen *lookups, known *rawLook) (bool, error) {
	rec, err := n.recordAt(ctx, p, pending)
	if err != nil {
		return false, err
	}
	live := rec != nil && !rec.Deleted
	if !live {
		// On a disk that keeps no Unicode form (HFS+), a file recorded
		// under another form of p's name is found at p too: it is that
		// record's, not a change at p.
		if twin, err := n.formTwin(ctx, p, pending); err != nil || twin != "" {
			return false, err
		}
	}
	st, serr := n.lstatFrom(p, seen, known)
	return !n.holds(st, serr, rec), nil
}

// holds reports whether what a look at a path found (st, or the error
// err) is what rec says is there: nothing for no record or a tombstone, a
// directory, or a file, whose size and mtime stand for its content as for
// the watcher.
func (n *Node) holds(st fs.FileInfo, err error, rec *state.File) bool {
	live := rec != nil && !rec.Deleted
	switch {
	case err != nil:
		return !live
	case !live:
		return false
	case rec.Dir:
		return st.IsDir()
	}
	return !st.IsDir() && st.Size() == rec.Size && n.sameMTime(st.ModTime().UnixNano(), rec.MTime)
}

// peerMissing reports whether a paired device is not connected (or the
// paired devices cannot be read): discovery then looks for peers.
func (n *Node) peerMissing(ctx context.Context) bool {
	paired, err := n.db.Peers(ctx)
	if err != nil {
		return true
	}
	n.peersMu.Lock()
	defer n.peersMu.Unlock()
	for _, p := range paired {
		if _, ok := n.peers[p.ID]; !ok {
			return true
		}
	}
	return len(paired) == 0
}
