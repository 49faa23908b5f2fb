// Package durable writes small files so that a crash at any instant leaves
// either the old file or the new one, never a torn or empty one, and the
// new one survives a power loss once WriteFile returns.
package durable

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// WriteFile writes data to path with the permissions perm: to a temporary
// file in the same directory, fsynced, renamed over path, and then the
// directory fsynced so the rename itself is on disk. On error the
// temporary file is removed and path is as it was; the error names path.
func WriteFile(path string, data []byte, perm fs.FileMode) error {
	return WriteFileVia(path, "."+filepath.Base(path)+".tmp-*", data, perm)
}

// WriteFileVia is WriteFile with the temporary file named by pattern (as
// os.CreateTemp takes it): a directory that is watched or synced can name
// it so that it is ignored, and found and removed after a crash.
func WriteFileVia(path, pattern string, data []byte, perm fs.FileMode) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			os.Remove(tmp)
			err = fmt.Errorf("write %s: %w", path, err)
		}
	}()
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return syncDir(dir)
}

// MkdirAll creates dir and the directories above it that are missing, with
// the permissions perm, and syncs the directory that holds each one it
// created: a file written durably inside a new directory is lost in a
// power cut all the same if the directory's own entry is.
func MkdirAll(dir string, perm fs.FileMode) error {
	var made []string
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil || filepath.Dir(d) == d {
			break
		}
		made = append(made, d)
	}
	if err := os.MkdirAll(dir, perm); err != nil {
		return err
	}
	for _, d := range made {
		if err := syncDir(filepath.Dir(d)); err != nil {
			return err
		}
	}
	return nil
}

// syncDir is SyncDir; tests count its calls.
var syncDir = SyncDir
