//go:build !linux

package node

import (
	"io/fs"
	"os"
	"time"
)

// batchSync is false: each received file is fsynced on its own.
const batchSync = false

func syncFS(*os.Root) error { return nil }

// startWriteback does nothing: there is no portable way to start
// writeback without waiting for it.
func startWriteback(File, int64, int64) {}

// dataSync flushes f.
func dataSync(f File) error { return f.Sync() }

// sameDevice is never asked where batchSync is false.
func sameDevice(fs.FileInfo, fs.FileInfo) bool { return false }

// setMTime sets the access and modification times of f, open as name in
// folder, to mt, by name.
func setMTime(folder Folder, _ File, name string, mt time.Time) error {
	return folder.Chtimes(name, mt, mt)
}
