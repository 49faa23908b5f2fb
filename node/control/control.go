// Package control lets the command line and other programs ask a running
// daemon to act and watch what it does: it serves an HTTP API on a Unix
// socket in the state directory (mode 0600, so only the daemon's user
// reaches it), optionally on a loopback TCP address behind a bearer token
// (ServeTCP), and Prometheus metrics (ServeMetrics); and it is the client
// for the socket. The daemon holds the op log open, so what needs the log
// (history, restore, the brake's approve and reject, a receive-only
// device's revert, a send-only device's override) is done by the daemon
// when one runs, and so are invites, joins and unpairing, whose effects
// reach its network, and listing where this device and a peer differ,
// which asks the peer. The endpoints are described in docs/api.md.
package control

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/drive-node/drive-node/certs"
	"github.com/drive-node/drive-node/node"
)

// SocketName is the control socket's name in the state directory.
const SocketName = "control.sock"

// Node is what both a running daemon (through a Client) and a node opened
// by the command line do.
type Node interface {
	History(ctx context.Context, path string) ([]node.HistoryEntry, error)
	Restore(ctx context.Context, req node.RestoreRequest) ([]node.RestoreResult, error)
	Held(ctx context.Context) ([]node.HeldRun, error)
	Approve(ctx context.Context) ([]node.HeldRun, error)
	Reject(ctx context.Context) ([]node.HeldRun, int, error)
	Revert(ctx context.Context) ([]node.RestoreResult, error)
	Override(ctx context.Context) (int, error)
	Differences(ctx context.Context, peer certs.DeviceID, limit int) ([]node.Difference, error)
}

// Daemon is what the API serves: a running *node.Node, which does what
// Node lists and reports what only a running node knows.
type Daemon interface {
	Node
	Status(ctx context.Context) (node.Status, error)
	Conflicts(ctx context.Context) ([]node.Conflict, error)
	Events() *node.Events
	Pause(ctx context.Context) bool
	Resume(ctx context.Context) bool
	Rescan()
}

// PauseResult is what pause and resume did.
type PauseResult struct {
	// Changed is false when the node already was as asked (paused on
	// request, or not).
	Changed bool `json:"changed"`
}

// OverrideResult is what override did.
type OverrideResult struct {
	Answered int `json:"answered"` // paths sent to every peer again
}

// HistoryRequest asks for a path's history.
type HistoryRequest struct {
	Path string `json:"path"`
}

// BrakeResult is what approve and reject did.
type BrakeResult struct {
	Runs     []node.HeldRun `json:"runs"`
	Answered int            `json:"answered,omitempty"` // paths a reject sent back
}

// errorBody is an error as the API returns it.
type errorBody struct {
	Error string `json:"error"`
}

// Serve listens on the state directory's control socket and answers until
// ctx ends. A socket left by a daemon that crashed is replaced: the caller
// holds the state directory's lock, so no other daemon serves it.
func Serve(ctx context.Context, n Daemon, stateDir string, log *slog.Logger) error {
	path := filepath.Join(stateDir, SocketName)
	os.Remove(path)
	l, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("control socket %s: %w", path, err)
	}
	// The state dir is private (0700) already, so nobody else reaches the
	// socket in the moment before this.
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return fmt.Errorf("control socket %s: %w", path, err)
	}
	log.Debug("control socket listening", "path", path)
	err = serve(ctx, l, newMux(n, log))
	os.Remove(path)
	return err
}

