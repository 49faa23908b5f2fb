package control

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/drive-node/drive-node/certs"
	"github.com/drive-node/drive-node/node"
)

func (f *fakeNode) Status(context.Context) (node.Status, error) {
	return node.Status{Device: "A", Peers: []node.PeerStatus{{ID: "B", Connected: true, PeerProgress: &node.PeerProgress{ToReceiveFiles: 2, ToReceiveBytes: 10}}},
		Live: &node.LiveStatus{PausedOnRequest: f.paused}}, nil
}

func (f *fakeNode) Conflicts(context.Context) ([]node.Conflict, error) {
	return []node.Conflict{{Copy: "a.conflict-x.txt", Original: "a.txt"}}, nil
}

func (f *fakeNode) Events() *node.Events { return f.events }

func (f *fakeNode) Pause(context.Context) bool {
	was := f.paused
	f.paused = true
	return !was
}

func (f *fakeNode) Resume(context.Context) bool {
	was := f.paused
	f.paused = false
	return was
}

func (f *fakeNode) Rescan() { f.asked = append(f.asked, "rescan") }

// serveFake serves a fakeNode on a socket in a new directory and returns
// a client for it.
func serveFake(t *testing.T, ring int) (*fakeNode, *Client, string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "ctl") // short: a socket path has a length limit
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeNode{events: node.NewEvents(ring, 1, time.Now)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, f, dir, slog.New(slog.DiscardHandler)) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
		os.RemoveAll(dir)
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := Dial(ctx, dir)
		if err == nil {
			return f, c, dir
		}
		if time.Now().After(deadline) {
			t.Fatalf("dial: %v", err)
		}
		time.Sleep(10 * time.Millisecond) // the server starts in its own goroutine
	}
}

func TestLiveEndpoints(t *testing.T) {
	f, c, _ := serveFake(t, 16)
	ctx := context.Background()
	st, err := c.Status(ctx)
	if err != nil || st.Device != "A" || len(st.Peers) != 1 || st.Peers[0].PeerProgress == nil || st.Peers[0].ToReceiveBytes != 10 {
		t.Fatalf("status: %+v %v", st, err)
	}
	if cs, err := c.Conflicts(ctx); err != nil || len(cs) != 1 || cs[0].Original != "a.txt" {
		t.Fatalf("conflicts: %+v %v", cs, err)
	}
	if changed, err := c.Pause(ctx); err != nil || !changed || !f.paused {
		t.Fatalf("pause: %v %v (paused %v)", changed, err, f.paused)
	}
	if changed, err := c.Pause(ctx); err != nil || changed {
		t.Fatalf("second pause: %v %v", changed, err)
	}
	if st, err := c.Status(ctx); err != nil || !st.Live.PausedOnRequest {
		t.Fatalf("status while paused: %+v %v", st.Live, err)
	}
	if changed, err := c.Resume(ctx); err != nil || !changed || f.paused {
		t.Fatalf("resume: %v %v", changed, err)
	}
	if err := c.Rescan(ctx); err != nil || len(f.asked) != 1 || f.asked[0] != "rescan" {
		t.Fatalf("rescan: %v (asked %v)", err, f.asked)
	}
}

// readSSE reads server-sent events from r until it has want of them.
func readSSE(t *testing.T, r io.Reader, want int) []node.Event {
	t.Helper()
	var out []node.Event
	sc := bufio.NewScanner(r)
	var id string
	for len(out) < want && sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "id: "); ok {
			id = v
		}
		if v, ok := strings.CutPrefix(line, "data: "); ok {
			var ev node.Event
			if err := json.Unmarshal([]byte(v), &ev); err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(ev.ID) != id {
				t.Fatalf("event %d under id %q", ev.ID, id)
			}
			out = append(out, ev)
		}
	}
	if len(out) < want {
		t.Fatalf("stream ended after %d events: %v", len(out), sc.Err())
	}
	return out
}

// getEvents opens the event stream with the given query and header.
func getEvents(t *testing.T, c *Client, query, lastID string) io.ReadCloser {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://drive-node/events"+query, nil)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("events: %s %s", resp.Status, resp.Header.Get("Content-Type"))
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp.Body
}

