package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/drive-node/drive-node/certs"
	"github.com/drive-node/drive-node/internal/clock"
	"github.com/drive-node/drive-node/pairing"
	"github.com/drive-node/drive-node/quicnet"
	"github.com/drive-node/drive-node/quicnet/discovery"
)

// JoinTimeout bounds a join: finding the inviting device and the exchange.
const JoinTimeout = time.Minute

// ErrNotRunning is returned by the calls that need the node's network
// (Invite, Join) before Run has started it.
var ErrNotRunning = errors.New("the node is not running")

// pairStore is what pairing writes: the peers table, and the devices
// refused for not being paired.
type pairStore interface {
	PairByCode(ctx context.Context, id certs.DeviceID, name string) error
	NoteUnpaired(ctx context.Context, id certs.DeviceID, addr string, at int64) error
}

// Bounds on recording refused devices (noteUnpaired): anyone who reaches
// the port can make handshakes with new keys, and each note is a database
// write in the handshake's path.
const (
	unpairedNoteEvery   = time.Minute            // per device
	unpairedNoteSpacing = 100 * time.Millisecond // between any two
	unpairedNoteTracked = 256                    // devices remembered for the first bound
)

// pairer runs the invites and joins of one device (package pairing): the
// node's while it runs, or a PairingHost's when the daemon does not run.
type pairer struct {
	ctx      context.Context // its lifetime: an invite's announcement ends with it
	id       *certs.Identity
	db       pairStore
	name     string
	log      *slog.Logger
	clk      clock.Clock
	port     int  // the listener's UDP port, announced with an invite
	discover bool // announce invites and find inviters over mDNS
	// joined, if not nil, is told of the device this one joined, at the
	// address it answered on, once the pairing is on disk.
	joined func(id certs.DeviceID, addr netip.AddrPort)
	// paired, if not nil, is told when a device was paired by code (it
	// joins the mesh), once the pairing is on disk.
	paired func()

	mu   sync.Mutex
	open *pairing.Invite // the open invite, nil if none
	wg   sync.WaitGroup  // the invites' announcements

	notesMu   sync.Mutex
	noted     map[certs.DeviceID]time.Time // when each device was last recorded
	lastNoted time.Time
}

// noteUnpaired records a device refused for not being paired
// (quicnet.Config.OnUnpaired): at most once a minute per device and ten
// times a second in all; a note over the bounds is dropped (the device
// tries again).
func (p *pairer) noteUnpaired(id certs.DeviceID, addr string) {
	now := p.clk.Now()
	p.notesMu.Lock()
	if p.noted == nil || len(p.noted) >= unpairedNoteTracked {
		p.noted = map[certs.DeviceID]time.Time{}
	}
	if last, ok := p.noted[id]; ok && now.Sub(last) < unpairedNoteEvery || now.Sub(p.lastNoted) < unpairedNoteSpacing {
		p.notesMu.Unlock()
		return
	}
	p.noted[id], p.lastNoted = now, now
	p.notesMu.Unlock()
	if err := p.db.NoteUnpaired(p.ctx, id, addr, now.UnixNano()); err != nil {
		p.log.Debug("recording an unpaired device", "peer", id.Short(), "err", err)
	}
}

// serve answers one pairing connection (quicnet.Config.OnPairing).
func (p *pairer) serve(ctx context.Context, s *quicnet.PairingStream) {
	p.mu.Lock()
	iv := p.open
	p.mu.Unlock()
	if iv == nil {
		pairing.Decline(ctx, s)
		return
	}
	ex, err := s.ExportKeyingMaterial(pairing.ExporterLabel, 32)
	if err != nil {
		p.log.Warn("pairing failed", "peer", s.Peer.Short(), "addr", s.Addr.String(), "err", err)
		return
	}
	ch := pairing.Channel{Self: s.Self, Peer: s.Peer, Exporter: ex}
	res, err := iv.Answer(ctx, s, ch, func(r pairing.Result) error {
		if err := p.db.PairByCode(ctx, r.ID, r.Name); err != nil {
			return err
		}
		if p.paired != nil {
			p.paired()
		}
		return nil
	})
	switch {
	case errors.Is(err, pairing.ErrNoInvite), errors.Is(err, pairing.ErrBusy), errors.Is(err, pairing.ErrClosed), errors.Is(err, pairing.ErrExpired):
		p.log.Info("pairing attempt refused", "peer", s.Peer.Short(), "addr", s.Addr.String(), "err", err)
	case err != nil:
		p.log.Warn("pairing failed; the invite is used up", "peer", s.Peer.Short(), "addr", s.Addr.String(), "err", err)
	default:
		p.log.Info("paired", "peer", res.ID.String(), "name", res.Name, "addr", s.Addr.String())
	}
}

