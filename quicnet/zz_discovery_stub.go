package quicnet

// TEMPORARY stub (lead): removed as soon as discovery.go lands.

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"time"

	"github.com/drive-node/drive-node/certs"
)

type Found struct {
	ID    certs.DeviceID
	Addrs []netip.AddrPort
}
type DiscoveryConfig struct {
	ID       certs.DeviceID
	Port     int
	Interval time.Duration
	Logger   *slog.Logger
}
type Discovery struct{}

func StartDiscovery(ctx context.Context, cfg DiscoveryConfig, found func(Found)) (*Discovery, error) {
	return nil, errors.New("stub")
}
func (d *Discovery) Close() error { return nil }
