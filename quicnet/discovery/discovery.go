// Package discovery finds paired devices on the LAN: each device announces
// its ID and QUIC port over multicast DNS (DNS-SD) and browses for the
// others. It only reports addresses; whether a device may connect is the
// transport's decision, made at every handshake.
//
// Guarantees: a report names a device ID and addresses seen for it on an
// interface this host has; a Service that is not wanted (every paired
// device is connected) answers queries but sends none of its own; no
// report is made after Close returns.
package discovery

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/drive-node/drive-node/certs"
	"github.com/drive-node/drive-node/internal/clock"
	"github.com/drive-node/drive-node/internal/kick"
	"github.com/pion/logging"
	"github.com/pion/mdns/v2"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// LAN discovery is DNS-SD (RFC 6763) over multicast DNS (RFC 6762): each
// device registers one instance of mdnsService whose SRV record carries the
// QUIC port and whose TXT record carries the full device ID (and the port
// again), and browses for the instances of the others.
const (
	mdnsService = "_drive-node._udp"
	mdnsTxtID   = "id"
	mdnsTxtPort = "port"
	// mdnsTxtInvite, when present, is the number of the open pairing
	// invite this device answers (Config.Invite).
	mdnsTxtInvite = "invite"
	mdnsPort      = 5353

	// mdnsDefaultInterval is Config.Interval when unset.
	mdnsDefaultInterval = 5 * time.Second
	// mdnsQueryInterval is the longest gap between two browse queries.
	// pion/mdns answers every query (no known-answer suppression), so a
	// peer that has just started is found within about this long.
	mdnsQueryInterval = time.Second
	// mdnsIdleIntervals is how many Intervals apart the checks are while
	// no peer is wanted (Config.Wanted): then discovery only answers, and
	// an interface change or a peer going missing can wait a little
	// longer to be noticed, or is told at once (Recheck).
	mdnsIdleIntervals = 6
	// mdnsAddrTTLIntervals is how many Intervals an address stays in a
	// peer's reports after it was last seen.
	mdnsAddrTTLIntervals = 3
)

// Found is one sighting of a peer on the LAN.
type Found struct {
	// ID is the device ID the peer announced. It is what the peer claims:
	// only the TLS handshake proves it.
	ID certs.DeviceID
	// Addrs are the addresses at which the peer announced its QUIC
	// listener, never empty and never shared with another call: IPv4
	// first, then IPv6 (a link-local IPv6 address always carries its
	// zone); within a family the address first seen most recently comes
	// first, so after a DHCP change the new address leads. An address
	// stays listed until it has not been seen for three Intervals (+2 s).
	Addrs []netip.AddrPort
	// Invite is the number of the open pairing invite announced with this
	// sighting, "" if none (Config.Invite).
	Invite string
}

// Config configures Start.
type Config struct {
	// ID is this device, announced in the TXT record; sightings of the
	// same ID (our own announcement) are never reported.
	ID certs.DeviceID
	// Port is this device's QUIC UDP port, announced in the SRV record
	// (and in TXT); 1–65535.
	Port int
	// Invite, if not "", is announced in the TXT record: this device holds
	// an open pairing invite with that number, answered on Port.
	Invite string
	// BrowseOnly announces nothing: the device only looks (Port is not
	// needed then). A joining device that has no listener of its own
	// browses so.
	BrowseOnly bool
	// Interval (default 5 s) is how often the set of usable interfaces
	// and their addresses is checked (every six Intervals while no peer
	// is wanted, see Wanted), mDNS being restarted on the new set when it
	// changed, and how often browsing starts over so that every
	// peer still answering is reported again even when nothing changed.
	// Browse queries go out every second (or every Interval if shorter),
	// so a peer that (re)starts is found within about a second.
	Interval time.Duration
	// Wanted reports whether peers must be looked for: false while every
	// paired device is connected. Browsing (a query every second) stops
	// then, and the interfaces and Wanted are checked only every six
	// Intervals, or at once when Recheck is called: an idle daemon is not
	// woken every few seconds. This device goes on answering, so a peer
	// that (re)starts still finds it at once and dials. While browsing,
	// Wanted is checked every Interval. Nil means always.
	Wanted func() bool
	// Logger receives discovery's logs; default slog.Default().
	Logger *slog.Logger
	// Clock times the Interval and dates sightings; default the system
	// clock. (mDNS queries go out on pion's own timer.)
	Clock clock.Clock
}

