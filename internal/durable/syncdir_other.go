//go:build !windows

package durable

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// SyncDir makes the creations, renames and removals in dir durable. A
// file system that cannot sync a directory (it reports EINVAL) keeps its
// metadata some other way, and is not an error.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, fs.ErrInvalid) {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}
