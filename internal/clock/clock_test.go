package clock

import (
	"testing"
	"time"
)

func TestFakeFiresInOrderAtDueTimes(t *testing.T) {
	start := time.Unix(100, 0)
	f := NewFake(start)
	tm := f.NewTimer(300 * time.Millisecond)
	tk := f.NewTicker(100 * time.Millisecond)
	if n, _ := f.Armed(); n != 2 {
		t.Fatalf("%d armed, want 2", n)
	}
	f.Advance(99 * time.Millisecond)
	select {
	case <-tk.C():
		t.Fatal("ticker fired early")
	case <-tm.C():
		t.Fatal("timer fired early")
	default:
	}
	f.Advance(time.Millisecond)
	if got := <-tk.C(); !got.Equal(start.Add(100 * time.Millisecond)) {
		t.Fatalf("tick at %v", got.Sub(start))
	}
	// Two more periods while nobody reads: one tick waits, one is dropped.
	f.Advance(200 * time.Millisecond)
	if got := <-tk.C(); !got.Equal(start.Add(200 * time.Millisecond)) {
		t.Fatalf("tick at %v, want the first one not taken", got.Sub(start))
	}
	if got := <-tm.C(); !got.Equal(start.Add(300 * time.Millisecond)) {
		t.Fatalf("timer at %v", got.Sub(start))
	}
	if tm.Stop() {
		t.Fatal("Stop of a fired timer reported it running")
	}
	if tm.Reset(50 * time.Millisecond) {
		t.Fatal("Reset of a fired timer reported it running")
	}
	_, armed := f.Armed()
	if !tm.Stop() {
		t.Fatal("Stop of a running timer reported it stopped")
	}
	f.Advance(time.Second)
	select {
	case <-tm.C():
		t.Fatal("a stopped timer fired")
	default:
	}
	select {
	case <-armed:
		t.Fatal("Armed's channel closed with nothing armed")
	default:
	}
	tk.Stop()
	f.NewTimer(time.Second)
	<-armed
	if got := f.Now(); !got.Equal(start.Add(1300 * time.Millisecond)) {
		t.Fatalf("now %v", got.Sub(start))
	}
}
