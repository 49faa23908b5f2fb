package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/drive-node/drive-node/certs"
	"github.com/drive-node/drive-node/internal/clock"
	"github.com/drive-node/drive-node/internal/lockfile"
	"github.com/drive-node/drive-node/pairing"
	"github.com/drive-node/drive-node/quicnet"
	"github.com/drive-node/drive-node/state"
)

// PeerList is what `drive-node peers` shows: the paired devices, and the
// devices that tried to connect without being paired (the newest
// state.MaxUnpairedSeen), most recent first.
type PeerList struct {
	Paired   []PeerStatus     `json:"paired"`
	Unpaired []UnpairedStatus `json:"unpaired"`
}

// UnpairedStatus is a device refused for not being paired, as peers shows
// it: `drive-node pair ID` (or a unique prefix of ID) trusts it.
type UnpairedStatus struct {
	ID      string    `json:"id"`
	Address string    `json:"address,omitempty"`
	At      time.Time `json:"at"`
}

// peerStatus is p as status and peers show it; connected only while the
// daemon runs.
func peerStatus(p state.Peer, running bool) PeerStatus {
	ps := PeerStatus{ID: p.ID.String(), Name: p.Name, Connected: p.Connected && running, Address: p.Address, Behind: p.Behind, Error: p.Error,
		PairedBy: p.PairedBy.String()}
	if !p.IntroducedBy.IsZero() {
		ps.IntroducedBy = p.IntroducedBy.String()
	}
	if len(p.Addresses) > 0 {
		ps.LastAddress = p.Addresses[0]
	}
	if p.LastSeen != 0 {
		t := time.Unix(0, p.LastSeen).UTC()
		ps.LastSeen = &t
	}
	return ps
}

// peerStore is what readPeers reads.
type peerStore interface {
	Peers(ctx context.Context) ([]state.Peer, error)
	UnpairedSeen(ctx context.Context) ([]state.UnpairedDevice, error)
}

func readPeers(ctx context.Context, db peerStore, running bool) (PeerList, error) {
	l := PeerList{Paired: []PeerStatus{}, Unpaired: []UnpairedStatus{}}
	peers, err := db.Peers(ctx)
	if err != nil {
		return l, err
	}
	for _, p := range peers {
		l.Paired = append(l.Paired, peerStatus(p, running))
	}
	seen, err := db.UnpairedSeen(ctx)
	if err != nil {
		return l, err
	}
	for _, d := range seen {
		l.Unpaired = append(l.Unpaired, UnpairedStatus{ID: d.ID.String(), Address: d.Address, At: time.Unix(0, d.At).UTC()})
	}
	return l, nil
}

// ReadPeers reads the peers of the node whose state lives in stateDir,
// whether or not its daemon runs (read-only, like ReadStatus).
func ReadPeers(ctx context.Context, stateDir string) (PeerList, error) {
	db, err := openStateDB(ctx, stateDir)
	if err != nil {
		return PeerList{}, err
	}
	defer db.Close()
	return readPeers(ctx, db, lockfile.Held(filepath.Join(stateDir, lockName)))
}

// Peers returns the node's paired devices and the devices refused for not
// being paired, from the node's own database.
func (n *Node) Peers(ctx context.Context) (PeerList, error) {
	return readPeers(ctx, n.db, n.pairer.Load() != nil)
}

// Pair trusts the device id, named name, on disk when it returns; a
// running node accepts its handshakes from then on. A device paired by
// hand is not a mesh member: it neither sends nor receives introductions
// and revocations.
func (n *Node) Pair(ctx context.Context, id certs.DeviceID, name string) error {
	if id == n.id.ID {
		return fmt.Errorf("pair %s: %w", id, ErrPairSelf)
	}
	if err := n.db.Pair(ctx, id, name); err != nil {
		return err
	}
	n.mesh.changed() // id may have left the mesh, or a revocation ended
	return nil
}

// Unpair stops trusting the device id, on disk when it returns: a live
// connection to it is closed at once and its handshakes are refused from
// then on. No introduction pairs it again, and the revocation is sent,
// signed, to the mesh members, which unpair it too where an introduction
// paired it. It returns an error wrapping state.ErrNotPaired if id is not
// paired.
func (n *Node) Unpair(ctx context.Context, id certs.DeviceID) error {
	if err := n.db.Unpair(ctx, id); err != nil {
		return err
	}
	n.mesh.changed()
	if n.pairer.Load() != nil && n.tr.Disconnect(id, "unpaired") {
		n.log.Info("unpaired; connection closed", "peer", id.String())
	}
	return nil
}

// Unpair stops trusting the device id for the node whose state lives in
// stateDir, when its daemon does not run (a running daemon is asked with
// Node.Unpair, which also drops the connection). The revocation is sent
// to the mesh members when the daemon next connects to them.
func Unpair(ctx context.Context, stateDir string, id certs.DeviceID) error {
	db, err := openStateDBWritable(ctx, stateDir)
	if err != nil {
		return err
	}
	defer db.Close()
	return db.Unpair(ctx, id)
}