// discHooks are what a test replaces in a Service: pick chooses the
// interfaces; refreshed, when set, is called after each refresh with
// what discovery then runs.
type discHooks struct {
	pick      func() (mdnsIfaces, error)
	refreshed func(discState)
}

// discState is what a Service runs after a refresh.
type discState struct {
	ifaces   string        // key of the interface set mDNS runs on; "" when it does not run
	browsing bool          // a browse session is open
	restarts int           // times mDNS was started, the first included
	wait     time.Duration // until the next refresh, unless Recheck comes first
}

// Service announces this device over mDNS DNS-SD and reports the other
// drive-node devices on the LAN until Close.
//
// It uses every interface that is up, multicast-capable, not loopback and
// has an address (loopback only when there is no such interface), chosen
// explicitly and joined one by one, and sends each packet out of a named
// interface: it never depends on a default route, so it keeps working on a
// LAN whose internet uplink is gone. IPv4 is always used; IPv6 where the
// host has it.
type Service struct {
	cfg      Config
	log      *slog.Logger
	found    func(Found)
	hooks    discHooks
	clk      clock.Clock
	instance string // our DNS-SD instance name, unique per start
	host     string // our mDNS host name, without ".local"

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	// Owned by Start until the loop goroutine starts, then by
	// that goroutine alone.
	conn     *mdns.Conn
	browse   context.CancelFunc
	current  string // fingerprint of the interface set conn uses
	lastErr  string // last start failure logged, to log each only once
	starts   int    // times mDNS was started
	closeErr error  // set by the loop before done is closed

	// recheck asks the loop to refresh at once (Recheck).
	recheck kick.Signal

	// mu serialises calls of found and guards peers.
	mu    sync.Mutex
	peers map[certs.DeviceID]map[netip.AddrPort]mdnsSeen
}

// mdnsSeen is when an address of a peer was first and last seen.
type mdnsSeen struct{ first, last time.Time }

// mdnsIfaces is the interface set discovery runs on.
type mdnsIfaces struct {
	list     []net.Interface
	loopback bool   // list is the loopback fallback
	key      string // changes whenever an interface or address does
}

// Start starts announcing this device and browsing for others.
// It fails only on an invalid configuration: when no interface can be used
// yet (a machine that booted before its cable was plugged in) it logs that
// and keeps checking every Interval, starting as soon as one appears.
//
// found is called for every resolved sighting of another device, repeats
// included (the caller deduplicates): a peer is reported at least once per
// Interval while it answers, a newly started one within about a second,
// and a changed address or port as soon as it is seen (a peer notices its
// own new address within its Interval). Calls come from discovery's
// goroutines, one at a time; found holds up discovery while it runs, so it
// must return quickly and must not call Close. No call starts after Close
// returns.
//
// A Service ends when ctx ends or Close is called; Close must still be
// called to wait for it.
func Start(ctx context.Context, cfg Config, found func(Found)) (*Service, error) {
	return mdnsStart(ctx, cfg, found, discHooks{pick: mdnsPickInterfaces})
}

