package clock

import (
	"sort"
	"sync"
	"time"
)

// Fake is a Clock that moves only when Advance is called. Its timers and
// tickers fire from Advance, in the order of their due times, each on a
// channel with room for one value (as the real ones: a tick nobody took
// is dropped).
type Fake struct {
	mu      sync.Mutex
	now     time.Time
	waiters []*fakeWaiter
	armed   chan struct{} // closed and replaced whenever a waiter is armed
}

// NewFake returns a fake clock reading start.
func NewFake(start time.Time) *Fake {
	return &Fake{now: start, armed: make(chan struct{})}
}

type fakeWaiter struct {
	f      *Fake
	c      chan time.Time
	due    time.Time
	period time.Duration // tickers; 0 for a timer
	active bool
}

func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *Fake) NewTimer(d time.Duration) Timer {
	w := &fakeWaiter{f: f, c: make(chan time.Time, 1)}
	f.arm(w, d)
	return fakeTimer{w}
}

func (f *Fake) NewTicker(d time.Duration) Ticker {
	if d <= 0 {
		panic("clock: non-positive interval for NewTicker")
	}
	w := &fakeWaiter{f: f, c: make(chan time.Time, 1), period: d}
	f.arm(w, d)
	return fakeTicker{w}
}

func (f *Fake) arm(w *fakeWaiter, d time.Duration) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	was := w.active
	if !was {
		f.waiters = append(f.waiters, w)
	}
	w.active = true
	w.due = f.now.Add(d)
	close(f.armed)
	f.armed = make(chan struct{})
	return was
}

func (f *Fake) disarm(w *fakeWaiter) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	was := w.active
	w.active = false
	for i, x := range f.waiters {
		if x == w {
			f.waiters = append(f.waiters[:i], f.waiters[i+1:]...)
			break
		}
	}
	return was
}

// Advance moves the clock on by d, firing every timer and ticker that
// falls due on the way, in order, each at its own due time.
func (f *Fake) Advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	end := f.now.Add(d)
	for {
		sort.SliceStable(f.waiters, func(i, j int) bool { return f.waiters[i].due.Before(f.waiters[j].due) })
		if len(f.waiters) == 0 || f.waiters[0].due.After(end) {
			break
		}
		w := f.waiters[0]
		f.now = w.due
		select {
		case w.c <- w.due:
		default:
		}
		if w.period > 0 {
			w.due = w.due.Add(w.period)
		} else {
			w.active = false
			f.waiters = f.waiters[1:]
		}
	}
	f.now = end
}

// Armed returns how many timers and tickers are running, and a channel
// closed the next time one is armed or reset: a test waits on it to know
// that the code under test has got as far as waiting for the clock.
func (f *Fake) Armed() (int, <-chan struct{}) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.waiters), f.armed
}

type fakeTimer struct{ w *fakeWaiter }

func (t fakeTimer) C() <-chan time.Time { return t.w.c }
func (t fakeTimer) Stop() bool          { return t.w.f.disarm(t.w) }
func (t fakeTimer) Reset(d time.Duration) bool {
	return t.w.f.arm(t.w, d)
}

type fakeTicker struct{ w *fakeWaiter }

func (t fakeTicker) C() <-chan time.Time { return t.w.c }
func (t fakeTicker) Stop()               { t.w.f.disarm(t.w) }