// serve answers on l with h until ctx ends, then shuts the server down
// (giving requests 5 s; event streams end with ctx).
func serve(ctx context.Context, l net.Listener, h http.Handler) error {
	// Idle keep-alive connections are closed, so that clients that come
	// and go (or are refused) do not pile up.
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: time.Minute, BaseContext: func(net.Listener) context.Context { return ctx }}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	err := srv.Serve(l)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// newMux routes the API's endpoints to n.
func newMux(n Daemon, log *slog.Logger) *http.ServeMux {
	mux := http.NewServeMux()
	handle := func(pattern string, fn func(r *http.Request) (any, error)) {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			out, err := fn(r)
			w.Header().Set("Content-Type", "application/json")
			if err != nil {
				w.WriteHeader(http.StatusUnprocessableEntity)
				json.NewEncoder(w).Encode(errorBody{err.Error()})
				return
			}
			json.NewEncoder(w).Encode(out)
		})
	}
	handle("POST /history", func(r *http.Request) (any, error) {
		var req HistoryRequest
		if err := decode(r, &req); err != nil {
			return nil, err
		}
		return n.History(r.Context(), req.Path)
	})
	handle("POST /restore", func(r *http.Request) (any, error) {
		var req node.RestoreRequest
		if err := decode(r, &req); err != nil {
			return nil, err
		}
		return n.Restore(r.Context(), req)
	})
	handle("GET /held", func(r *http.Request) (any, error) { return n.Held(r.Context()) })
	handle("POST /approve", func(r *http.Request) (any, error) {
		runs, err := n.Approve(r.Context())
		return BrakeResult{Runs: runs}, err
	})
	handle("POST /reject", func(r *http.Request) (any, error) {
		runs, answered, err := n.Reject(r.Context())
		return BrakeResult{Runs: runs, Answered: answered}, err
	})
	handle("POST /revert", func(r *http.Request) (any, error) { return n.Revert(r.Context()) })
	handle("POST /override", func(r *http.Request) (any, error) {
		answered, err := n.Override(r.Context())
		return OverrideResult{Answered: answered}, err
	})
	if pn, ok := n.(PairingNode); ok {
		handlePairing(mux, handle, pn)
	}
	handle("GET /differences", func(r *http.Request) (any, error) {
		peer, err := certs.ParseDeviceID(r.URL.Query().Get("peer"))
		if err != nil {
			return nil, fmt.Errorf("differences: peer: %w", err)
		}
		limit := 0
		if v := r.URL.Query().Get("max"); v != "" {
			if limit, err = strconv.Atoi(v); err != nil {
				return nil, fmt.Errorf("differences: max: %w", err)
			}
		}
		return n.Differences(r.Context(), peer, limit)
	})
	handle("GET /status", func(r *http.Request) (any, error) { return n.Status(r.Context()) })
	handle("GET /conflicts", func(r *http.Request) (any, error) { return n.Conflicts(r.Context()) })
	handle("POST /pause", func(r *http.Request) (any, error) { return PauseResult{Changed: n.Pause(r.Context())}, nil })
	handle("POST /resume", func(r *http.Request) (any, error) { return PauseResult{Changed: n.Resume(r.Context())}, nil })
	handle("POST /rescan", func(r *http.Request) (any, error) { n.Rescan(); return struct{}{}, nil })
	mux.HandleFunc("GET /events", func(w http.ResponseWriter, r *http.Request) { streamEvents(w, r, n.Events(), log) })
	return mux
}

// decode reads a request's JSON body, at most 1 MiB.
func decode(r *http.Request, v any) error {
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(v); err != nil {
		return fmt.Errorf("request: %w", err)
	}
	return nil
}

// Client talks to a daemon's control socket.
type Client struct {
	http *http.Client
	path string
}

// Dial returns a client for the daemon whose state is in stateDir, or an
// error when none answers there.
func Dial(ctx context.Context, stateDir string) (*Client, error) {
	path := filepath.Join(stateDir, SocketName)
	d := net.Dialer{Timeout: 2 * time.Second}
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	c.Close()
	return &Client{path: path, http: &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) { return d.DialContext(ctx, "unix", path) },
	}}}, nil
}

