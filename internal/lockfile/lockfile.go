// Package lockfile gives a process exclusive use of a directory through an
// OS advisory lock on a file inside it. The lock is released by the OS
// when the process dies, so a crash never leaves a stale lock behind.
package lockfile

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// ErrLocked is wrapped by Acquire when another process holds the lock.
var ErrLocked = errors.New("in use by another drive-node")

// Lock is a held lock.
type Lock struct {
	f    *os.File
	path string
}

// Acquire takes the lock at path without waiting. When another process
// holds it, the error wraps ErrLocked and names that process's pid if it
// wrote one.
func Acquire(path string) (*Lock, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := lock(f); err != nil {
		f.Close()
		if errors.Is(err, errWouldBlock) {
			holder := ""
			if b, rerr := os.ReadFile(path); rerr == nil && len(strings.TrimSpace(string(b))) > 0 {
				holder = " (pid " + strings.TrimSpace(string(b)) + ")"
			}
			return nil, fmt.Errorf("%s is %w%s", path, ErrLocked, holder)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	// The pid is informational; failing to write it does not matter.
	f.Truncate(0)
	f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return &Lock{f: f, path: path}, nil
}

// AcquireWait is Acquire retried for up to wait while the lock is held,
// so a brief holder (Held, probing from another process) does not make
// the caller fail.
func AcquireWait(path string, wait time.Duration) (*Lock, error) {
	deadline := time.Now().Add(wait)
	for {
		l, err := Acquire(path)
		if err == nil || !errors.Is(err, ErrLocked) || time.Now().After(deadline) {
			return l, err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Held reports whether some process holds the lock at path. It probes
// with a shared lock for the length of the check and writes nothing, so
// probes running at once never see each other as the holder, and the
// holder's pid stays in the file.
func Held(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false // no lock file: nothing ever held it
	}
	defer f.Close()
	if err := lockShared(f); err != nil {
		return errors.Is(err, errWouldBlock)
	}
	unlock(f)
	return false
}

// HolderPID returns the pid the current or last holder wrote into the lock
// file at path, or 0.
func HolderPID(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// Release gives the lock up.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	unlock(l.f)
	err := l.f.Close()
	l.f = nil
	return err
}
