//go:build unix

package node

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/drive-node/drive-node/content"
	"github.com/drive-node/drive-node/internal/fifotest"
	"github.com/drive-node/drive-node/internal/safeopen"
	"github.com/drive-node/drive-node/oplog"
)

// TestStateDirIsMadePrivate: a state dir left readable by an older
// drive-node (or made under a loose umask) is tightened at start, and what
// the op log and the database create in it is private too: they name every
// synced path.
func TestStateDirIsMadePrivate(t *testing.T) {
	defer syscall.Umask(syscall.Umask(0o022))
	folder := t.TempDir()
	stateDir := DefaultStateDir(folder, "")
	if err := os.MkdirAll(filepath.Join(stateDir, "oplog"), 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(stateDir, "oplog", "000001.log"), "")
	os.Chmod(stateDir, 0o755)
	n, err := Open(context.Background(), Config{Folder: folder, NoDiscovery: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	var seen int
	filepath.WalkDir(stateDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		if info, _ := d.Info(); info.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s has mode %v", p, info.Mode())
		}
		seen++
		return nil
	})
	if seen < 8 {
		t.Fatalf("only %d entries in the state dir", seen)
	}
}

// TestFolderDoesNotWaitOnAFIFO: anyone who can write in the folder can put
// a FIFO where a file was. The daemon opens files there to hash them and
// to serve them to peers; such an open must fail at once, not wait for a
// writer that never comes.
func TestFolderDoesNotWaitOnAFIFO(t *testing.T) {
	dir := t.TempDir()
	waited := fifotest.Make(t, filepath.Join(dir, "was-a-file"))
	root, err := OpenRootFolder(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	f, err := root.Open("was-a-file")
	if err == nil {
		f.Close()
	}
	if waited() || !errors.Is(err, safeopen.ErrNotRegular) {
		t.Fatalf("opening a FIFO: %v (waited for a writer: %v), want ErrNotRegular at once", err, waited())
	}
}

// TestReceivedModesAreNeverGroupOrWorldWritable: a peer's op sets the mode
// of what it creates here, but it cannot make a file or directory that
// every user of this device may change; the execute bits it sets stay.
func TestReceivedModesAreNeverGroupOrWorldWritable(t *testing.T) {
	defer syscall.Umask(syscall.Umask(0)) // what the daemon makes is then the op's mode, unmasked
	folder := t.TempDir()
	peer := pairedPeer(t, folder, "peer")
	n := startNode(t, folder, freeUDPPort(t))
	data := []byte("#!/bin/sh\n")
	src := &memSource{data: map[content.Hash][]byte{content.Sum(data): data}}
	ops := []oplog.Op{
		{Origin: peer.ID, Seq: 1, Lamport: 1, Kind: oplog.KindMkdir, Path: "shared", Mode: 0o777},
		{Origin: peer.ID, Seq: 2, Lamport: 2, Kind: oplog.KindWrite, Path: "shared/run.sh", Mode: 0o777,
			Hash: content.Sum(data), Size: int64(len(data)), MTime: time.Now().UnixNano()},
		{Origin: peer.ID, Seq: 3, Lamport: 3, Kind: oplog.KindWrite, Path: "notes.txt", Mode: 0o666,
			Hash: content.Sum(data), Size: int64(len(data)), MTime: time.Now().UnixNano()},
	}
	sendAsPeer(t, peer, n, src, ops)
	waitFor(t, "every op applied", func() string {
		if applied, _ := n.db.Applied(context.Background()); applied[peer.ID] != uint64(len(ops)) {
			return fmt.Sprintf("applied %d of %d", applied[peer.ID], len(ops))
		}
		return ""
	})
	for p, want := range map[string]fs.FileMode{"shared": 0o755, "shared/run.sh": 0o755, "notes.txt": 0o644} {
		if st, err := os.Stat(filepath.Join(folder, p)); err != nil || st.Mode().Perm() != want {
			t.Errorf("%s: %v, %v; want mode %v", p, st.Mode().Perm(), err, want)
		}
	}
}
