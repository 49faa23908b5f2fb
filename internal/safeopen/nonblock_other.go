//go:build !unix

package safeopen

// nonblock is nothing where FIFOs cannot be opened by name (Windows).
const nonblock = 0
