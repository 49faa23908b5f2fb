//go:build !windows

// The two-host test needs package netlab (network namespaces), which does
// not build on Windows; so this file is not built there.

package discovery

import (
	"bufio"
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/drive-node/drive-node/certs"
	"github.com/drive-node/drive-node/internal/clock"
	"github.com/drive-node/drive-node/internal/netlab"
	"github.com/pion/mdns/v2"
)

// discTestID returns a device ID derived from name.
func discTestID(name string) certs.DeviceID { return certs.DeviceID(sha256.Sum256([]byte(name))) }

// discRecorder collects what a Service reports.
type discRecorder struct {
	mu    sync.Mutex
	calls int
	last  map[certs.DeviceID][]netip.AddrPort
	all   map[certs.DeviceID]map[netip.AddrPort]bool
}

func newDiscRecorder() *discRecorder {
	return &discRecorder{last: map[certs.DeviceID][]netip.AddrPort{}, all: map[certs.DeviceID]map[netip.AddrPort]bool{}}
}

func (r *discRecorder) found(f Found) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	r.last[f.ID] = f.Addrs
	if r.all[f.ID] == nil {
		r.all[f.ID] = map[netip.AddrPort]bool{}
	}
	for _, a := range f.Addrs {
		r.all[f.ID][a] = true
	}
}

// has reports whether id was reported with an address on port (and, when
// addr is valid, that address).
func (r *discRecorder) has(id certs.DeviceID, addr netip.Addr, port uint16) (bool, string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for a := range r.all[id] {
		if a.Port() == port && (!addr.IsValid() || a.Addr() == addr) {
			return true, ""
		}
	}
	return false, fmt.Sprintf("reports so far: %v", r.last)
}

func (r *discRecorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls
}

func discTestLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", t.Name())
	}
	return slog.New(slog.DiscardHandler)
}

func discStart(t *testing.T, name string, port int, pick func() (mdnsIfaces, error)) (*Service, *discRecorder, certs.DeviceID) {
	t.Helper()
	id := discTestID(name)
	rec := newDiscRecorder()
	cfg := Config{ID: id, Port: port, Interval: 500 * time.Millisecond, Logger: discTestLogger(t).With("node", name)}
	d, err := mdnsStart(t.Context(), cfg, rec.found, discHooks{pick: pick})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d, rec, id
}

// discLoopbackOnly picks the loopback interfaces alone.
func discLoopbackOnly() (mdnsIfaces, error) {
	all, err := net.Interfaces()
	if err != nil {
		return mdnsIfaces{}, err
	}
	ifs := mdnsIfaces{loopback: true, key: "test-loopback"}
	for _, ifc := range all {
		if ifc.Flags&net.FlagLoopback != 0 && ifc.Flags&net.FlagUp != 0 {
			ifs.list = append(ifs.list, ifc)
		}
	}
	return ifs, nil
}

