package quicnet

import (
	"context"

	"github.com/drive-node/drive-node/certs"
)

// requesterKey is the context key under which a peer's context names it.
type requesterKey struct{}

// Requester returns the peer a ContentSource call is made for: the
// context the transport passes to OpenContent and OpenChunkList (and a
// peer's Context) names it. That context ends when the request's stream
// does.
func Requester(ctx context.Context) (certs.DeviceID, bool) {
	id, ok := ctx.Value(requesterKey{}).(certs.DeviceID)
	return id, ok
}

// batchKey marks the context of a call that serves one content of a
// batch request.
type batchKey struct{}

// InBatch reports whether a ContentSource call serves one content of a
// batch: the peer asked for many small contents at once and takes them
// in order, so the source should not wait for any one of them (the peer
// asks for those it did not get one by one).
func InBatch(ctx context.Context) bool {
	b, _ := ctx.Value(batchKey{}).(bool)
	return b
}