func TestEventStreamResumes(t *testing.T) {
	f, c, _ := serveFake(t, 8)
	for i := range 5 {
		f.events.Publish(node.EventLocalChange, node.EventFields{Path: fmt.Sprint("f", i)})
	}
	// From the start of the ring, then live.
	body := getEvents(t, c, "?since=0", "")
	got := readSSE(t, body, 5)
	f.events.Publish(node.EventApplied, node.EventFields{Path: "live"})
	got = append(got, readSSE(t, body, 1)...)
	for i, ev := range got {
		if ev.ID != uint64(i+1) {
			t.Fatalf("event %d has id %d: %+v", i, ev.ID, got)
		}
	}
	if got[5].Path != "live" || got[5].Type != node.EventApplied {
		t.Fatalf("live event: %+v", got[5])
	}
	// Resumed from an ID, by header and by parameter: none missing.
	for _, tc := range []struct{ query, header string }{{"", "3"}, {"?since=3", ""}} {
		got := readSSE(t, getEvents(t, c, tc.query, tc.header), 3)
		if got[0].ID != 4 || got[1].ID != 5 || got[2].ID != 6 {
			t.Fatalf("resumed from 3 (%+v): %+v", tc, got)
		}
	}
	// An ID fallen off the ring is a gap, then the oldest held.
	for i := range 10 {
		f.events.Publish(node.EventLocalChange, node.EventFields{Path: fmt.Sprint("g", i)})
	}
	got = readSSE(t, getEvents(t, c, "", "2"), 2)
	if got[0].Type != node.EventGap || got[0].From != 3 || got[0].To != 8 || got[1].ID != 9 {
		t.Fatalf("gap: %+v", got)
	}
	// The client's Follow resumes and stops when told.
	var ids []uint64
	since := uint64(14)
	stop := errors.New("enough")
	err := c.Follow(context.Background(), &since, func(ev node.Event) error {
		ids = append(ids, ev.ID)
		if len(ids) == 2 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || fmt.Sprint(ids) != "[15 16]" {
		t.Fatalf("follow: %v %v", ids, err)
	}
}

func TestTCPNeedsTheToken(t *testing.T) {
	dir := t.TempDir()
	f := &fakeNode{events: node.NewEvents(8, 1, time.Now)}
	log := slog.New(slog.DiscardHandler)
	if err := ServeTCP(context.Background(), f, TCPConfig{Addr: "192.0.2.1:1", StateDir: dir}, log); !errors.Is(err, ErrNotLoopback) {
		t.Fatalf("non-loopback address: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	addrs := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() {
		done <- ServeTCP(ctx, f, TCPConfig{Addr: "127.0.0.1:0", StateDir: dir, Ready: func(a net.Addr) { addrs <- a }}, log)
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	}()
	var addr net.Addr
	select {
	case addr = <-addrs:
	case err := <-done:
		t.Fatal(err)
	case <-time.After(10 * time.Second):
		t.Fatal("not listening")
	}
	st, err := os.Stat(dir + "/" + TokenName)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("token file: %v %v", st, err)
	}
	tok, err := LoadOrCreateToken(dir)
	if err != nil || len(tok) != 64 {
		t.Fatalf("token: %q %v", tok, err)
	}
	get := func(path, auth string) int {
		req, _ := http.NewRequest(http.MethodPost, "http://"+addr.String()+path, nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, auth := range []string{"", "Bearer ", "Bearer " + tok[:63] + "x", tok} {
		if code := get("/pause", auth); code != http.StatusUnauthorized {
			t.Fatalf("with %q: %d", auth, code)
		}
	}
	if f.paused {
		t.Fatal("a refused request reached the node")
	}
	if code := get("/pause", "Bearer "+tok); code != http.StatusOK || !f.paused {
		t.Fatalf("with the token: %d (paused %v)", code, f.paused)
	}
}

// fakeMetrics is a metrics source.
type fakeMetrics struct{}

func (fakeMetrics) Metrics(context.Context) (node.Metrics, error) {
	var peer certs.DeviceID
	peer[0] = 7
	return node.Metrics{OpsRecorded: 3, OpsApplied: 4, BytesIn: 100, PeersConnected: 1, PendingOps: 2, HeldOps: 1,
		Peers: map[certs.DeviceID]node.PeerProgress{peer: {ToSendFiles: 5}}}, nil
}

func TestMetricsServed(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	addrs := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() {
		done <- ServeMetrics(ctx, fakeMetrics{}, "127.0.0.1:0", false, func(a net.Addr) { addrs <- a }, slog.New(slog.DiscardHandler))
	}()
	defer func() { cancel(); <-done }()
	addr := <-addrs
	resp, err := http.Get("http://" + addr.String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"drive_node_ops_recorded_total 3", "drive_node_ops_applied_total 4", "drive_node_content_received_bytes_total 100",
		"drive_node_peers_connected 1", "drive_node_pending_ops 2", "drive_node_held_ops 1", `drive_node_peer_lag_ops{direction="send",peer="`, "go_goroutines"} {
		if !strings.Contains(string(b), want) {
			t.Fatalf("no %q in\n%s", want, b)
		}
	}
}
