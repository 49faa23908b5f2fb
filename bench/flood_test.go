package bench

import (
	"flag"
	"fmt"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/drive-node/drive-node/internal/netlab"
)

// Flags of BenchmarkHandshakeFlood.
var (
	floodRate    = flag.Float64("flood.rate", 1000, "handshakes a second the hostile host starts with A")
	floodSources = flag.Int("flood.sources", 8, "addresses the hostile host floods from")
)

// floodAtLeast is how long the flood lasts at least, whatever the edits
// take: three of the listener's handshake timeouts (5 s), so that
// abandoned handshakes have been held, and replaced, at the bounds.
const floodAtLeast = 15 * time.Second

// BenchmarkHandshakeFlood measures what a flood of handshakes from
// unpaired devices costs two paired daemons. A third host starts
// -flood.rate handshakes a second with A's port from -flood.sources
// addresses, each with a new key, half of them abandoned once A has
// answered (the flood tool, internal/netlab/flood). It reports A's RSS
// before and at most during the flood, and the edit latency both ways
// (median of 7, as in the LAN benchmark) without the flood and during
// it. The links are shaped to 1 Gbit/s as in the LAN benchmark.
// Run: go test -run '^$' -bench HandshakeFlood -benchtime 1x ./bench/ (as root).
func BenchmarkHandshakeFlood(b *testing.B) {
	d := startDaemons(b, 3)
	lab, dirA, dirB, stage, pa := d.lab, d.dirA, d.dirB, d.stage, d.pa
	lab.Shape(b, "1gbit")
	moveIn(b, stage, dirA, "warmup.txt", []byte("warm"))
	waitFiles(b, dirB, "warmup.txt", 1, 2*time.Minute)

	quietAB := editLatency(b, "before the flood", stage, dirA, dirB, "quiet-ab")
	quietBA := editLatency(b, "before the flood", stage, dirB, dirA, "quiet-ba")
	before := mem(b, pa.Pid(), "VmRSS")

	h := lab.Host(2)
	cpu := cpuSeconds(b, pa.Pid())
	sampled := netlab.SampleRSS(b, pa.Pid(), 50*time.Millisecond)
	started := time.Now()
	f := h.StartFlood(b, netip.AddrPortFrom(lab.Host(0).Addr, 22000), *floodRate, 10*time.Minute, h.AddAddrs(b, *floodSources))
	netlab.Eventually(b, 10*time.Second, "the flood under way", func() (bool, string) {
		r, _ := f.Last()
		return r.Elapsed >= 1 && r.Held > 0, fmt.Sprintf("%+v", r)
	})
	floodAB := editLatency(b, "during the flood", stage, dirA, dirB, "flood-ab")
	floodBA := editLatency(b, "during the flood", stage, dirB, dirA, "flood-ba")
	netlab.Eventually(b, time.Minute, "the flood's least duration", func() (bool, string) {
		r, _ := f.Last()
		return r.Elapsed >= floodAtLeast.Seconds(), fmt.Sprintf("%.1f s", r.Elapsed)
	})
	if err := f.Signal(syscall.SIGTERM); err != nil {
		b.Fatal(err)
	}
	r := f.Result(b, time.Minute)
	// The time since the flood started, the wait for its last handshakes
	// included: A's CPU share is not overstated.
	cpu = (cpuSeconds(b, pa.Pid()) - cpu) / time.Since(started).Seconds()
	peak, hwm := sampled(), mem(b, pa.Pid(), "VmHWM")
	if pa.Exited() {
		b.Fatalf("A stopped during the flood:\n%s", pa.Log())
	}
	if r.Accepted != 0 || r.Held == 0 {
		b.Fatalf("the flood was not one of unpaired devices that A held: %+v", r)
	}

	b.ReportMetric(float64(peak)/(1<<20), "MiB-peak-RSS")
	b.ReportMetric(floodAB.Seconds(), "s-edit-during")
	mib := func(n int64) float64 { return float64(n) / (1 << 20) }
	var w strings.Builder
	fmt.Fprintf(&w, "\nHandshake flood, %s: %.0f handshakes/s asked, %.0f/s started (%d in %.1f s) with A's port from %d addresses, half abandoned\n",
		time.Now().UTC().Format("2006-01-02"), *floodRate, float64(r.Started)/r.Elapsed, r.Started, r.Elapsed, *floodSources)
	fmt.Fprintf(&w, "A refused %d at once, held %d abandoned ones, and refused %d completed ones as unpaired; %d had the client prove its address first; %d got no answer in 2 s\n\n",
		r.Refused, r.Held, r.Completed, r.Retried, r.TimedOut)
	fmt.Fprintf(&w, "| figure | without the flood | during the flood |\n|---|---|---|\n")
	fmt.Fprintf(&w, "| A's RSS | %.1f MiB | %.1f MiB at most (VmHWM %.1f MiB) |\n", mib(before), mib(peak), mib(hwm))
	fmt.Fprintf(&w, "| A's CPU | | %.0f %% of a core |\n", 100*cpu)
	fmt.Fprintf(&w, "| edit latency A → B, median of %d | %.3f s | %.3f s |\n", editSamples, quietAB.Seconds(), floodAB.Seconds())
	fmt.Fprintf(&w, "| edit latency B → A, median of %d | %.3f s | %.3f s |\n", editSamples, quietBA.Seconds(), floodBA.Seconds())
	b.Log(w.String())
	fmt.Print(w.String())
}
