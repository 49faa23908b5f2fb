package node

import (
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"
)

// reasonRequested is why the node is paused after Pause.
const reasonRequested = "paused on request"

// ErrPausedOnRequest is why a paused node serves no content to peers.
var ErrPausedOnRequest = errors.New("sync is " + reasonRequested)

// pauseRequest is a pause asked for through Pause, apart from the pauses
// the node takes itself (a missing folder, a full state disk): those end
// when their reason does, this one when Resume is called.
type pauseRequest struct {
	mu      sync.Mutex
	resumed chan struct{} // nil when not paused; closed by Resume
}

// wait returns a channel closed when a requested pause ends, or nil when
// none is under way.
func (r *pauseRequest) wait() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.resumed
}

func (r *pauseRequest) on() bool { return r.wait() != nil }

// Pause stops syncing until Resume or until the daemon stops (a pause is
// not remembered across a restart): no received change is applied (an
// apply pass under way finishes), no op or Progress is sent to a peer
// and no content is served. Changes made here are still recorded in the
// op log, and peers' ops still received and kept, so nothing is lost and
// everything goes out or is applied after Resume. It reports whether the
// node was running unpaused.
func (n *Node) Pause(ctx context.Context) bool {
	r := &n.request
	r.mu.Lock()
	was := r.resumed == nil
	if was {
		r.resumed = make(chan struct{})
	}
	r.mu.Unlock()
	if was {
		n.log.Info("sync paused on request")
		n.events.publish(EventPaused, EventFields{Reason: reasonRequested})
		n.kickApply() // the pending report says why ops wait
	}
	return was
}

// Resume ends a pause that Pause began; the node then sends and applies
// what waited. It reports whether a requested pause was under way.
func (n *Node) Resume(ctx context.Context) bool {
	r := &n.request
	r.mu.Lock()
	ch := r.resumed
	r.resumed = nil
	r.mu.Unlock()
	if ch == nil {
		return false
	}
	close(ch)
	n.log.Info("sync resumed on request")
	n.events.publish(EventResumed, EventFields{Reason: "resumed on request"})
	n.kickApply()
	return true
}

// Rescan asks the watcher to look at the whole folder again now; what it
// finds changed is recorded as usual. It never blocks.
func (n *Node) Rescan() { n.rescanKick.Kick() }

// countedContent counts the bytes read from a content served to a peer.
type countedContent struct {
	io.ReadSeekCloser
	n *atomic.Uint64
}

func (c countedContent) Read(b []byte) (int, error) {
	k, err := c.ReadSeekCloser.Read(b)
	c.n.Add(uint64(k))
	return k, err
}
