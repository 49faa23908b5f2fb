//go:build !unix

package folder

// sysOf is nil where the engine reads no inode numbers.
func sysOf(uint64) any { return nil }
