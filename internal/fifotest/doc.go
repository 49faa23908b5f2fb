// Package fifotest makes FIFOs for tests of code that must never wait to
// open one (see package safeopen). It has no code where FIFOs cannot be
// made by name (Windows).
package fifotest
