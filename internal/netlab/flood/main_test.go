package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/drive-node/drive-node/certs"
	"github.com/drive-node/drive-node/internal/netlab"
	"github.com/drive-node/drive-node/quicnet"
)

// listener starts drive-node's transport on loopback; paired says whether
// it takes every device or none.
func listener(t *testing.T, paired bool) netip.AddrPort {
	t.Helper()
	id, err := certs.LoadOrCreate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	tr, err := quicnet.Listen(t.Context(), quicnet.Config{
		Identity: id, Listen: "127.0.0.1:0",
		Paired: func(certs.DeviceID) bool { return paired },
		OnPeer: func(ctx context.Context, _ *quicnet.Peer) { <-ctx.Done() },
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr.Addr().AddrPort()
}

// floodFor floods target from two loopback addresses for a second and
// returns the last report, checking that it is the only one marked done
// and that every handshake started has been counted once.
func floodFor(t *testing.T, target netip.AddrPort, rate float64) netlab.FloodReport {
	t.Helper()
	var out bytes.Buffer
	cfg := config{target: target, rate: rate, duration: time.Second, abandon: 0.5, timeout: time.Second, acceptWait: time.Second,
		from: []netip.Addr{netip.MustParseAddr("127.0.1.1"), netip.MustParseAddr("127.0.1.2")}}
	if err := flood(t.Context(), cfg, &out); err != nil {
		t.Fatal(err)
	}
	var last netlab.FloodReport
	dec := json.NewDecoder(&out)
	for dec.More() {
		if last.Done {
			t.Fatal("a report after the one marked done")
		}
		if err := dec.Decode(&last); err != nil {
			t.Fatal(err)
		}
	}
	if !last.Done {
		t.Fatalf("no report marked done: %+v", last)
	}
	if sum := last.Completed + last.Accepted + last.Held + last.Refused + last.TimedOut + last.Failed; sum != last.Started || last.Ended != last.Started {
		t.Fatalf("%d started, %d ended, %d counted: %+v", last.Started, last.Ended, sum, last)
	}
	if want := int64(0.9 * rate); last.Started < want {
		t.Fatalf("%d handshakes started in a second at %v/s", last.Started, rate)
	}
	t.Logf("%+v", last)
	return last
}

// TestFloodAgainstTheListener floods drive-node's own listener, which
// pairs nothing: handshakes are completed and refused, abandoned and held,
// and, over its bound of handshakes from one address, refused at once;
// none gets a connection.
func TestFloodAgainstTheListener(t *testing.T) {
	r := floodFor(t, listener(t, false), 200)
	if r.Completed == 0 || r.Held == 0 || r.Refused == 0 || r.Retried == 0 {
		t.Fatalf("want handshakes completed, held, refused and retried: %+v", r)
	}
	if r.Accepted != 0 || r.Failed != 0 {
		t.Fatalf("an unpaired device was accepted, or a handshake failed: %+v", r)
	}
}

// TestFloodSeesAnAcceptingListener: against a listener that pairs every
// device, the completed handshakes are counted as accepted, which the
// end-to-end test requires never to happen.
func TestFloodSeesAnAcceptingListener(t *testing.T) {
	r := floodFor(t, listener(t, true), 50)
	if r.Accepted == 0 || r.Completed != 0 {
		t.Fatalf("want the completed handshakes accepted: %+v", r)
	}
}