// TestDiscoveryFindsEachOther runs two Services in one process on the
// interfaces Start picks itself: they share port 5353 and each
// reports the other, never itself.
func TestDiscoveryFindsEachOther(t *testing.T) {
	rec := map[string]*discRecorder{}
	ids := map[string]certs.DeviceID{}
	ds := map[string]*Service{}
	for i, name := range []string{"a", "b"} {
		ids[name] = discTestID(name)
		rec[name] = newDiscRecorder()
		d, err := Start(t.Context(), Config{ID: ids[name], Port: 41001 + i, Interval: 500 * time.Millisecond, Logger: discTestLogger(t).With("node", name)}, rec[name].found)
		if err != nil {
			t.Fatal(err)
		}
		ds[name] = d
		t.Cleanup(func() { d.Close() })
	}
	took := netlab.Eventually(t, 10*time.Second, "a finds b", func() (bool, string) { return rec["a"].has(ids["b"], netip.Addr{}, 41002) })
	netlab.Eventually(t, 10*time.Second, "b finds a", func() (bool, string) { return rec["b"].has(ids["a"], netip.Addr{}, 41001) })
	t.Logf("found after %v", took)
	for name, r := range rec {
		r.mu.Lock()
		if self := r.all[ids[name]]; len(self) > 0 {
			t.Errorf("%s reported itself: %v", name, self)
		}
		local := map[netip.Addr]bool{}
		addrs, _ := net.InterfaceAddrs()
		for _, a := range addrs {
			if p, err := netip.ParsePrefix(a.String()); err == nil {
				local[p.Addr()] = true
			}
		}
		for id, as := range r.last {
			if len(as) == 0 {
				t.Errorf("%s: empty Addrs for %s", name, id.Short())
			}
			for i, a := range as {
				if !local[a.Addr().WithZone("")] {
					t.Errorf("%s: reported %v, not an address of this host", name, a)
				}
				if a.Addr().Is6() && a.Addr().IsLinkLocalUnicast() && a.Addr().Zone() == "" {
					t.Errorf("%s: link-local %v without zone", name, a)
				}
				if i > 0 && a.Addr().Is4() && as[i-1].Addr().Is6() {
					t.Errorf("%s: IPv6 before IPv4 in %v", name, as)
				}
			}
		}
		r.mu.Unlock()
	}

	// Reports repeat (the caller deduplicates): at least once per
	// Interval while the peer answers.
	n := rec["a"].count()
	netlab.Eventually(t, 5*time.Second, "a reports b again", func() (bool, string) {
		return rec["a"].count() >= n+2, fmt.Sprintf("%d reports, was %d", rec["a"].count(), n)
	})

	// After Close no report arrives; Close is idempotent. A sighting
	// that pion hands over after Close (its goroutines may still hold
	// one) is dropped.
	if err := ds["a"].Close(); err != nil {
		t.Errorf("close: %v", err)
	}
	if err := ds["a"].Close(); err != nil {
		t.Errorf("second close: %v", err)
	}
	n = rec["a"].count()
	ds["a"].onService(mdns.ServiceEvent{
		Instance: mdns.ServiceInstance{Port: 41002, Text: []mdns.TXTEntry{mdns.NewTXTString(mdnsTxtID, ids["b"].String())}},
		Addr:     netip.MustParseAddr("127.0.0.1"),
	})
	if got := rec["a"].count(); got != n {
		t.Errorf("%d reports after Close", got-n)
	}
	if ds["a"].conn != nil {
		t.Error("mDNS still open after Close")
	}
}

// TestDiscoveryLoopback: with nothing but loopback, two instances in one
// process still find each other (the fallback of a machine with no LAN).
func TestDiscoveryLoopback(t *testing.T) {
	_, recA, idA := discStart(t, "lo-a", 42001, discLoopbackOnly)
	_, recB, idB := discStart(t, "lo-b", 42002, discLoopbackOnly)
	lo := netip.MustParseAddr("127.0.0.1")
	netlab.Eventually(t, 10*time.Second, "a finds b on loopback", func() (bool, string) { return recA.has(idB, lo, 42002) })
	netlab.Eventually(t, 10*time.Second, "b finds a on loopback", func() (bool, string) { return recB.has(idA, lo, 42001) })
}

