// Package goroutines lets a test see where the goroutines of its process
// are: that the code under test has reached a blocking call is an event
// it can wait for, where a sleep would only hope for it.
package goroutines

import (
	"runtime"
	"strings"
)

// Count returns how many goroutines have every one of funcs (substrings
// of a frame, such as "(*Transport).Close") on their stacks and, when
// state is not "", are parked in that state (as the stack header says it:
// "select", "chan receive", "sleep", ...).
func Count(state string, funcs ...string) int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	count := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		header, _, _ := strings.Cut(g, "\n")
		if state != "" && !strings.Contains(header, "["+state) {
			continue
		}
		all := true
		for _, f := range funcs {
			all = all && strings.Contains(g, f)
		}
		if all {
			count++
		}
	}
	return count
}
