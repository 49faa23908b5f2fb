//go:build !windows

package node

import (
	"errors"
	"io/fs"
	"os"

	"github.com/drive-node/drive-node/internal/safeopen"
)

// syncDir makes a rename or removal inside dir durable.
func syncDir(root *os.Root, dir string) error {
	if dir == "" {
		dir = "."
	}
	d, err := safeopen.In(root, dir, os.O_RDONLY, 0)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, fs.ErrInvalid) {
		return err
	}
	return nil
}
