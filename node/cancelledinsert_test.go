package node

import (
	"context"
	"crypto"
	"fmt"
	"log/slog"
	"testing"

	"github.com/drive-node/drive-node/certs"
	"github.com/drive-node/drive-node/oplog"
	"github.com/drive-node/drive-node/quicnet"
)

// lateCommitLog is an op log whose InsertFolded behaves as oplog.Log's
// does when the caller's ctx ends after the request was queued: the
// caller stops waiting and gets ctx.Err(), the ops are committed anyway.
// The commit is held until the session's context (cancelled) has ended
// and, if the caller was told to stop waiting then, until it has: the
// order of a session replaced while the committer was busy.
type lateCommitLog struct {
	opLog
	cancelled <-chan struct{} // the session's end
	queued    chan struct{}   // closed when InsertFolded is called
	committed chan struct{}   // closed once the ops are in the log
}

func (l *lateCommitLog) InsertFolded(ctx context.Context, from certs.DeviceID, folded map[certs.DeviceID]uint64, ops ...oplog.Op) ([]oplog.Op, error) {
	type result struct {
		stored []oplog.Op
		err    error
	}
	res := make(chan result, 1)
	gaveUp := make(chan struct{})
	close(l.queued)
	go func() {
		defer close(l.committed)
		<-l.cancelled
		if ctx.Err() != nil {
			<-gaveUp
		}
		stored, err := l.opLog.InsertFolded(context.Background(), from, folded, ops...)
		res <- result{stored, err}
	}()
	select {
	case r := <-res:
		return r.stored, r.err
	case <-ctx.Done():
		close(gaveUp)
		return nil, ctx.Err()
	}
}

// TestReceiveOpsCancelledAnnouncesWhatTheLogStored cancels a session
// while the ops it received are being committed, as the duplicate-
// connection rule does to the connection it closes. The log commits them
// anyway, so the applier and the senders must hear of them: the next
// session's resend of the same ops is a duplicate the log stores nothing
// of, and would tell them nothing.
func TestReceiveOpsCancelledAnnouncesWhatTheLogStored(t *testing.T) {
	folder := t.TempDir()
	n, err := Open(context.Background(), Config{Folder: folder, NoDiscovery: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	peer, err := certs.LoadOrCreate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	addOrigin(t, n.ops, peer)
	ops := peerOps(peer.ID, 1, 3, 1, func(i int) string { return fmt.Sprintf("f%d.txt", i) }, func(i int) string { return unique("content") })
	sealRuns(t, ops, func(certs.DeviceID) crypto.Signer { return peer.Signer() }, prevIn(t, n.ops))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	l := &lateCommitLog{opLog: n.ops, cancelled: ctx.Done(), queued: make(chan struct{}), committed: make(chan struct{})}
	n.ops = l
	changed := n.logWatch.changed()
	n.applying.due.Store(false)

	returned := make(chan error, 1)
	go func() {
		returned <- n.receiveOps(ctx, &quicnet.Peer{ID: peer.ID}, ops, nil, newOriginGate(n, peer.ID), &unsignedRuns{}, newProgressBox())
	}()
	<-l.queued
	cancel()
	<-l.committed
	err = <-returned
	if got := n.ops.Highest(peer.ID); got != 3 {
		t.Fatalf("the log holds %d of the peer's ops, want 3", got)
	}
	select {
	case <-changed:
	default:
		t.Errorf("the log stored the ops of a cancelled session (receiveOps: %v), and the senders were not told", err)
	}
	if !n.applying.due.Load() {
		t.Errorf("the log stored the ops of a cancelled session (receiveOps: %v), and the applier was not kicked", err)
	}
}
