//go:build unix

package safeopen

import "syscall"

const nonblock = syscall.O_NONBLOCK
