package e2e

import (
	"bytes"
	"fmt"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/drive-node/drive-node/certs"
	"github.com/drive-node/drive-node/internal/netlab"
)

// The flood of TestHandshakeFloodKeepsSync.
const (
	floodRate    = 1000             // handshakes a second, half of them abandoned
	floodSources = 8                // the hostile host's addresses
	floodFor     = 20 * time.Second // long enough for handshakes held without bound to pile up
	// floodRSSBound bounds the flooded daemon's resident memory. It runs
	// at about 26 MiB, and reached 35–38 MiB during the floods of this
	// test on 2026-12-02: its bounds let the flood hold at most 32
	// handshakes (4 from each address) of some 170 KB each. With the
	// bounds raised out of reach, the daemon, its two cores shared with
	// the flood and its peer, held some 15 new handshakes a second and
	// reached 57–70 MiB (a machine with more CPU to spare answers more of
	// them, and holds more).
	floodRSSBound = 48 << 20
	// editDeadline is how long an edit may take to reach the other host
	// during the flood: on a quiet LAN it takes a tenth of a second.
	editDeadline = 10 * time.Second
)

// What quicnet promises of the listener, and this test checks from the
// outside: at most handshakesPerSource handshakes in flight from one
// address, each held until it ends or, abandoned, for handshakeTimeout;
// at most unpairedLogBurst "not paired" lines a minute.
const (
	handshakesPerSource = 4
	handshakeTimeout    = 5 * time.Second
	unpairedLogBurst    = 5
)

// arrives waits until path holds data and logs how long that took.
func arrives(t *testing.T, what, path string, data []byte, deadline time.Duration) {
	t.Helper()
	took := netlab.Eventually(t, deadline, what, func() (bool, string) {
		got, err := os.ReadFile(path)
		return err == nil && bytes.Equal(got, data), fmt.Sprintf("%q, %v", got, err)
	})
	t.Logf("%-60s %6.3fs", what, took.Seconds())
}

// host is one side of a pair, as TestHandshakeFloodKeepsSync casts it.
type host struct {
	name string
	h    *netlab.Host
	dir  string
	proc **netlab.Process // the pair's field, updated on a restart
}

// deviceID reads the device ID of the daemon of h from its status.
func deviceID(t *testing.T, p *pair, h host) certs.DeviceID {
	t.Helper()
	st, err := readStatus(h.h, p.bin, h.dir)
	if err != nil {
		t.Fatal(err)
	}
	id, err := certs.ParseDeviceID(st.Device)
	if err != nil {
		t.Fatalf("status of %s: device %q: %v", h.name, st.Device, err)
	}
	return id
}