// call posts (or, with no body, gets) and decodes the answer into out.
func (c *Client) call(ctx context.Context, method, what string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://drive-node/"+what, body)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("daemon (%s): %w", c.path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var e errorBody
		if json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&e) == nil && e.Error != "" {
			return errors.New(e.Error)
		}
		return fmt.Errorf("daemon (%s): %s", c.path, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// History asks the daemon for a path's history.
func (c *Client) History(ctx context.Context, path string) ([]node.HistoryEntry, error) {
	var out []node.HistoryEntry
	return out, c.call(ctx, http.MethodPost, "history", HistoryRequest{Path: path}, &out)
}

// Restore asks the daemon to restore.
func (c *Client) Restore(ctx context.Context, req node.RestoreRequest) ([]node.RestoreResult, error) {
	var out []node.RestoreResult
	return out, c.call(ctx, http.MethodPost, "restore", req, &out)
}

// Held asks the daemon what the brake holds.
func (c *Client) Held(ctx context.Context) ([]node.HeldRun, error) {
	var out []node.HeldRun
	return out, c.call(ctx, http.MethodGet, "held", nil, &out)
}

// Approve asks the daemon to let the held runs through.
func (c *Client) Approve(ctx context.Context) ([]node.HeldRun, error) {
	var out BrakeResult
	err := c.call(ctx, http.MethodPost, "approve", struct{}{}, &out)
	return out.Runs, err
}

// Reject asks the daemon to answer the held runs with this device's files.
func (c *Client) Reject(ctx context.Context) ([]node.HeldRun, int, error) {
	var out BrakeResult
	err := c.call(ctx, http.MethodPost, "reject", struct{}{}, &out)
	return out.Runs, out.Answered, err
}

// Revert asks a receive-only daemon to put the mesh's version back at its
// locally changed paths.
func (c *Client) Revert(ctx context.Context) ([]node.RestoreResult, error) {
	var out []node.RestoreResult
	return out, c.call(ctx, http.MethodPost, "revert", struct{}{}, &out)
}

// Override asks a send-only daemon to send its version of every differing
// path again.
func (c *Client) Override(ctx context.Context) (int, error) {
	var out OverrideResult
	err := c.call(ctx, http.MethodPost, "override", struct{}{}, &out)
	return out.Answered, err
}

// Status asks the daemon for its live status (see node.Node.Status).
func (c *Client) Status(ctx context.Context) (node.Status, error) {
	var out node.Status
	return out, c.call(ctx, http.MethodGet, "status", nil, &out)
}

// Conflicts asks the daemon for the conflict copies it made.
func (c *Client) Conflicts(ctx context.Context) ([]node.Conflict, error) {
	var out []node.Conflict
	return out, c.call(ctx, http.MethodGet, "conflicts", nil, &out)
}

// Pause asks the daemon to stop syncing until Resume (see
// node.Node.Pause); it reports whether the daemon was not paused so.
func (c *Client) Pause(ctx context.Context) (bool, error) {
	var out PauseResult
	err := c.call(ctx, http.MethodPost, "pause", struct{}{}, &out)
	return out.Changed, err
}

// Resume asks the daemon to end a pause Pause began; it reports whether
// one was under way.
func (c *Client) Resume(ctx context.Context) (bool, error) {
	var out PauseResult
	err := c.call(ctx, http.MethodPost, "resume", struct{}{}, &out)
	return out.Changed, err
}

// Rescan asks the daemon to look at the whole folder again.
func (c *Client) Rescan(ctx context.Context) error {
	var out struct{}
	return c.call(ctx, http.MethodPost, "rescan", struct{}{}, &out)
}

// Differences asks the daemon where this device and peer differ, and
// why: at most limit paths (0 for node.DefaultDifferences).
func (c *Client) Differences(ctx context.Context, peer certs.DeviceID, limit int) ([]node.Difference, error) {
	var out []node.Difference
	q := url.Values{"peer": {peer.String()}, "max": {strconv.Itoa(limit)}}
	return out, c.call(ctx, http.MethodGet, "differences?"+q.Encode(), nil, &out)
}