// TestDiscoveryRestartedPeer: a peer that stops and starts again is
// reported again within about a second, even at the same address and port
// and long before the browser's Interval.
func TestDiscoveryRestartedPeer(t *testing.T) {
	recA := newDiscRecorder()
	a, err := mdnsStart(t.Context(), Config{ID: discTestID("r-a"), Port: 43001, Logger: discTestLogger(t)}, recA.found, discHooks{pick: discLoopbackOnly})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	idB := discTestID("r-b")
	start := func() *Service {
		d, err := mdnsStart(t.Context(), Config{ID: idB, Port: 43002, Interval: time.Hour, Logger: discTestLogger(t)}, func(Found) {}, discHooks{pick: discLoopbackOnly})
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	b := start()
	netlab.Eventually(t, 10*time.Second, "a finds b", func() (bool, string) { return recA.has(idB, netip.Addr{}, 43002) })
	b.Close()
	n := recA.count()
	b = start()
	defer b.Close()
	// a's Interval is the default 5 s: b is found by a's next query.
	took := netlab.Eventually(t, 2*time.Second, "a finds restarted b", func() (bool, string) {
		return recA.count() > n, "no new report"
	})
	t.Logf("restarted peer reported after %v", took)
}

// discStates collects what a Service runs after each refresh.
type discStates chan discState

// next returns the state after the next refresh.
func (c discStates) next(t *testing.T, what string) discState {
	t.Helper()
	select {
	case st := <-c:
		return st
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: no refresh", what)
		return discState{}
	}
}

// discStartFake starts a Service on loopback whose Interval runs on a
// fake clock, and returns its states after each refresh; the one after
// the refresh at start has been taken.
func discStartFake(t *testing.T, cfg Config, rec *discRecorder, pick func() (mdnsIfaces, error)) (*clock.Fake, discStates, discState) {
	t.Helper()
	clk, states, st, _ := discStartFakeService(t, cfg, rec, pick)
	return clk, states, st
}

// discStartFakeService is discStartFake that also returns the Service.
func discStartFakeService(t *testing.T, cfg Config, rec *discRecorder, pick func() (mdnsIfaces, error)) (*clock.Fake, discStates, discState, *Service) {
	t.Helper()
	clk := clock.NewFake(time.Unix(1_000_000, 0))
	cfg.Clock = clk
	states := make(discStates, 64)
	d, err := mdnsStart(t.Context(), cfg, rec.found, discHooks{pick: pick, refreshed: func(s discState) { states <- s }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return clk, states, states.next(t, "start"), d
}

// TestDiscoveryInterfacesAppear: started with no usable interface,
// discovery does not fail, checks again at every Interval and starts once
// one appears; a changed interface set restarts it.
func TestDiscoveryInterfacesAppear(t *testing.T) {
	var phase atomic.Int32
	var picks atomic.Int32
	pick := func() (mdnsIfaces, error) {
		picks.Add(1)
		switch phase.Load() {
		case 0:
			return mdnsIfaces{}, nil
		default:
			ifs, err := discLoopbackOnly()
			ifs.key = "phase " + strconv.Itoa(int(phase.Load()))
			return ifs, err
		}
	}
	recA := newDiscRecorder()
	const interval = 5 * time.Second
	cfgA := Config{ID: discTestID("late-a"), Port: 44001, Interval: interval, Logger: discTestLogger(t).With("node", "late-a")}
	clk, states, st := discStartFake(t, cfgA, recA, pick)
	_, _, idB := discStart(t, "late-b", 44002, discLoopbackOnly)
	for i := range 3 {
		if st.ifaces != "" || st.restarts != 0 {
			t.Fatalf("refresh %d with no interface: runs %+v", i, st)
		}
		advanceArmed(t, clk, interval)
		st = states.next(t, fmt.Sprintf("interval %d", i+1))
	}
	if n := picks.Load(); n != 4 {
		t.Fatalf("interfaces looked at %d times at start and over 3 Intervals, want 4", n)
	}
	if n := recA.count(); n != 0 {
		t.Fatalf("a reported %d sightings with no interface", n)
	}
	phase.Store(1)
	advanceArmed(t, clk, interval)
	if st = states.next(t, "interface appeared"); st.ifaces != "phase 1" || st.restarts != 1 || !st.browsing {
		t.Fatalf("once an interface appeared: %+v, want running and browsing on phase 1", st)
	}
	netlab.Eventually(t, 10*time.Second, "a finds b once an interface appears", func() (bool, string) { return recA.has(idB, netip.Addr{}, 44002) })
	phase.Store(2) // "an address changed": a restarts and keeps finding b
	n := recA.count()
	advanceArmed(t, clk, interval)
	if st = states.next(t, "interfaces changed"); st.ifaces != "phase 2" || st.restarts != 2 || !st.browsing {
		t.Fatalf("once the interfaces changed: %+v, want restarted and browsing on phase 2", st)
	}
	netlab.Eventually(t, 10*time.Second, "a finds b after restarting", func() (bool, string) {
		return recA.count() > n, fmt.Sprintf("%d reports, was %d", recA.count(), n)
	})
}

func TestDiscoveryConfigErrors(t *testing.T) {
	id := discTestID("x")
	for _, tc := range []struct {
		cfg   Config
		found func(Found)
	}{
		{Config{Port: 1}, func(Found) {}},
		{Config{ID: id}, func(Found) {}},
		{Config{ID: id, Port: 70000}, func(Found) {}},
		{Config{ID: id, Port: 1}, nil},
	} {
		if d, err := Start(t.Context(), tc.cfg, tc.found); err == nil {
			d.Close()
			t.Errorf("%+v: no error", tc.cfg)
		}
	}
}

func TestDiscoveryParseAndOrder(t *testing.T) {
	id := discTestID("p")
	ev := mdns.ServiceEvent{Instance: mdns.ServiceInstance{Port: 7, Text: []mdns.TXTEntry{
		mdns.NewTXTString("ID", id.String()), mdns.NewTXTString("port", "9"), mdns.NewTXTString("invite", "42"),
	}}}
	if got, port, invite, ok := mdnsParse(ev); !ok || got != id || port != 7 || invite != "42" {
		t.Errorf("parse: %v %d %q %v", got.Short(), port, invite, ok)
	}
	ev.Instance.Port = 0
	if _, port, _, ok := mdnsParse(ev); !ok || port != 9 {
		t.Errorf("TXT port: %d %v", port, ok)
	}
	ev.Instance.Text = ev.Instance.Text[1:]
	if _, _, _, ok := mdnsParse(ev); ok {
		t.Error("parsed an instance without ID")
	}

	for in, want := range map[string]string{
		"10.0.0.1":          "10.0.0.1",
		"::ffff:10.0.0.1":   "10.0.0.1",
		"fe80::1%eth0":      "fe80::1%eth0",
		"fe80::1":           "",
		"2001:db8::1":       "2001:db8::1",
		"0.0.0.0":           "",
		"224.0.0.251":       "",
		"fd00::1%eth0":      "fd00::1",
		"127.0.0.1":         "127.0.0.1",
		"ff02::fb%eth0":     "",
		"2001:db8::2%wlan0": "2001:db8::2",
	} {
		a, ok := mdnsUsable(netip.MustParseAddr(in))
		if (want == "") == ok || (ok && a.String() != want) {
			t.Errorf("usable(%s) = %v %v, want %q", in, a, ok, want)
		}
	}

	now := time.Now()
	ap := netip.MustParseAddrPort
	seen := map[netip.AddrPort]mdnsSeen{
		ap("[fe80::1%eth0]:5"): {now.Add(-time.Second), now},
		ap("10.0.0.1:5"):       {now.Add(-10 * time.Second), now},
		ap("10.0.0.9:5"):       {now.Add(-time.Second), now}, // the new DHCP lease
		ap("10.0.0.3:5"):       {now.Add(-time.Hour), now.Add(-time.Minute)},
	}
	got := fmt.Sprint(mdnsOrder(seen, now, 30*time.Second))
	if want := "[10.0.0.9:5 10.0.0.1:5 [fe80::1%eth0]:5]"; got != want {
		t.Errorf("order: %s, want %s", got, want)
	}
	if _, ok := seen[ap("10.0.0.3:5")]; ok {
		t.Error("stale address kept")
	}
}

// TestDiscoveryHelperProcess is not a test: TestDiscoveryTwoHosts runs the
// test binary with it inside a network namespace, where it runs a
// Discovery and prints one line per report: FOUND <id> <addr> <addr>...
func TestDiscoveryHelperProcess(t *testing.T) {
	if os.Getenv("DISC_HELPER") != "1" {
		t.Skip("helper process for TestDiscoveryTwoHosts")
	}
	id, err := certs.ParseDeviceID(os.Getenv("DISC_ID"))
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(os.Getenv("DISC_PORT"))
	out := bufio.NewWriter(os.Stdout)
	var mu sync.Mutex
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	d, err := Start(context.Background(), Config{ID: id, Port: port, Interval: 500 * time.Millisecond, Logger: log}, func(f Found) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprint(out, "FOUND ", f.ID)
		for _, a := range f.Addrs {
			fmt.Fprint(out, " ", a)
		}
		fmt.Fprintln(out)
		out.Flush()
	})
	if err != nil {
		t.Fatal(err)
	}
	fmt.Println("STARTED")
	// Runs until the test stops it; the bound only keeps an orphan from
	// running for ever.
	stop, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer cancel()
	select {
	case <-stop.Done():
	case <-time.After(2 * time.Minute):
	}
	d.Close()
}

// discHelperFound returns the addresses process p reported for id, in the
// reports that came after the first skip lines of its log, first address
// of each report first.
func discHelperFound(p *netlab.Process, id certs.DeviceID, skip int) (first []netip.AddrPort, lines int) {
	for _, l := range strings.Split(p.Log(), "\n") {
		f := strings.Fields(l)
		if len(f) < 3 || f[0] != "FOUND" {
			continue
		}
		lines++
		if lines <= skip || f[1] != id.String() {
			continue
		}
		if a, err := netip.ParseAddrPort(f[2]); err == nil {
			first = append(first, a)
		}
	}
	return first, lines
}

// TestDiscoveryTwoHosts runs discovery on two hosts of a netlab LAN: each
// finds the other at its LAN address, also after the internet (every
// default route) is gone, also when started with no default route, and
// after a host's address changes.
func TestDiscoveryTwoHosts(t *testing.T) {
	if testing.Short() {
		t.Skip("network namespaces")
	}
	lab := netlab.New(t, 2)
	h := []*netlab.Host{lab.Host(0), lab.Host(1)}
	start := func(host *netlab.Host, name string, port int) (*netlab.Process, certs.DeviceID) {
		id := discTestID(name)
		p := host.Start(t, "env", "DISC_HELPER=1", "DISC_ID="+id.String(), "DISC_PORT="+strconv.Itoa(port),
			os.Args[0], "-test.run=^TestDiscoveryHelperProcess$", "-test.v")
		return p, id
	}
	// finds waits until p has reported id with want (at least) as its
	// first address in a report that came after skip reports.
	finds := func(p *netlab.Process, id certs.DeviceID, want netip.AddrPort, skip int, what string) {
		t.Helper()
		took := netlab.Eventually(t, 10*time.Second, what, func() (bool, string) {
			got, _ := discHelperFound(p, id, skip)
			for _, a := range got {
				if a == want {
					return true, ""
				}
			}
			return false, fmt.Sprintf("want %v first, reports: %v\nlog:\n%s", want, got, p.Log())
		})
		t.Logf("%s: %v", what, took)
	}
	at := func(host *netlab.Host, port int) netip.AddrPort { return netip.AddrPortFrom(host.Addr, uint16(port)) }

	p0, id0 := start(h[0], "host0", 50000)
	p1, id1 := start(h[1], "host1", 50001)
	finds(p0, id1, at(h[1], 50001), 0, "host0 finds host1")
	finds(p1, id0, at(h[0], 50000), 0, "host1 finds host0")
	if strings.Contains(p0.Log(), "FOUND "+id0.String()) || strings.Contains(p1.Log(), "FOUND "+id1.String()) {
		t.Errorf("a host reported itself")
	}

	// The internet goes; the LAN stays.
	lab.InternetDown(t)
	for _, host := range h {
		if r := host.Run(t, "ip", "-4", "route", "show", "default"); strings.TrimSpace(r) != "" {
			t.Fatalf("%s still has a default route: %s", host.Name, r)
		}
		if r := host.Run(t, "ip", "-6", "route", "show", "default"); strings.TrimSpace(r) != "" {
			t.Fatalf("%s still has an IPv6 default route: %s", host.Name, r)
		}
	}
	_, n0 := discHelperFound(p0, id1, 0)
	_, n1 := discHelperFound(p1, id0, 0)
	finds(p0, id1, at(h[1], 50001), n0, "running host0 keeps finding host1 without default route")
	finds(p1, id0, at(h[0], 50000), n1, "running host1 keeps finding host0 without default route")

	// Discovery started with no default route at all; a second responder
	// on each host shares port 5353 with the first.
	q0, idq0 := start(h[0], "host0-late", 50010)
	q1, idq1 := start(h[1], "host1-late", 50011)
	finds(q0, idq1, at(h[1], 50011), 0, "host0-late finds host1-late without default route")
	finds(q1, idq0, at(h[0], 50010), 0, "host1-late finds host0-late without default route")
	finds(q0, id1, at(h[1], 50001), 0, "host0-late finds host1")
	finds(p1, idq0, at(h[0], 50010), 0, "host1 finds host0-late")

	// host1's address changes (a new DHCP lease): host0 reports the new
	// one, first.
	newAddr := netip.MustParseAddr("10.99.0.77")
	// (Deleting the old address after adding the new one in the same
	// subnet would take the new, secondary, one with it.)
	h[1].Run(t, "ip", "addr", "del", h[1].Addr.String()+"/24", "dev", h[1].Iface)
	h[1].Run(t, "ip", "addr", "add", newAddr.String()+"/24", "dev", h[1].Iface)
	_, n0 = discHelperFound(p0, id1, 0)
	finds(p0, id1, netip.AddrPortFrom(newAddr, 50001), n0, "host0 finds host1 at its new address")
}

// TestDiscoveryNotWanted: a device that wants no peers (all connected)
// stops browsing but still answers, so a peer that looks finds it. It
// then checks only every mdnsIdleIntervals Intervals, an idle daemon
// being woken that much less; Recheck makes it look at once, and once it
// wants peers again it browses and finds them. a's Interval runs on a
// fake clock: after each of four idle checks it must not browse, and
// the clock must not have to move for Recheck to take effect.
func TestDiscoveryNotWanted(t *testing.T) {
	var wanted atomic.Bool
	var asked atomic.Int32
	recA := newDiscRecorder()
	const interval = 5 * time.Second
	cfgA := Config{ID: discTestID("nw-a"), Port: 44001, Interval: interval,
		Wanted: func() bool { asked.Add(1); return wanted.Load() }, Logger: discTestLogger(t).With("node", "nw-a")}
	clk, states, st, d := discStartFakeService(t, cfgA, recA, discLoopbackOnly)
	idle := mdnsIdleIntervals * interval
	if st.ifaces == "" || st.browsing || st.wait != idle {
		t.Fatalf("at start: %+v, want running, not browsing, next check in %v", st, idle)
	}
	_, recB, idB := discStart(t, "nw-b", 44002, discLoopbackOnly)
	lo := netip.MustParseAddr("127.0.0.1")
	netlab.Eventually(t, 10*time.Second, "b finds a, which answers without browsing", func() (bool, string) {
		return recB.has(cfgA.ID, lo, 44001)
	})
	for i := range 4 {
		advanceArmed(t, clk, idle)
		if st = states.next(t, fmt.Sprintf("idle check %d", i+1)); st.browsing || st.restarts != 1 || st.wait != idle {
			t.Fatalf("idle check %d with no peer wanted: %+v, want running once, not browsing, next in %v", i+1, st, idle)
		}
	}
	if n := asked.Load(); n != 5 {
		t.Fatalf("Wanted asked %d times at start and over 4 idle checks, want 5", n)
	}
	if ok, _ := recA.has(idB, lo, 44002); ok {
		t.Fatal("a found b while it wanted no peers: it kept browsing")
	}
	wanted.Store(true)
	d.Recheck()
	if st = states.next(t, "peers wanted"); !st.browsing || st.wait != interval {
		t.Fatalf("peers wanted again: %+v, want browsing, next check in %v", st, interval)
	}
	netlab.Eventually(t, 5*time.Second, "a finds b once it wants peers", func() (bool, string) { return recA.has(idB, lo, 44002) })
}

// advanceArmed moves clk on by d once the Service's loop waits on it. The
// refreshed hook runs before the loop re-arms its timer, so a move made
// as soon as a state arrives could come before the timer exists and be
// missed: the test then waited for a refresh that never came.
func advanceArmed(t *testing.T, clk *clock.Fake, d time.Duration) {
	t.Helper()
	for {
		n, armed := clk.Armed()
		if n > 0 {
			clk.Advance(d)
			return
		}
		select {
		case <-armed:
		case <-time.After(10 * time.Second):
			t.Fatal("the discovery loop never waited on the clock")
		}
	}
}
