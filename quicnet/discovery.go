package quicnet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/drive-node/drive-node/certs"
	"github.com/pion/logging"
	"github.com/pion/mdns/v2"
	"golang.org/x/net/ipv4"
)

// ServiceType is the DNS-SD service drive-node announces and browses.
const ServiceType = "_drive-node._udp"

// txtID is the TXT key carrying the full device ID.
const txtID = "id"

// Found is one sighting of a peer on the LAN.
type Found struct {
	ID    certs.DeviceID
	Addrs []netip.AddrPort // where its QUIC listener answers
}

// DiscoveryConfig configures StartDiscovery.
type DiscoveryConfig struct {
	// ID is announced in the TXT record.
	ID certs.DeviceID
	// Port is the QUIC UDP port announced in the SRV record.
	Port int
	// Interval is how often the interface set is checked; default 10 s.
	Interval time.Duration
	Logger   *slog.Logger
}

// Discovery announces this device over mDNS DNS-SD and reports others
// until Close. It uses every up, multicast-capable interface with an IPv4
// address, chosen explicitly, so it works on a LAN with no default route;
// when the set of interfaces or addresses changes it starts over on the
// new set.
type Discovery struct {
	cfg    DiscoveryConfig
	log    *slog.Logger
	found  func(Found)
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	conn    *mdns.Conn
	browse  context.CancelFunc
	ifaceID string // fingerprint of the interfaces in use
}

// StartDiscovery starts announcing and browsing; when no interface can be
// used yet it keeps trying every Interval. found is called for
// every resolved sighting (repeats included; the caller deduplicates) from
// discovery's goroutines and must return quickly.
func StartDiscovery(ctx context.Context, cfg DiscoveryConfig, found func(Found)) (*Discovery, error) {
	if cfg.Interval <= 0 {
		cfg.Interval = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	d := &Discovery{cfg: cfg, log: cfg.Logger, found: found, done: make(chan struct{})}
	d.ctx, d.cancel = context.WithCancel(ctx)
	// A network that is not up yet (a board that booted before its
	// cable was plugged in) is not an error: discovery starts when it can.
	if err := d.refresh(); err != nil {
		d.log.Warn("LAN discovery not running yet; retrying", "err", err, "every", cfg.Interval.String())
	}
	go d.loop()
	return d, nil
}

// Close stops announcing and browsing.
func (d *Discovery) Close() error {
	d.cancel()
	<-d.done
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.stopLocked()
}

func (d *Discovery) loop() {
	defer close(d.done)
	t := time.NewTicker(d.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-d.ctx.Done():
			return
		case <-t.C:
			if err := d.refresh(); err != nil {
				d.log.Warn("LAN discovery restart failed", "err", err)
			}
		}
	}
}

// discInterfaces returns the interfaces to use and a fingerprint of them
// and their addresses. Loopback is used only when there is nothing else.
func discInterfaces() ([]net.Interface, string, error) {
	all, err := net.Interfaces()
	if err != nil {
		return nil, "", fmt.Errorf("quicnet: list interfaces: %w", err)
	}
	var use, loop []net.Interface
	var fp []string
	for _, ifc := range all {
		if ifc.Flags&net.FlagUp == 0 {
			continue
		}
		addrs, _ := ifc.Addrs()
		var v4 []string
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil {
				v4 = append(v4, ipn.IP.String())
			}
		}
		if len(v4) == 0 {
			continue
		}
		switch {
		case ifc.Flags&net.FlagLoopback != 0:
			loop = append(loop, ifc)
		case ifc.Flags&net.FlagMulticast != 0:
			use = append(use, ifc)
			fp = append(fp, ifc.Name+"="+strings.Join(v4, ","))
		}
	}
	if len(use) == 0 {
		use = loop
		fp = append(fp, "loopback")
	}
	slices.Sort(fp)
	return use, strings.Join(fp, ";"), nil
}

// refresh (re)starts the mDNS conn when the interfaces changed.
func (d *Discovery) refresh() error {
	ifaces, fp, err := discInterfaces()
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if fp == d.ifaceID && d.conn != nil {
		return nil
	}
	d.stopLocked()
	d.ifaceID = ""
	if len(ifaces) == 0 {
		return errors.New("quicnet: no interface with an IPv4 address for LAN discovery")
	}
	conn, err := d.start(ifaces)
	if err != nil {
		return err
	}
	d.conn, d.ifaceID = conn, fp
	bctx, cancel := context.WithCancel(d.ctx)
	d.browse = cancel
	go func() {
		if err := conn.Browse(bctx, ServiceType); err != nil && bctx.Err() == nil {
			d.log.Warn("LAN discovery browse stopped", "err", err)
		}
	}()
	d.log.Info("LAN discovery running", "interfaces", fp)
	return nil
}

func (d *Discovery) stopLocked() error {
	if d.browse != nil {
		d.browse()
		d.browse = nil
	}
	if d.conn == nil {
		return nil
	}
	err := d.conn.Close()
	d.conn = nil
	return err
}

func (d *Discovery) start(ifaces []net.Interface) (*mdns.Conn, error) {
	udp, err := listenMulticast(d.ctx)
	if err != nil {
		return nil, fmt.Errorf("quicnet: mDNS socket: %w", err)
	}
	host := "drive-node-" + strings.ToLower(d.cfg.ID.Short())
	loopback := len(ifaces) > 0 && ifaces[0].Flags&net.FlagLoopback != 0
	lf := logging.NewDefaultLoggerFactory()
	lf.DefaultLogLevel = logging.LogLevelDisabled
	conn, err := mdns.NewServer(ipv4.NewPacketConn(udp), nil,
		mdns.WithInterfaces(ifaces...),
		mdns.WithIncludeLoopback(loopback),
		mdns.WithLocalNames(host+".local"),
		mdns.WithLoggerFactory(lf),
		mdns.WithQueryInterval(time.Second),
		mdns.WithService(mdns.ServiceInstance{
			Instance: host,
			Service:  ServiceType,
			Host:     host + ".local.",
			Port:     uint16(d.cfg.Port),
			Text:     []mdns.TXTEntry{mdns.NewTXTString(txtID, d.cfg.ID.String())},
		}),
	)
	if err != nil {
		udp.Close()
		return nil, fmt.Errorf("quicnet: mDNS: %w", err)
	}
	conn.OnServiceDiscovered(d.onService)
	return conn, nil
}

func (d *Discovery) onService(ev mdns.ServiceEvent) {
	var id certs.DeviceID
	ok := false
	for _, e := range ev.Instance.Text {
		if strings.EqualFold(e.Key, txtID) {
			if parsed, err := certs.ParseDeviceID(string(e.Value)); err == nil {
				id, ok = parsed, true
			}
		}
	}
	if !ok || id == d.cfg.ID || !ev.Addr.IsValid() || ev.Instance.Port == 0 {
		return
	}
	d.found(Found{ID: id, Addrs: []netip.AddrPort{netip.AddrPortFrom(ev.Addr.Unmap(), ev.Instance.Port)}})
}

// listenMulticast opens the mDNS port with address reuse, so several
// responders (another drive-node, avahi) can share it.
func listenMulticast(ctx context.Context) (*net.UDPConn, error) {
	lc := net.ListenConfig{Control: reuseAddr}
	pc, err := lc.ListenPacket(ctx, "udp4", mdns.DefaultAddressIPv4)
	if err != nil {
		return nil, err
	}
	return pc.(*net.UDPConn), nil
}
