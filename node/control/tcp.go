package control

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/drive-node/drive-node/internal/durable"
)

// TokenName is the file in the state directory holding the bearer token
// the TCP API asks for.
const TokenName = "api-token"

// ErrNotLoopback is returned for a TCP address that other machines could
// reach when that was not allowed.
var ErrNotLoopback = errors.New("not a loopback address (the API and metrics are for this machine unless allowed)")

// LoadOrCreateToken returns the API token kept in stateDir, creating it
// (32 random bytes, in hex, mode 0600, written durably) on first use.
func LoadOrCreateToken(stateDir string) (string, error) {
	path := filepath.Join(stateDir, TokenName)
	if b, err := os.ReadFile(path); err == nil {
		if tok := strings.TrimSpace(string(b)); len(tok) >= 32 {
			return tok, nil
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("api token %s: %w", path, err)
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("api token: %w", err)
	}
	tok := hex.EncodeToString(b)
	if err := durable.WriteFileVia(path, TokenName+"-*", []byte(tok+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("api token %s: %w", path, err)
	}
	return tok, nil
}

// CheckLoopback returns ErrNotLoopback unless addr (host:port) names a
// loopback address: an IP, or "localhost".
func CheckLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("address %q: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("address %q: %w", addr, ErrNotLoopback)
	}
	return nil
}

// TCPConfig says where ServeTCP listens.
type TCPConfig struct {
	Addr string // host:port
	// StateDir holds the token (see LoadOrCreateToken).
	StateDir string
	// AllowRemote lets Addr be other than a loopback address.
	AllowRemote bool
	// Ready, if set, is called with the address listened on.
	Ready func(net.Addr)
}

// ServeTCP serves the API the control socket serves on cfg.Addr, to
// requests carrying the state directory's token ("Authorization: Bearer
// TOKEN"); any other request is refused with 401 before it reaches the
// node. It answers until ctx ends.
func ServeTCP(ctx context.Context, n Daemon, cfg TCPConfig, log *slog.Logger) error {
	if !cfg.AllowRemote {
		if err := CheckLoopback(cfg.Addr); err != nil {
			return err
		}
	}
	tok, err := LoadOrCreateToken(cfg.StateDir)
	if err != nil {
		return err
	}
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, "tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("api %s: %w", cfg.Addr, err)
	}
	if cfg.Ready != nil {
		cfg.Ready(l.Addr())
	}
	log.Info("API listening", "addr", l.Addr().String(), "token", filepath.Join(cfg.StateDir, TokenName))
	return serve(ctx, l, requireToken(tok, newMux(n, log)))
}

// requireToken passes on only the requests that carry tok as a bearer
// token, compared in constant time.
func requireToken(tok string, next http.Handler) http.Handler {
	want := []byte("Bearer " + tok)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := []byte(r.Header.Get("Authorization"))
		if subtle.ConstantTimeCompare(got, want) != 1 {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("WWW-Authenticate", `Bearer realm="drive-node"`)
			w.WriteHeader(http.StatusUnauthorized)
			json.NewEncoder(w).Encode(errorBody{"missing or wrong token (see " + TokenName + " in the state directory)"})
			return
		}
		next.ServeHTTP(w, r)
	})
}
