// Package kick holds wake-up signals that never block the one who gives
// them: Signal wakes one receiver, Broadcast every waiter.
//
// A Signal holds at most one pending wake-up: any number of Kicks between
// two receives on C wake the receiver once, and a Kick with nobody waiting
// is kept until someone receives. It suits "there is work; look again"
// between goroutines, where the receiver then reads the current state and
// a lost duplicate costs nothing.
package kick

import "sync"

// Signal is a wake-up signal; the zero value is ready to use. It must not
// be copied after first use.
type Signal struct {
	once sync.Once
	ch   chan struct{}
}

func (s *Signal) init() { s.once.Do(func() { s.ch = make(chan struct{}, 1) }) }

// Kick wakes the receiver, now or at its next receive. It never blocks.
func (s *Signal) Kick() {
	s.init()
	select {
	case s.ch <- struct{}{}:
	default:
	}
}

// C is the channel to receive wake-ups from.
func (s *Signal) C() <-chan struct{} {
	s.init()
	return s.ch
}

// Broadcast wakes every waiter at once; the zero value is ready to use. A
// waiter takes the channel of the next Fire with Wait before it looks at
// the state it waits on, so that a Fire between its look and its receive
// is not missed.
type Broadcast struct {
	mu sync.Mutex
	ch chan struct{}
}

// Wait returns a channel that is closed at the next Fire.
func (b *Broadcast) Wait() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ch == nil {
		b.ch = make(chan struct{})
	}
	return b.ch
}

// Fire wakes everyone waiting. It never blocks.
func (b *Broadcast) Fire() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ch != nil {
		close(b.ch)
		b.ch = nil
	}
}
