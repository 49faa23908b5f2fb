package durable

import "os"

// SyncDir does nothing on Windows, where a directory cannot be flushed:
// FlushFileBuffers needs a handle with write access, and a directory
// opened to read fails it with "Access is denied" (golang/go#75541), so
// trying would fail every write after its rename. NTFS journals its
// metadata, so a crash leaves a rename whole or undone, never torn; a
// rename just before a power loss may be undone, which is as durable as
// Windows makes a rename without write-through.
func SyncDir(dir string) error { return nil }

// SyncDirIn does nothing on Windows, as SyncDir.
func SyncDirIn(root *os.Root, dir string) error { return nil }
