package oplog

import (
	"sync"

	"github.com/cockroachdb/pebble/v2"
)

// grantScheduler is pebble's default compaction scheduler
// (ConcurrencyLimitScheduler) without its 100 ms sampling ticker: an idle
// daemon's log was woken ten times a second to find no compaction
// wanted. It grants compactions up to what the DB allows when pebble
// asks (TrySchedule), when a compaction ends (Done) and when a flush may
// have raised the allowance (UpdateGetAllowedWithoutPermission, which
// pebble calls after each flush). Between those events nothing changes
// the allowance or the waiting work of this one DB, so the ticker only
// shortened a lag that a single small log does not have.
type grantScheduler struct {
	db pebble.DBForCompaction

	mu           sync.Mutex
	granting     bool // a grant round runs; rounds are serialised
	grantingDone *sync.Cond
	running      int  // compactions granted and not yet Done
	allowed      int  // the allowance last sampled
	unregistered bool // no grant from now on

	poke chan struct{} // a grant round is wanted (buffered 1)
	stop chan struct{} // closed by Unregister
	done chan struct{} // closed when the granter goroutine ends
}

var _ pebble.CompactionScheduler = (*grantScheduler)(nil)

func newGrantScheduler() *grantScheduler {
	s := &grantScheduler{poke: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	s.grantingDone = sync.NewCond(&s.mu)
	return s
}

func (s *grantScheduler) Register(_ int, db pebble.DBForCompaction) {
	s.db = db
	go s.granter()
}

// granter runs the grant rounds UpdateGetAllowedWithoutPermission asks
// for: that call may come while pebble holds locks a round takes.
func (s *grantScheduler) granter() {
	defer close(s.done)
	for {
		select {
		case <-s.stop:
			return
		case <-s.poke:
			s.mu.Lock()
			s.grantLockedAndUnlock()
		}
	}
}

func (s *grantScheduler) Unregister() {
	close(s.stop)
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	s.unregistered = true
	for s.granting {
		s.grantingDone.Wait()
	}
}

func (s *grantScheduler) TrySchedule() (bool, pebble.CompactionGrantHandle) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.unregistered {
		return false, nil
	}
	s.allowed = s.db.GetAllowedWithoutPermission()
	if s.allowed > s.running {
		s.running++
		return true, s
	}
	return false, nil
}

func (s *grantScheduler) UpdateGetAllowedWithoutPermission() {
	s.mu.Lock()
	allowed := s.db.GetAllowedWithoutPermission()
	raised := allowed > s.allowed
	s.allowed = allowed
	s.mu.Unlock()
	if raised {
		select {
		case s.poke <- struct{}{}:
		default:
		}
	}
}

func (s *grantScheduler) Started()                                          {}
func (s *grantScheduler) MeasureCPU(pebble.CompactionGoroutineKind)         {}
func (s *grantScheduler) CumulativeStats(pebble.CompactionGrantHandleStats) {}

func (s *grantScheduler) Done() {
	s.mu.Lock()
	s.running--
	s.grantLockedAndUnlock()
}

// grantLockedAndUnlock grants waiting compactions up to the allowance,
// asking the DB for them without holding s.mu (Schedule may call back
// into TrySchedule's state). It is called with s.mu held and returns with
// it released.
func (s *grantScheduler) grantLockedAndUnlock() {
	defer s.mu.Unlock()
	for s.granting {
		s.grantingDone.Wait()
	}
	if s.unregistered {
		return
	}
	s.allowed = s.db.GetAllowedWithoutPermission()
	toGrant := s.allowed - s.running
	if toGrant <= 0 {
		return
	}
	s.granting = true
	s.mu.Unlock()
	for ; toGrant > 0; toGrant-- {
		if waiting, _ := s.db.GetWaitingCompaction(); !waiting {
			break
		}
		if !s.db.Schedule(s) {
			break
		}
		s.mu.Lock()
		s.running++
		s.mu.Unlock()
	}
	s.mu.Lock()
	s.granting = false
	s.grantingDone.Broadcast()
}
