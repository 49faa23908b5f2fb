//go:build linux

package netlab

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// FloodReport is a line the flood tool (internal/netlab/flood) prints:
// what became of the handshakes it started. Each ended handshake is
// counted in exactly one of Completed, Accepted, Held, Refused, TimedOut
// and Failed.
type FloodReport struct {
	// Elapsed is the seconds handshakes have been started for (in the
	// last report, the whole flood); Rate the handshakes asked for per
	// second.
	Elapsed float64 `json:"elapsed"`
	Rate    float64 `json:"rate"`
	// Started counts the handshakes begun, Ended those over.
	Started int64 `json:"started"`
	Ended   int64 `json:"ended"`
	// Completed: the client sent its certificate and finished, and the
	// listener then refused it (a TLS alert), as it must an unpaired
	// device.
	Completed int64 `json:"completed"`
	// Accepted: a completed handshake the listener confirmed
	// (HANDSHAKE_DONE): an unpaired device got a connection.
	Accepted int64 `json:"accepted"`
	// Held: abandoned after the listener sent its certificate and
	// signature; it keeps the handshake until its timeout.
	Held int64 `json:"held"`
	// Refused: the listener answered CONNECTION_REFUSED (over its bounds
	// on handshakes in flight).
	Refused int64 `json:"refused"`
	// Retried counts the handshakes, whatever their end, whose client
	// had to prove its address first (a QUIC Retry).
	Retried int64 `json:"retried"`
	// TimedOut: no answer within the tool's --timeout (or, to a
	// completed handshake, neither a refusal nor a confirmation within
	// the listener's handshake timeout); Failed: any other error (the
	// first is in FirstError).
	TimedOut   int64  `json:"timed_out"`
	Failed     int64  `json:"failed"`
	FirstError string `json:"first_error,omitempty"`
	// Done is set on the last line, once every handshake has ended.
	Done bool `json:"done"`
}

// Flood is the flood tool running on a host.
type Flood struct {
	*Process
}

// StartFlood builds the flood tool and starts it on h: rate handshakes a
// second with target from unpaired devices, half of them abandoned
// half-way, for d, from the addresses from in turn (none: h's own).
func (h *Host) StartFlood(t testing.TB, target netip.AddrPort, rate float64, d time.Duration, from []netip.Addr) *Flood {
	t.Helper()
	bin := BuildBinary(t, "github.com/drive-node/drive-node/internal/netlab/flood")
	var srcs []string
	for _, a := range from {
		srcs = append(srcs, a.String())
	}
	return &Flood{h.Start(t, bin, "--target", target.String(), "--rate", fmt.Sprint(rate),
		"--duration", d.String(), "--from", strings.Join(srcs, ","))}
}

// Last returns the last report the tool has printed; ok is false before
// the first, a second after the start.
func (f *Flood) Last() (r FloodReport, ok bool) {
	for _, line := range strings.Split(f.Log(), "\n") {
		var l FloodReport
		if json.Unmarshal([]byte(line), &l) == nil {
			r, ok = l, true
		}
	}
	return r, ok
}

// Result waits up to timeout for the tool to end and returns its last
// report, failing the test if it did not end well.
func (f *Flood) Result(t testing.TB, timeout time.Duration) FloodReport {
	t.Helper()
	code, err := f.Wait(timeout)
	r, ok := f.Last()
	if err != nil || code != 0 || !ok || !r.Done {
		t.Fatalf("netlab: the flood did not end well (exit %d, %v):\n%s", code, err, f.Log())
	}
	return r
}
