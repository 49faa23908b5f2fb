package quicnet

import (
	"context"

	"github.com/drive-node/drive-node/certs"
)

// requesterKey is the context key under which a peer's context names it.
type requesterKey struct{}

// Requester returns the peer a ContentSource call is made for: the
// context the transport passes to OpenContent and OpenChunkList (a peer's
// Context) names it.
func Requester(ctx context.Context) (certs.DeviceID, bool) {
	id, ok := ctx.Value(requesterKey{}).(certs.DeviceID)
	return id, ok
}
