//go:build !windows

package durable

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/drive-node/drive-node/internal/safeopen"
)

// SyncDir makes the creations, renames and removals in dir durable. A
// file system that cannot sync a directory (it reports EINVAL) keeps its
// metadata some other way, and is not an error.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return syncOpenDir(d, dir)
}

// SyncDirIn is SyncDir for the directory dir of root ("" is root itself).
// What is at dir is opened without waiting, whatever another program put
// there (see package safeopen).
func SyncDirIn(root *os.Root, dir string) error {
	if dir == "" {
		dir = "."
	}
	d, err := safeopen.In(root, dir, os.O_RDONLY, 0)
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return syncOpenDir(d, dir)
}

func syncOpenDir(d *os.File, dir string) error {
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, fs.ErrInvalid) {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}