// mdnsStart is Start with the interface chooser and hooks as a
// parameter, for tests.
func mdnsStart(ctx context.Context, cfg Config, found func(Found), hooks discHooks) (*Service, error) {
	if cfg.ID.IsZero() {
		return nil, errors.New("discovery: no device ID")
	}
	if !cfg.BrowseOnly && (cfg.Port <= 0 || cfg.Port > 65535) {
		return nil, fmt.Errorf("discovery: port %d out of range", cfg.Port)
	}
	if found == nil {
		return nil, errors.New("discovery: nil found callback")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = mdnsDefaultInterval
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	// A random part makes every start a new instance, which browsers
	// report at once even when a peer restarted with the same address.
	var nonce [4]byte
	rand.Read(nonce[:])
	suffix := hex.EncodeToString(nonce[:])
	d := &Service{
		cfg:      cfg,
		log:      cfg.Logger,
		found:    found,
		hooks:    hooks,
		clk:      clock.Or(cfg.Clock),
		instance: cfg.ID.Short() + "-" + suffix,
		host:     "drive-node-" + strings.ToLower(cfg.ID.Short()) + "-" + suffix,
		done:     make(chan struct{}),
		peers:    map[certs.DeviceID]map[netip.AddrPort]mdnsSeen{},
	}
	d.ctx, d.cancel = context.WithCancel(ctx)
	d.refresh()
	go d.loop()
	return d, nil
}

// Close stops announcing and browsing and waits until discovery has
// stopped; found is not called after Close returns. It may be called more
// than once and returns the error of closing the mDNS sockets, if any.
func (d *Service) Close() error {
	d.cancel()
	<-d.done
	return d.closeErr
}

// Recheck has discovery look at once whether peers are wanted and at the
// interfaces, instead of at its next check: the caller knows that a peer
// went missing. It never blocks.
func (d *Service) Recheck() { d.recheck.Kick() }

func (d *Service) loop() {
	defer close(d.done)
	t := d.clk.NewTimer(d.wait())
	defer t.Stop()
	for {
		select {
		case <-d.ctx.Done():
			d.closeErr = d.stop()
			return
		case <-t.C():
		case <-d.recheck.C():
		}
		d.refresh()
		d.prune(d.clk.Now())
		t.Stop()
		select {
		case <-t.C(): // fired while refreshing: stale
		default:
		}
		t.Reset(d.wait())
	}
}

// wait is how long the loop sleeps after a refresh: an Interval while
// mDNS browses or cannot run yet, mdnsIdleIntervals of them while it only
// answers.
func (d *Service) wait() time.Duration {
	if d.conn != nil && d.browse == nil {
		return mdnsIdleIntervals * d.cfg.Interval
	}
	return d.cfg.Interval
}

// refresh restarts mDNS when the interface set changed (or it is not
// running) and otherwise starts browsing over.
func (d *Service) refresh() {
	if d.hooks.refreshed != nil {
		defer func() {
			d.hooks.refreshed(discState{ifaces: d.current, browsing: d.browse != nil, restarts: d.starts, wait: d.wait()})
		}()
	}
	ifs, err := d.hooks.pick()
	if err != nil {
		// Keep what runs: listing interfaces failing says nothing about
		// them.
		d.log.Debug("LAN discovery: checking interfaces", "err", err)
		if d.conn != nil {
			d.browseIfWanted()
		}
		return
	}
	if d.conn != nil && ifs.key == d.current {
		d.browseIfWanted()
		return
	}
	if d.conn != nil {
		d.log.Info("network interfaces changed; restarting LAN discovery", "was", d.current, "now", ifs.key)
		if cerr := d.stop(); cerr != nil {
			d.log.Debug("closing mDNS", "err", cerr)
		}
	}
	if err := d.startConn(ifs); err != nil {
		if msg := err.Error(); msg != d.lastErr {
			d.lastErr = msg
			d.log.Warn("LAN discovery cannot run yet; retrying", "err", err, "every", d.cfg.Interval.String())
		}
		return
	}
	d.lastErr = ""
	d.starts++
	d.current = ifs.key
	d.browseIfWanted()
	d.log.Info("LAN discovery running", "instance", d.instance, "interfaces", ifs.key)
}

// browseIfWanted starts browsing over if peers are wanted, and otherwise
// ends the browse session: with every peer connected the LAN stays quiet.
func (d *Service) browseIfWanted() {
	if d.cfg.Wanted == nil || d.cfg.Wanted() {
		d.startBrowse()
		return
	}
	if d.browse != nil {
		d.browse()
		d.browse = nil
		d.log.Debug("LAN discovery: every paired device is connected; browsing paused")
	}
}

// startBrowse (re)starts the browse session: a new session forgets what
// the previous one reported, so every peer still answering is reported
// again.
func (d *Service) startBrowse() {
	if d.browse != nil {
		d.browse()
	}
	bctx, cancel := context.WithCancel(d.ctx)
	d.browse = cancel
	if err := d.conn.Browse(bctx, mdnsService); err != nil {
		d.log.Debug("mDNS browse", "err", err)
	}
}

// stop closes the mDNS conn; no found call is running or starts after it.
func (d *Service) stop() error {
	if d.browse != nil {
		d.browse()
		d.browse = nil
	}
	d.current = ""
	if d.conn == nil {
		return nil
	}
	err := d.conn.Close()
	d.conn = nil
	if err != nil {
		return fmt.Errorf("discovery: close mDNS: %w", err)
	}
	return nil
}

// startConn opens the mDNS sockets and starts the responder and browser on
// ifs.
func (d *Service) startConn(ifs mdnsIfaces) error {
	if len(ifs.list) == 0 {
		return errors.New("discovery: no up, multicast-capable interface with an address")
	}
	// Several responders (a second drive-node, avahi, mDNSResponder) may
	// share port 5353: the sockets set address/port reuse.
	var p4 *ipv4.PacketConn
	var p6 *ipv6.PacketConn
	u4, err4 := mdnsListen(d.ctx, "udp4", netip.AddrPortFrom(netip.IPv4Unspecified(), mdnsPort))
	if err4 == nil {
		p4 = ipv4.NewPacketConn(u4)
	}
	u6, err6 := mdnsListen(d.ctx, "udp6", netip.AddrPortFrom(netip.IPv6Unspecified(), mdnsPort))
	if err6 == nil {
		p6 = ipv6.NewPacketConn(u6)
	}
	if p4 == nil && p6 == nil {
		return fmt.Errorf("discovery: mDNS socket: %w", errors.Join(err4, err6))
	}
	if p4 == nil {
		d.log.Debug("no IPv4 mDNS socket", "err", err4)
	}
	if p6 == nil {
		d.log.Debug("no IPv6 mDNS socket", "err", err6)
	}
	opts := []mdns.ServerOption{
		mdns.WithName(d.instance),
		mdns.WithInterfaces(ifs.list...),
		mdns.WithIncludeLoopback(ifs.loopback),
		mdns.WithLoggerFactory(mdnsLogFactory{d.log}),
		mdns.WithQueryInterval(min(mdnsQueryInterval, d.cfg.Interval)),
	}
	if !d.cfg.BrowseOnly {
		txt := []mdns.TXTEntry{
			mdns.NewTXTString(mdnsTxtID, d.cfg.ID.String()),
			mdns.NewTXTString(mdnsTxtPort, strconv.Itoa(d.cfg.Port)),
		}
		if d.cfg.Invite != "" {
			txt = append(txt, mdns.NewTXTString(mdnsTxtInvite, d.cfg.Invite))
		}
		opts = append(opts, mdns.WithLocalNames(d.host+".local"), mdns.WithService(mdns.ServiceInstance{
			Instance: d.instance,
			Service:  mdnsService,
			Host:     d.host + ".local.",
			Port:     uint16(d.cfg.Port),
			Text:     txt,
		}))
	}
	conn, err := mdns.NewServer(p4, p6, opts...)
	if err != nil {
		if u4 != nil {
			u4.Close()
		}
		if u6 != nil {
			u6.Close()
		}
		return fmt.Errorf("discovery: start mDNS on %s: %w", ifs.key, err)
	}
	conn.OnServiceDiscovered(d.onService)
	d.conn = conn
	return nil
}

// mdnsListen opens the mDNS port with address (and, where it exists, port)
// reuse.
func mdnsListen(ctx context.Context, network string, addr netip.AddrPort) (*net.UDPConn, error) {
	lc := net.ListenConfig{Control: reuseAddr}
	pc, err := lc.ListenPacket(ctx, network, addr.String())
	if err != nil {
		return nil, err
	}
	u, ok := pc.(*net.UDPConn)
	if !ok {
		pc.Close()
		return nil, fmt.Errorf("discovery: %s listener is a %T", network, pc)
	}
	return u, nil
}

// onService handles one resolved instance from pion's browse.
func (d *Service) onService(ev mdns.ServiceEvent) {
	id, port, invite, ok := mdnsParse(ev)
	if !ok || id == d.cfg.ID {
		return
	}
	addr, ok := mdnsUsable(ev.Addr)
	if !ok {
		return
	}
	ap := netip.AddrPortFrom(addr, port)
	now := d.clk.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ctx.Err() != nil {
		return
	}
	seen := d.peers[id]
	if seen == nil {
		seen = map[netip.AddrPort]mdnsSeen{}
		d.peers[id] = seen
	}
	s, known := seen[ap]
	if !known {
		s.first = now
		d.log.Debug("peer seen", "peer", id.Short(), "addr", ap.String(), "instance", ev.Instance.Instance)
	}
	s.last = now
	seen[ap] = s
	d.found(Found{ID: id, Addrs: mdnsOrder(seen, now, d.addrTTL()), Invite: invite})
}

func (d *Service) addrTTL() time.Duration {
	return mdnsAddrTTLIntervals*d.cfg.Interval + 2*mdnsQueryInterval
}

// prune forgets addresses not seen for addrTTL.
func (d *Service) prune(now time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for id, seen := range d.peers {
		for ap, s := range seen {
			if now.Sub(s.last) > d.addrTTL() {
				delete(seen, ap)
			}
		}
		if len(seen) == 0 {
			delete(d.peers, id)
		}
	}
}

// mdnsOrder returns the addresses of seen not older than ttl (dropping the
// others from seen): IPv4 first, then newest first sighting first.
func mdnsOrder(seen map[netip.AddrPort]mdnsSeen, now time.Time, ttl time.Duration) []netip.AddrPort {
	out := make([]netip.AddrPort, 0, len(seen))
	for ap, s := range seen {
		if now.Sub(s.last) > ttl {
			delete(seen, ap)
			continue
		}
		out = append(out, ap)
	}
	slices.SortFunc(out, func(a, b netip.AddrPort) int {
		if a4, b4 := a.Addr().Is4(), b.Addr().Is4(); a4 != b4 {
			if a4 {
				return -1
			}
			return 1
		}
		if c := seen[b].first.Compare(seen[a].first); c != 0 {
			return c
		}
		return a.Compare(b)
	})
	return out
}

// mdnsParse extracts the device ID, port and invite of an instance: the
// ID and invite from TXT, the port from SRV (from TXT when SRV has none).
func mdnsParse(ev mdns.ServiceEvent) (id certs.DeviceID, port uint16, invite string, ok bool) {
	haveID := false
	port = ev.Instance.Port
	for _, e := range ev.Instance.Text {
		switch {
		case strings.EqualFold(e.Key, mdnsTxtInvite):
			invite = string(e.Value)
		case strings.EqualFold(e.Key, mdnsTxtID):
			if p, err := certs.ParseDeviceID(string(e.Value)); err == nil {
				id, haveID = p, true
			}
		case strings.EqualFold(e.Key, mdnsTxtPort) && port == 0:
			if p, err := strconv.ParseUint(string(e.Value), 10, 16); err == nil {
				port = uint16(p)
			}
		}
	}
	return id, port, invite, haveID && !id.IsZero() && port != 0
}

// mdnsUsable returns a as an address to dial, or false when it cannot be
// one: unspecified, multicast, or link-local IPv6 without a zone.
func mdnsUsable(a netip.Addr) (netip.Addr, bool) {
	a = a.Unmap()
	switch {
	case !a.IsValid(), a.IsUnspecified(), a.IsMulticast():
		return netip.Addr{}, false
	case a.Is4():
		return a.WithZone(""), true
	case a.IsLinkLocalUnicast():
		return a, a.Zone() != ""
	default:
		return a.WithZone(""), true
	}
}

// mdnsPickInterfaces returns every interface that is up, multicast-capable,
// not loopback and has an address; when there is none, the loopback
// interfaces that are up and have an address.
func mdnsPickInterfaces() (mdnsIfaces, error) {
	all, err := net.Interfaces()
	if err != nil {
		return mdnsIfaces{}, fmt.Errorf("discovery: list network interfaces: %w", err)
	}
	var lan, loop mdnsIfaces
	loop.loopback = true
	for _, ifc := range all {
		if ifc.Flags&net.FlagUp == 0 {
			continue
		}
		isLoop := ifc.Flags&net.FlagLoopback != 0
		if !isLoop && ifc.Flags&net.FlagMulticast == 0 {
			continue
		}
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		var as []string
		for _, a := range addrs {
			var ip net.IP
			switch a := a.(type) {
			case *net.IPNet:
				ip = a.IP
			case *net.IPAddr:
				ip = a.IP
			}
			if na, ok := netip.AddrFromSlice(ip); ok {
				as = append(as, na.Unmap().String())
			}
		}
		if len(as) == 0 {
			continue
		}
		slices.Sort(as)
		desc := ifc.Name + "#" + strconv.Itoa(ifc.Index) + "=" + strings.Join(as, ",")
		set := &lan
		if isLoop {
			set = &loop
		}
		set.list = append(set.list, ifc)
		set.key = mdnsJoin(set.key, desc)
	}
	if len(lan.list) > 0 {
		return lan, nil
	}
	if len(loop.list) > 0 {
		loop.key = "loopback:" + loop.key
	}
	return loop, nil
}

func mdnsJoin(a, b string) string {
	if a == "" {
		return b
	}
	return a + " " + b
}

// mdnsLogFactory hands pion's logs to slog: pion logs every packet at
// debug level and every failed send as a warning, so its debug and trace
// go below slog's debug level, its info and warnings to debug, and only
// its errors to warn.
type mdnsLogFactory struct{ log *slog.Logger }

func (f mdnsLogFactory) NewLogger(scope string) logging.LeveledLogger {
	return mdnsLog{f.log.With("pion", scope)}
}

type mdnsLog struct{ log *slog.Logger }

const mdnsLevelTrace = slog.LevelDebug - 4

func (l mdnsLog) at(level slog.Level, msg string) {
	if l.log.Enabled(context.Background(), level) {
		l.log.Log(context.Background(), level, "mdns: "+msg)
	}
}

func (l mdnsLog) atf(level slog.Level, format string, args ...any) {
	if l.log.Enabled(context.Background(), level) {
		l.log.Log(context.Background(), level, "mdns: "+fmt.Sprintf(format, args...))
	}
}

func (l mdnsLog) Trace(msg string)                  { l.at(mdnsLevelTrace, msg) }
func (l mdnsLog) Tracef(format string, args ...any) { l.atf(mdnsLevelTrace, format, args...) }
func (l mdnsLog) Debug(msg string)                  { l.at(mdnsLevelTrace, msg) }
func (l mdnsLog) Debugf(format string, args ...any) { l.atf(mdnsLevelTrace, format, args...) }
func (l mdnsLog) Info(msg string)                   { l.at(slog.LevelDebug, msg) }
func (l mdnsLog) Infof(format string, args ...any)  { l.atf(slog.LevelDebug, format, args...) }
func (l mdnsLog) Warn(msg string)                   { l.at(slog.LevelDebug, msg) }
func (l mdnsLog) Warnf(format string, args ...any)  { l.atf(slog.LevelDebug, format, args...) }
func (l mdnsLog) Error(msg string)                  { l.at(slog.LevelWarn, msg) }
func (l mdnsLog) Errorf(format string, args ...any) { l.atf(slog.LevelWarn, format, args...) }
