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
