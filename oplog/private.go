package oplog

import (
	"fmt"
	"io"
	"os"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// privateFS is a file system on which every file and directory pebble
// creates is private to the user (0600 and 0700). pebble creates them 0666
// and 0755 less the umask, which is usually 0644 and 0755: the log names
// every synced path, and other local users could read it. The mode is set
// after creating, so it holds whatever the umask.
type privateFS struct{ vfs.FS }

func (p privateFS) Create(name string, category vfs.DiskWriteCategory) (vfs.File, error) {
	return privateFile(p.FS.Create(name, category))(name)
}

func (p privateFS) OpenReadWrite(name string, category vfs.DiskWriteCategory, opts ...vfs.OpenOption) (vfs.File, error) {
	return privateFile(p.FS.OpenReadWrite(name, category, opts...))(name)
}

func (p privateFS) Lock(name string) (io.Closer, error) {
	return privateFile(p.FS.Lock(name))(name)
}

func (p privateFS) MkdirAll(dir string, _ os.FileMode) error {
	if err := p.FS.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("oplog: make %s private: %w", dir, err)
	}
	return nil
}

func (p privateFS) Unwrap() vfs.FS { return p.FS }

// privateFile makes the file just opened at name private, closing it if
// that fails.
func privateFile[F io.Closer](f F, err error) func(name string) (F, error) {
	return func(name string) (F, error) {
		if err != nil {
			return f, err
		}
		if err := os.Chmod(name, 0o600); err != nil {
			f.Close()
			var none F
			return none, fmt.Errorf("oplog: make %s private: %w", name, err)
		}
		return f, nil
	}
}
