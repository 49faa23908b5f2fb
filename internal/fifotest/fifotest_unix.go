//go:build unix

package fifotest

import (
	"os"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Make creates a FIFO at path. Should the code under test wait to open it,
// a writer comes after two seconds to end the wait, so that the test fails
// instead of hanging; waited then reports true.
func Make(t testing.TB, path string) (waited func() bool) {
	t.Helper()
	if err := syscall.Mkfifo(path, 0o644); err != nil {
		t.Fatal(err)
	}
	var w atomic.Bool
	release := time.AfterFunc(2*time.Second, func() {
		w.Store(true)
		if f, err := os.OpenFile(path, os.O_RDWR, 0); err == nil {
			f.Close()
		}
	})
	t.Cleanup(func() { release.Stop() })
	return w.Load
}
