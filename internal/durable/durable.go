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
	return SyncDir(dir)
}