// invite opens a new invite, replacing (cancelling) an open one, and
// announces its number on the LAN until it ends.
func (p *pairer) invite() (*pairing.Invite, error) {
	iv, err := pairing.NewInvite(p.clk, pairing.TTL, p.name)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	if p.open != nil {
		p.open.Cancel()
	}
	p.open = iv
	p.mu.Unlock()
	var disc *discovery.Service
	if p.discover {
		cfg := discovery.Config{ID: p.id.ID, Port: p.port, Invite: strconv.Itoa(iv.Code().Slot), Logger: p.log, Clock: p.clk,
			Wanted: func() bool { return false }}
		if disc, err = discovery.Start(p.ctx, cfg, func(discovery.Found) {}); err != nil {
			p.log.Warn("cannot announce the invite on the LAN; join with --peer HOST:PORT", "port", p.port, "err", err)
		}
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		// Wait ends the invite at its expiry even if nobody else waits.
		iv.Wait(p.ctx)
		iv.Cancel()
		if disc != nil {
			disc.Close()
		}
		p.mu.Lock()
		if p.open == iv {
			p.open = nil
		}
		p.mu.Unlock()
	}()
	return iv, nil
}

// join finds the device holding the invite of code (at peers, HOST:PORT,
// if any were given, else over mDNS), pairs with it, and returns it.
func (p *pairer) join(ctx context.Context, code pairing.Code, peers []string) (pairing.Result, error) {
	ctx, cancel := context.WithTimeout(ctx, JoinTimeout)
	defer cancel()
	if len(peers) > 0 {
		var errs []error
		for _, hp := range peers {
			addrs, err := resolveHostPort(ctx, hp)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			res, err, done := p.tryJoin(ctx, code, addrs)
			if done {
				return res, err
			}
			errs = append(errs, err)
		}
		return pairing.Result{}, fmt.Errorf("join: no device at %v holds invite %d: %w", peers, code.Slot, errors.Join(errs...))
	}
	if !p.discover {
		return pairing.Result{}, errors.New("join: LAN discovery is off; give the inviting device's address with --peer HOST:PORT")
	}
	found := make(chan discovery.Found, 16)
	slot := strconv.Itoa(code.Slot)
	disc, err := discovery.Start(ctx, discovery.Config{ID: p.id.ID, BrowseOnly: true, Logger: p.log, Clock: p.clk}, func(f discovery.Found) {
		if f.Invite == slot {
			select {
			case found <- f:
			default:
			}
		}
	})
	if err != nil {
		return pairing.Result{}, fmt.Errorf("join: LAN discovery: %w (give the inviting device's address with --peer HOST:PORT)", err)
	}
	defer disc.Close()
	tried := map[certs.DeviceID]bool{}
	var errs []error
	for {
		select {
		case f := <-found:
			if tried[f.ID] {
				continue
			}
			tried[f.ID] = true
			res, err, done := p.tryJoin(ctx, code, f.Addrs)
			if done {
				return res, err
			}
			errs = append(errs, err)
		case <-ctx.Done():
			if len(errs) == 0 {
				return pairing.Result{}, fmt.Errorf("join: no device on the LAN announces invite %d (is `drive-node invite` still waiting there? else give --peer HOST:PORT): %w", code.Slot, ctx.Err())
			}
			return pairing.Result{}, fmt.Errorf("join: invite %d: %w", code.Slot, errors.Join(errs...))
		}
	}
}

// tryJoin runs the exchange with the device at the first of addrs that
// answers. done is false when no device there holds the invite (none
// answered, or it holds no invite with this number): another may.
func (p *pairer) tryJoin(ctx context.Context, code pairing.Code, addrs []netip.AddrPort) (res pairing.Result, err error, done bool) {
	var errs []error
	for _, a := range addrs {
		exchanged := false
		err := quicnet.DialPairing(ctx, p.id, a, certs.DeviceID{}, func(ctx context.Context, s *quicnet.PairingStream) error {
			exchanged = true
			ex, err := s.ExportKeyingMaterial(pairing.ExporterLabel, 32)
			if err != nil {
				return err
			}
			res, err = pairing.Join(ctx, s, pairing.Channel{Self: s.Self, Peer: s.Peer, Exporter: ex}, code, p.name)
			return err
		})
		switch {
		case err == nil:
			if err := p.db.PairByCode(ctx, res.ID, res.Name); err != nil {
				return pairing.Result{}, err, true
			}
			if p.paired != nil {
				p.paired()
			}
			p.log.Info("paired", "peer", res.ID.String(), "name", res.Name, "addr", a.String())
			if p.joined != nil {
				p.joined(res.ID, a)
			}
			return res, nil, true
		case !exchanged || errors.Is(err, pairing.ErrNoInvite):
			errs = append(errs, err)
		default:
			return pairing.Result{}, err, true
		}
	}
	return pairing.Result{}, errors.Join(errs...), false
}

// resolveHostPort resolves HOST:PORT to addresses to dial.
func resolveHostPort(ctx context.Context, hostport string) ([]netip.AddrPort, error) {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return nil, fmt.Errorf("peer address %q: %w", hostport, err)
	}
	pn, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("peer address %q: port: %w", hostport, err)
	}
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return nil, fmt.Errorf("peer address %q: %w", hostport, err)
	}
	var out []netip.AddrPort
	for _, ip := range ips {
		out = append(out, netip.AddrPortFrom(ip.Unmap(), uint16(pn)))
	}
	return out, nil
}
