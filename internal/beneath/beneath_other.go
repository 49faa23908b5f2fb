//go:build !linux

package beneath

import (
	"io/fs"
	"os"
)

// supported is false: only Linux resolves a path beneath a directory in
// one call.
const supported = false

func (d *Dir) lstat(int, string) (fs.FileInfo, bool, error) { return nil, false, nil }

func (d *Dir) rename(int, string, string) (bool, error) { return false, nil }

func sameInode(fs.FileInfo, fs.FileInfo) (same, ok bool) { return false, false }

func (d *Dir) openFile(int, string, int, fs.FileMode) (*os.File, bool, error) { return nil, false, nil }

func (d *Dir) noSymlinkAbove(int, string) bool { return false }

func (d *Dir) link(int, string, string) (bool, error) { return false, nil }
