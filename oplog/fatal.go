package oplog

import (
	"fmt"
	"log/slog"
	"reflect"
	"runtime"
	"strings"
	"sync"
)

// failure is a log's stopped state. pebble's logger shares it, as pebble
// may report a fatal error from any goroutine, its own included.
type failure struct {
	dir  string
	once sync.Once
	err  error         // set before ch is closed
	ch   chan struct{} // closed once the log has failed
	// stuck is closed when pebble may hold its own locks for good: one of
	// its goroutines is held in Fatalf, or a panic left a commit half
	// done. pebble is then neither closed nor waited for.
	stuck     chan struct{}
	stuckOnce sync.Once
}

func newFailure(dir string) *failure {
	return &failure{dir: dir, ch: make(chan struct{}), stuck: make(chan struct{})}
}

// set records err as the failure unless one is recorded already, and
// returns the one recorded.
func (f *failure) set(err error) error {
	f.once.Do(func() {
		f.err = err
		close(f.ch)
	})
	return f.get()
}

// get returns the failure, or nil if the log has not failed.
func (f *failure) get() error {
	select {
	case <-f.ch:
		return f.err
	default:
		return nil
	}
}

func (f *failure) markStuck() { f.stuckOnce.Do(func() { close(f.stuck) }) }

// closable reports whether pebble may still be closed: it is not left
// holding its locks.
func (f *failure) closable() bool {
	select {
	case <-f.stuck:
		return false
	default:
		return true
	}
}

// fatalPanic carries a fatal error from Fatalf up to the guard below it.
type fatalPanic struct{ err error }

// guard runs fn, which calls into pebble, and returns its error. A fatal
// error pebble reports on this goroutine (through Fatalf, which panics
// with fatalPanic when a guard is on the stack) is returned instead of
// crashing. With recoverAll, every other panic is returned too, and marks
// pebble stuck: pebble panics on a failed WAL write while holding its
// commit lock. Without it, other panics go on up: they are not the disk's.
func (f *failure) guard(recoverAll bool, fn func() error) (err error) {
	defer func() {
		r := recover()
		if r == nil {
			return
		}
		if fp, ok := r.(fatalPanic); ok {
			err = fp.err
			return
		}
		if !recoverAll {
			panic(r)
		}
		f.markStuck()
		cause, ok := r.(error)
		if !ok {
			cause = fmt.Errorf("%v", r)
		}
		err = f.set(fmt.Errorf("%w: %s: pebble panicked: %w", ErrFailed, f.dir, cause))
	}()
	return fn()
}

// guardName is the name runtime frames give failure.guard.
var guardName = runtime.FuncForPC(reflect.ValueOf((*failure).guard).Pointer()).Name()

// guarded reports whether a guard is on the calling goroutine's stack, so
// that a panic from here is recovered by it.
func guarded() bool {
	pcs := make([]uintptr, 512)
	frames := runtime.CallersFrames(pcs[:runtime.Callers(2, pcs)])
	for {
		fr, more := frames.Next()
		if fr.Function == guardName {
			return true
		}
		if !more {
			return false
		}
	}
}

// pebbleFatal is a fatal error pebble reported: its message, wrapping the
// error among its arguments, if any (a failed write's, say).
type pebbleFatal struct {
	msg   string
	cause error
}

func (e *pebbleFatal) Error() string {
	if strings.HasPrefix(e.msg, "pebble: ") {
		return e.msg
	}
	return "pebble: " + e.msg
}
func (e *pebbleFatal) Unwrap() error { return e.cause }

// pebbleLogger routes pebble's messages to slog at debug level: they are
// about compactions and WAL recycling, not about the user's files. Its
// fatal errors stop the log instead of the process.
type pebbleLogger struct {
	l    *slog.Logger
	fail *failure
}

func (p pebbleLogger) Infof(format string, args ...any) {
	p.l.Debug("pebble: " + fmt.Sprintf(format, args...))
}
func (p pebbleLogger) Errorf(format string, args ...any) {
	p.l.Error("pebble: " + fmt.Sprintf(format, args...))
}

// Fatalf must not return: pebble goes on after a failed commit as if it
// had succeeded once Fatalf returns. It records the failure (closing
// Failed), then panics up to the guard of the log's own call into pebble
// (a commit, a read, Open) when there is one; in a goroutine of pebble's
// own (a flush writing the MANIFEST) it holds that goroutine for good,
// which leaves pebble stuck but the process running.
func (p pebbleLogger) Fatalf(format string, args ...any) {
	fatal := &pebbleFatal{msg: fmt.Sprintf(format, args...)}
	for _, a := range args {
		if err, ok := a.(error); ok {
			fatal.cause = err
			break
		}
	}
	p.l.Error("op log storage failed; the log takes no more ops", "dir", p.fail.dir, "err", fatal)
	guard := guarded()
	if !guard {
		// Marked before Failed closes: a Close that Failed wakes must
		// already see pebble stuck, or it waits on the locks this
		// goroutine holds for good.
		p.fail.markStuck()
	}
	err := p.fail.set(fmt.Errorf("%w: %s: %w", ErrFailed, p.fail.dir, fatal))
	if guard {
		panic(fatalPanic{err})
	}
	select {}
}
