package goroutines

import (
	"runtime"
	"testing"
)

func parkHere(ch chan struct{}) { <-ch }

func TestCount(t *testing.T) {
	ch, started := make(chan struct{}), make(chan struct{})
	defer close(ch)
	go func() { close(started); parkHere(ch) }()
	<-started
	for Count("chan receive", "goroutines.parkHere") != 1 {
		runtime.Gosched() // parkHere may not have parked yet
	}
	if n := Count("select", "goroutines.parkHere"); n != 0 {
		t.Fatalf("%d goroutines in parkHere in select", n)
	}
	if n := Count("", "goroutines.TestCount", "testing.tRunner"); n != 1 {
		t.Fatalf("%d goroutines run TestCount", n)
	}
}
