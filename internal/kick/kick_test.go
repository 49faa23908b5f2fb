package kick

import "testing"

func TestKicksCoalesceAndWait(t *testing.T) {
	var s Signal
	select {
	case <-s.C():
		t.Fatal("a wake-up before any kick")
	default:
	}
	for range 5 {
		s.Kick() // never blocks, though nobody receives
	}
	select {
	case <-s.C():
	default:
		t.Fatal("the kicks were lost")
	}
	select {
	case <-s.C():
		t.Fatal("five kicks woke the receiver twice")
	default:
	}
	done := make(chan struct{})
	go func() { <-s.C(); close(done) }()
	s.Kick()
	<-done
}

func TestBroadcastWakesEveryWaiterOnce(t *testing.T) {
	var b Broadcast
	b.Fire() // nobody waits: nothing to do, never blocks
	first, second := b.Wait(), b.Wait()
	select {
	case <-first:
		t.Fatal("a wake-up before any fire")
	default:
	}
	b.Fire()
	for i, ch := range []<-chan struct{}{first, second} {
		select {
		case <-ch:
		default:
			t.Fatalf("waiter %d not woken", i)
		}
	}
	select {
	case <-b.Wait():
		t.Fatal("a wait taken after the fire is woken by it")
	default:
	}
}
