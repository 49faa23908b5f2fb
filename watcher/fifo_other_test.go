//go:build !unix

package watcher

import "errors"

func mkfifo(path string) error { return errors.New("no fifos here") }
