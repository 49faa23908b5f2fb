//go:build linux

// Package netlab builds a LAN inside one machine for drive-node's
// end-to-end tests: each host is a network namespace whose veth is plugged
// into a bridge living in a "switch" namespace of its own, and a "gateway"
// namespace on the same bridge plays the internet uplink. Only addresses
// inside the namespaces it creates (10.99.0.0/24) are used, and everything
// is removed when the test ends, also when it fails.
//
// New skips the test when namespaces cannot be made, except when CI=true:
// then it fails, so CI never passes by skipping.
package netlab

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// Lab is a switch, a gateway and some hosts.
type Lab struct {
	prefix string
	sw     string // switch namespace
	gw     string // gateway namespace
	hosts  []*Host
	extra  int // addresses given out by AddAddrs
}

// Host is one machine on the LAN.
type Host struct {
	// Name is the host's network namespace.
	Name string
	// Addr is the host's LAN address.
	Addr netip.Addr
	// Iface is the host's LAN interface inside its namespace.
	Iface string
	// port is the switch-side end of the host's veth.
	port string
	lab  *Lab
}

var labCounter atomic.Int32

const gatewayAddr = "10.99.0.254"

// New builds a lab with n hosts, 10.99.0.1 … 10.99.0.n, each with a
// default route to the gateway.
func New(t testing.TB, n int) *Lab {
	t.Helper()
	if err := usable(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("netlab: network namespaces are required in CI: %v", err)
		}
		t.Skipf("netlab: network namespaces unavailable (run as root, or CI=true to fail instead): %v", err)
	}
	id := fmt.Sprintf("%d%d", os.Getpid()%100000, labCounter.Add(1))
	l := &Lab{prefix: "dn" + id, sw: "dn" + id + "sw", gw: "dn" + id + "gw"}
	t.Cleanup(l.destroy)
	must := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("netlab: ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	must("netns", "add", l.sw)
	must("-n", l.sw, "link", "set", "lo", "up")
	must("-n", l.sw, "link", "add", "br0", "type", "bridge", "mcast_snooping", "0")
	must("-n", l.sw, "link", "set", "br0", "up")
	plug := func(ns, inside, port, addr string) {
		must("netns", "add", ns)
		must("-n", ns, "link", "set", "lo", "up")
		must("-n", ns, "link", "add", inside, "type", "veth", "peer", "name", port, "netns", l.sw)
		must("-n", ns, "addr", "add", addr+"/24", "dev", inside)
		must("-n", ns, "link", "set", inside, "up", "multicast", "on")
		must("-n", l.sw, "link", "set", port, "master", "br0")
		must("-n", l.sw, "link", "set", port, "up")
	}
	plug(l.gw, "lan0", "gwp", gatewayAddr)
	// The gateway's "internet": an address behind it (the kernel here has
	// no dummy links, so it sits on the gateway's loopback).
	must("-n", l.gw, "addr", "add", "198.18.0.1/32", "dev", "lo")
	must("netns", "exec", l.gw, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
	for i := 0; i < n; i++ {
		h := &Host{Name: fmt.Sprintf("%sh%d", l.prefix, i), Iface: "lan0", port: fmt.Sprintf("p%d", i), Addr: netip.AddrFrom4([4]byte{10, 99, 0, byte(i + 1)}), lab: l}
		plug(h.Name, h.Iface, h.port, h.Addr.String())
		must("-n", h.Name, "route", "add", "default", "via", gatewayAddr)
		l.hosts = append(l.hosts, h)
	}
	return l
}

func usable() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("not root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return fmt.Errorf("no ip command (install iproute2): %w", err)
	}
	return nil
}

// Host returns host i.
func (l *Lab) Host(i int) *Host { return l.hosts[i] }

func (l *Lab) destroy() {
	for _, h := range l.hosts {
		killNamespace(h.Name)
	}
	for _, ns := range []string{l.gw, l.sw} {
		killNamespace(ns)
	}
}

// killNamespace kills whatever still runs in ns and deletes it.
func killNamespace(ns string) {
	if out, err := exec.Command("ip", "netns", "pids", ns).Output(); err == nil {
		for _, pid := range strings.Fields(string(out)) {
			exec.Command("kill", "-9", pid).Run()
		}
	}
	exec.Command("ip", "netns", "del", ns).Run()
}

// AddAddrs gives h n more addresses on its LAN interface and returns
// them, so that one host can act as many sources (a machine with several
// addresses, or one that spoofs them). They are taken in turn, over all
// of the lab's hosts, from 10.99.0.101–253, above the addresses of a lab
// of at most 100 hosts.
func (h *Host) AddAddrs(t testing.TB, n int) []netip.Addr {
	t.Helper()
	l := h.lab
	if len(l.hosts) > 100 || l.extra+n > 153 {
		t.Fatalf("netlab: no room for %d more addresses (%d hosts, %d extra addresses)", n, len(l.hosts), l.extra)
	}
	var addrs []netip.Addr
	for range n {
		a := netip.AddrFrom4([4]byte{10, 99, 0, byte(101 + l.extra)})
		l.extra++
		l.ip(t, "-n", h.Name, "addr", "add", a.String()+"/24", "dev", h.Iface)
		addrs = append(addrs, a)
	}
	return addrs
}

func (l *Lab) ip(t testing.TB, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("netlab: ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// InternetDown takes the internet away and keeps the LAN: every host loses
// its default route and the gateway blackholes everything.
func (l *Lab) InternetDown(t testing.TB) {
	t.Helper()
	for _, h := range l.hosts {
		l.ip(t, "-n", h.Name, "route", "del", "default")
	}
	l.ip(t, "-n", l.gw, "route", "add", "blackhole", "default")
}

// InternetUp restores what InternetDown removed.
func (l *Lab) InternetUp(t testing.TB) {
	t.Helper()
	l.ip(t, "-n", l.gw, "route", "del", "blackhole", "default")
	for _, h := range l.hosts {
		l.ip(t, "-n", h.Name, "route", "add", "default", "via", gatewayAddr)
	}
}

// Cut takes h's switch port down: a clean partition that h's processes
// notice only as silence.
func (l *Lab) Cut(t testing.TB, h *Host) {
	t.Helper()
	l.ip(t, "-n", l.sw, "link", "set", h.port, "down")
}

// Heal brings h's switch port back up.
func (l *Lab) Heal(t testing.TB, h *Host) {
	t.Helper()
	l.ip(t, "-n", l.sw, "link", "set", h.port, "up")
}

// Shape limits every host link, both directions, to rate (e.g. "1gbit")
// with a token bucket.
func (l *Lab) Shape(t testing.TB, rate string) {
	t.Helper()
	for _, h := range l.hosts {
		for _, side := range [][]string{{h.Name, h.Iface}, {l.sw, h.port}} {
			cmd := exec.Command("ip", "netns", "exec", side[0], "tc", "qdisc", "replace", "dev", side[1], "root", "tbf", "rate", rate, "burst", "256kb", "latency", "20ms")
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("netlab: shaping %s/%s: %v\n%s", side[0], side[1], err, out)
			}
		}
	}
}

// Eventually polls cond every 20 ms until it holds and returns how long
// that took; after timeout it fails the test with what and cond's last
// detail.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() (bool, string)) time.Duration {
	t.Helper()
	start := time.Now()
	detail := ""
	for {
		var ok bool
		ok, detail = cond()
		if ok {
			return time.Since(start)
		}
		if time.Since(start) > timeout {
			t.Fatalf("%s: not done after %v: %s", what, timeout, detail)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