// openStateDBWritable opens the database of a state dir that must exist
// already, for writing.
func openStateDBWritable(ctx context.Context, stateDir string) (*state.DB, error) {
	ro, err := openStateDB(ctx, stateDir)
	if err != nil {
		return nil, err
	}
	ro.Close()
	return state.Open(ctx, filepath.Join(stateDir, dbName))
}

// Invite opens a pairing invite on the running node, replacing an open
// one: its code is valid for pairing.TTL and one successful join, and its
// number is announced on the LAN until it ends. Wait on it for the device
// that joined; it is paired (on disk) before its join returns.
func (n *Node) Invite(ctx context.Context) (*pairing.Invite, error) {
	pr := n.pairer.Load()
	if pr == nil {
		return nil, fmt.Errorf("invite: %w", ErrNotRunning)
	}
	return pr.invite()
}

// Join pairs the running node with the device holding the invite of code,
// found at peers (HOST:PORT) if any are given, else over mDNS, within
// JoinTimeout; both are paired with each other when it returns, and the
// node connects to it at once.
func (n *Node) Join(ctx context.Context, code pairing.Code, peers []string) (pairing.Result, error) {
	pr := n.pairer.Load()
	if pr == nil {
		return pairing.Result{}, fmt.Errorf("join: %w", ErrNotRunning)
	}
	return pr.join(ctx, code, peers)
}

// PairingConfig configures OpenPairing.
type PairingConfig struct {
	// Folder (may be "") and StateDir locate the device, as for Pair.
	Folder, StateDir string
	// Name is sent to the other device; default the host name.
	Name string
	// Listen is the UDP address an invite is answered on; default ":0".
	Listen string
	// NoDiscovery neither announces invites nor looks for inviters over
	// mDNS: joins then need peers.
	NoDiscovery bool
	Logger      *slog.Logger
}

// PairingHost runs invites and joins for a device whose daemon does not
// run: it opens the device's identity and database, and for an invite a
// listener of its own that serves nothing but pairing.
type PairingHost struct {
	cfg    PairingConfig
	db     *state.DB
	pr     *pairer
	cancel context.CancelFunc

	mu sync.Mutex
	tr *quicnet.Transport
}

// OpenPairing opens the device in cfg.StateDir for pairing, creating its
// identity if needed (see Identity). Close it when done.
func OpenPairing(ctx context.Context, cfg PairingConfig) (*PairingHost, error) {
	id, err := Identity(cfg.Folder, cfg.StateDir)
	if err != nil {
		return nil, err
	}
	if cfg.Name == "" {
		cfg.Name, _ = os.Hostname()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Listen == "" {
		cfg.Listen = ":0"
	}
	db, err := state.Open(ctx, filepath.Join(cfg.StateDir, dbName))
	if err != nil {
		return nil, err
	}
	lctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	pr := &pairer{ctx: lctx, id: id, db: db, name: cfg.Name, log: cfg.Logger, clk: clock.Real{}, discover: !cfg.NoDiscovery}
	return &PairingHost{cfg: cfg, db: db, pr: pr, cancel: cancel}, nil
}

// Invite opens an invite, answered on a listener of the host's own (see
// Node.Invite).
func (h *PairingHost) Invite(ctx context.Context) (*pairing.Invite, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.tr == nil {
		tr, err := quicnet.Listen(ctx, quicnet.Config{
			Identity:  h.pr.id,
			Listen:    h.cfg.Listen,
			Paired:    func(certs.DeviceID) bool { return false },
			OnPairing: h.pr.serve,
			OnPeer:    func(context.Context, *quicnet.Peer) {},
			Logger:    h.cfg.Logger,
		})
		if err != nil {
			return nil, err
		}
		h.tr = tr
		h.pr.port = tr.Addr().Port
	}
	return h.pr.invite()
}

// Addr is the address invites are answered on, nil before the first.
func (h *PairingHost) Addr() *net.UDPAddr {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.tr == nil {
		return nil
	}
	return h.tr.Addr()
}

// Join pairs with the device holding the invite of code (see Node.Join).
func (h *PairingHost) Join(ctx context.Context, code pairing.Code, peers []string) (pairing.Result, error) {
	return h.pr.join(ctx, code, peers)
}

// Close ends an open invite and its listener, and closes the database.
func (h *PairingHost) Close() error {
	h.cancel()
	h.pr.wg.Wait()
	h.mu.Lock()
	defer h.mu.Unlock()
	var errs []error
	if h.tr != nil {
		errs = append(errs, h.tr.Close())
	}
	errs = append(errs, h.db.Close())
	return errors.Join(errs...)
}
