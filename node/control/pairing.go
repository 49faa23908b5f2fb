package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/drive-node/drive-node/certs"
	"github.com/drive-node/drive-node/node"
	"github.com/drive-node/drive-node/pairing"
)

// PairingNode is what the pairing part of the API serves: a running
// *node.Node.
type PairingNode interface {
	Invite(ctx context.Context) (*pairing.Invite, error)
	Join(ctx context.Context, code pairing.Code, peers []string) (pairing.Result, error)
	Unpair(ctx context.Context, id certs.DeviceID) error
	Peers(ctx context.Context) (node.PeerList, error)
}

// InviteStatus is the first answer of an invite: the code to read out.
type InviteStatus struct {
	Code    string    `json:"code"`
	Expires time.Time `json:"expires"`
}

// InviteOutcome is the last answer of an invite: who joined, or why
// nobody did.
type InviteOutcome struct {
	Joined *pairing.Result `json:"joined,omitempty"`
	Error  string          `json:"error,omitempty"`
}

// JoinRequest asks the daemon to join an invite.
type JoinRequest struct {
	Code  string   `json:"code"`
	Peers []string `json:"peers,omitempty"`
}

// UnpairRequest asks the daemon to unpair a device.
type UnpairRequest struct {
	ID string `json:"id"`
}

// handlePairing adds the pairing endpoints. POST /invite answers with two
// JSON values: the InviteStatus at once, the InviteOutcome when the
// invite ends; the invite is cancelled if the request ends first (the
// command that asked was stopped).
func handlePairing(mux *http.ServeMux, handle func(string, func(*http.Request) (any, error)), n PairingNode) {
	mux.HandleFunc("POST /invite", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		iv, err := n.Invite(r.Context())
		if err != nil {
			w.WriteHeader(http.StatusUnprocessableEntity)
			json.NewEncoder(w).Encode(errorBody{err.Error()})
			return
		}
		defer iv.Cancel()
		enc := json.NewEncoder(w)
		enc.Encode(InviteStatus{Code: iv.Code().String(), Expires: iv.Expires().UTC()})
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
		res, err := iv.Wait(r.Context())
		if err != nil {
			enc.Encode(InviteOutcome{Error: err.Error()})
			return
		}
		enc.Encode(InviteOutcome{Joined: &res})
	})
	handle("POST /join", func(r *http.Request) (any, error) {
		var req JoinRequest
		if err := decode(r, &req); err != nil {
			return nil, err
		}
		code, err := pairing.ParseCode(req.Code)
		if err != nil {
			return nil, err
		}
		return n.Join(r.Context(), code, req.Peers)
	})
	handle("POST /unpair", func(r *http.Request) (any, error) {
		var req UnpairRequest
		if err := decode(r, &req); err != nil {
			return nil, err
		}
		id, err := certs.ParseDeviceID(req.ID)
		if err != nil {
			return nil, err
		}
		return struct{}{}, n.Unpair(r.Context(), id)
	})
	handle("GET /peers", func(r *http.Request) (any, error) { return n.Peers(r.Context()) })
}

// Invite asks the daemon to open an invite, calls shown with its code,
// and waits until someone joins, the invite ends or ctx ends (which
// cancels the invite).
func (c *Client) Invite(ctx context.Context, shown func(InviteStatus)) (pairing.Result, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://drive-node/invite", nil)
	if err != nil {
		return pairing.Result{}, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return pairing.Result{}, fmt.Errorf("daemon (%s): %w", c.path, err)
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		var e errorBody
		if dec.Decode(&e) == nil && e.Error != "" {
			return pairing.Result{}, errors.New(e.Error)
		}
		return pairing.Result{}, fmt.Errorf("daemon (%s): %s", c.path, resp.Status)
	}
	var st InviteStatus
	if err := dec.Decode(&st); err != nil {
		return pairing.Result{}, fmt.Errorf("daemon (%s): invite: %w", c.path, err)
	}
	shown(st)
	var out InviteOutcome
	if err := dec.Decode(&out); err != nil {
		return pairing.Result{}, fmt.Errorf("daemon (%s): invite: %w", c.path, err)
	}
	if out.Joined == nil {
		return pairing.Result{}, errors.New(out.Error)
	}
	return *out.Joined, nil
}

// Join asks the daemon to join the invite of code.
func (c *Client) Join(ctx context.Context, code string, peers []string) (pairing.Result, error) {
	var out pairing.Result
	return out, c.call(ctx, http.MethodPost, "join", JoinRequest{Code: code, Peers: peers}, &out)
}

// Unpair asks the daemon to unpair the device id and drop its connection.
func (c *Client) Unpair(ctx context.Context, id certs.DeviceID) error {
	return c.call(ctx, http.MethodPost, "unpair", UnpairRequest{ID: id.String()}, &struct{}{})
}

// Peers asks the daemon for its peers.
func (c *Client) Peers(ctx context.Context) (node.PeerList, error) {
	var out node.PeerList
	return out, c.call(ctx, http.MethodGet, "peers", nil, &out)
}