// TestHandshakeFloodKeepsSync: a hostile host on the LAN floods one
// daemon's QUIC port with 1,000 handshakes a second from 8 addresses,
// each as a new unpaired device, half of them abandoned once the daemon
// has answered (it then holds them until its handshake timeout). During
// the flood an edit on each side reaches the other, the peer restarts and
// connects to the flooded daemon through the flood, and the flooded
// daemon's resident memory stays bounded. It refuses every flooding
// device, and its log names at most 5 of them a minute.
func TestHandshakeFloodKeepsSync(t *testing.T) {
	lab := netlab.New(t, 3)
	p := newPairIn(t, lab, false)
	writeFile(t, filepath.Join(p.dirA, "before.txt"), []byte("connected before the flood\n"))
	converge(t, "A and B in sync before the flood", p.dirA, p.dirB, 20*time.Second)

	// The flood's target is the device with the larger ID, and its peer
	// restarts during the flood. Of two connections, quicnet keeps the
	// newer one, or, of two made at once, the one dialed by the smaller
	// ID: the connection that stays after the restart is the one the peer
	// dialed, through the flooded listener.
	x, peer := host{"A", p.a, p.dirA, &p.pa}, host{"B", p.b, p.dirB, &p.pb}
	if idX, idPeer := deviceID(t, p, x), deviceID(t, p, peer); bytes.Compare(idX[:], idPeer[:]) < 0 {
		x, peer = peer, x
	}
	pid := (*x.proc).Pid()
	before, err := netlab.MemoryBytes(pid, "VmRSS")
	if err != nil {
		t.Fatal(err)
	}

	h := lab.Host(2)
	sampled := netlab.SampleRSS(t, pid, 50*time.Millisecond)
	f := h.StartFlood(t, netip.AddrPortFrom(x.h.Addr, 22000), floodRate, floodFor, h.AddAddrs(t, floodSources))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the flood's reports:\n%s", f.Log())
		}
	})
	netlab.Eventually(t, 10*time.Second, "the flood under way", func() (bool, string) {
		r, _ := f.Last()
		return r.Started >= floodRate && r.Held > 0, fmt.Sprintf("%+v", r)
	})

	for _, e := range []struct{ from, to host }{{x, peer}, {peer, x}} {
		data := []byte("written on " + e.from.name + " during the flood\n")
		name := "from-" + e.from.name + ".txt"
		writeFile(t, filepath.Join(e.from.dir, name), data)
		arrives(t, "an edit on "+e.from.name+" reaches "+e.to.name+" during the flood", filepath.Join(e.to.dir, name), data, editDeadline)
	}

	(*peer.proc).Kill()
	*peer.proc = p.start(t, peer.h, peer.dir, peer.name)
	again := []byte("written while " + peer.name + " restarted during the flood\n")
	writeFile(t, filepath.Join(x.dir, "again.txt"), again)
	arrives(t, peer.name+" restarts, connects to "+x.name+" and gets an edit", filepath.Join(peer.dir, "again.txt"), again, 2*editDeadline)
	// Both sides redial: the restarted one's dial usually wins, but the
	// other's may come first, and then the connection is the other's.
	if !regexp.MustCompile(`msg="peer connected".* dialed=(true|false)`).MatchString((*peer.proc).Log()) {
		t.Fatalf("%s did not connect to %s:\n%s", peer.name, x.name, (*peer.proc).Log())
	}
	if f.Exited() {
		t.Fatalf("the flood was over before the edits were: lengthen it\n%s", f.Log())
	}

	r := f.Result(t, floodFor+time.Minute)
	peak, hwm := sampled(), peakRSS(t, pid)
	t.Logf("flood of %s: %d handshakes in %.1f s (%.0f/s): %d completed and refused, %d held, %d refused at once, %d retried, %d timed out",
		x.name, r.Started, r.Elapsed, float64(r.Started)/r.Elapsed, r.Completed, r.Held, r.Refused, r.Retried, r.TimedOut)
	t.Logf("%s's RSS: %.1f MiB before the flood, %.1f MiB at most during it (VmHWM %.1f MiB)", x.name, mib(before), mib(peak), mib(hwm))

	// Each check below is independent of the others: a failing run names
	// every one that failed. The flood was one: near the rate asked (the
	// flood shares the machine's cores with both daemons), every kind of
	// handshake.
	if min := int64(0.8 * floodRate * r.Elapsed); r.Started < min {
		t.Errorf("the flood started %d handshakes in %.1f s, want at least %d", r.Started, r.Elapsed, min)
	}
	if r.Completed == 0 || r.Held == 0 || r.Refused == 0 || r.Failed != 0 {
		t.Errorf("want handshakes completed, held and refused at once, none failed: %+v", r)
	}
	if r.Accepted != 0 {
		t.Errorf("%s accepted %d connections from unpaired devices", x.name, r.Accepted)
	}
	// The daemon held at most handshakesPerSource from each address at
	// a time, each of them, abandoned, for handshakeTimeout; it refused
	// the rest at once.
	if most := int64(floodSources * handshakesPerSource * (r.Elapsed/handshakeTimeout.Seconds() + 2)); r.Held > most {
		t.Errorf("%s held %d abandoned handshakes during %.1f s of flood from %d addresses, want at most %d: its bounds did not hold",
			x.name, r.Held, r.Elapsed, floodSources, most)
	}
	// A daemon built with the race detector (NETLAB_RACE) uses several
	// times the memory: the bound is for the daemon as shipped.
	if over := peak > floodRSSBound || hwm > floodRSSBound; over && os.Getenv("NETLAB_RACE") == "" {
		t.Errorf("%s's RSS reached %.1f MiB during the flood (VmHWM %.1f), over the bound of %.0f MiB", x.name, mib(peak), mib(hwm), mib(floodRSSBound))
	}
	logged := strings.Count((*x.proc).Log(), "refused a device that is not paired")
	if minutes := int(math.Ceil(r.Elapsed / 60)); logged == 0 || logged > unpairedLogBurst*(minutes+1) {
		t.Errorf("%s logged %d refusals of unpaired devices during %.0f s of flood, want 1 to %d", x.name, logged, r.Elapsed, unpairedLogBurst*(minutes+1))
	}
	st, err := readStatus(x.h, p.bin, x.dir)
	if err != nil || len(st.Peers) != 1 || !st.Peers[0].Connected {
		t.Errorf("%s is not connected to %s after the flood: %+v, %v", x.name, peer.name, st.Peers, err)
	}
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }
