package node

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/drive-node/drive-node/certs"
	"github.com/drive-node/drive-node/internal/durable"
)

// MarkerName is a small file in the folder root that names this folder.
// A disk that did not mount, or a folder moved away and replaced by an
// empty one, lacks it: the node then pauses instead of taking the empty
// folder for "everything was deleted".
const MarkerName = ".drive-node-folder"

// Meta keys of the folder guard.
const (
	metaMarker   = "folder_marker"
	metaPaused   = "paused"
	metaDiskFull = "disk_full"
)

// initMarker makes sure the folder carries its marker: a new state gets a
// marker recorded, and the folder gets the file; an existing state checks
// that the folder is the one it synced.
//
// A state with no history (no op of any device in its log) never takes
// over a folder that carries a marker it did not record: another state
// synced that folder, most likely the real one on a disk that did not
// mount, and starting here would record the whole folder as new writes of
// a stranger. A state with history but no record of the marker (its
// database was lost and is rebuilt from the log) adopts the folder's.
func (n *Node) initMarker(ctx context.Context) error {
	want, ok, err := n.db.Meta(ctx, metaMarker)
	if err != nil {
		return err
	}
	path := filepath.Join(n.cfg.Folder, MarkerName)
	found := readMarker(path)
	noHistory := n.ops.Count() == 0
	switch {
	case (!ok || want == "") && found != "" && noHistory:
		return fmt.Errorf("state dir %s %w: folder %s was synced by another state dir (it holds %s): "+
			"if that state dir is on a disk that is not mounted, mount it; to start over as a new device "+
			"(and pair again), delete %s", n.cfg.StateDir, ErrFolderNotOurs, n.cfg.Folder, MarkerName, path)
	case !ok || want == "":
		id := found
		if id == "" {
			b := make([]byte, 16)
			rand.Read(b)
			id = hex.EncodeToString(b)
		}
		// The record first, on disk, then the file: a crash between the
		// two leaves a recorded marker the folder lacks, which the case
		// below writes again.
		if err := n.db.SetMetaSynced(ctx, metaMarker, id); err != nil {
			return err
		}
		if found == "" {
			if err := writeMarker(path, id); err != nil {
				return fmt.Errorf("folder %s: write %s: %w", n.cfg.Folder, MarkerName, err)
			}
		}
		return nil
	case found == "" && noHistory:
		// Recorded, and nothing ever synced: the first start was cut
		// between the record and the file. No history means nothing could
		// be taken for deleted.
		if err := writeMarker(path, want); err != nil {
			return fmt.Errorf("folder %s: write %s: %w", n.cfg.Folder, MarkerName, err)
		}
	}
	if err := n.checkSyncable(ctx); err != nil {
		n.pause(ctx, err.Error())
	} else {
		n.db.SetMeta(ctx, metaPaused, "")
	}
	return nil
}

// checkIdentityKept refuses to create a new identity for a folder that
// carries a marker: that folder was synced from a state dir that is not
// here now. On a NAS that is a state disk that did not mount; a new
// identity would be unknown to every peer and the folder's history lost
// with it. The daemon exits, and its service manager retries until the
// disk is back.
func checkIdentityKept(cfg Config) error {
	if _, err := certs.Load(cfg.StateDir); !errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	marker := filepath.Join(cfg.Folder, MarkerName)
	if readMarker(marker) == "" {
		return nil
	}
	return fmt.Errorf("state dir %s %w, but folder %s was synced before (it holds %s): "+
		"if the state dir is on a disk that is not mounted, mount it; to start over as a new device "+
		"(and pair again), delete %s", cfg.StateDir, ErrNoIdentity, cfg.Folder, MarkerName, marker)
}

func readMarker(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// writeMarker writes the folder's marker durably: a crash leaves the old
// marker or the new one, never a torn one that would read as another
// device's folder. Its temporary file is one the watcher ignores and a
// restart removes.
func writeMarker(path, id string) error {
	return durable.WriteFileVia(path, TempPrefix+"marker-*", []byte(id+"\n"), 0o644)
}

// checkSyncable returns why the node must not record or apply anything
// now (the state dir cannot take writes, or the folder is not the synced
// one), or nil.
func (n *Node) checkSyncable(ctx context.Context) error {
	if err := n.checkStateDir(); err != nil {
		return err
	}
	return n.checkFolder(ctx)
}

// checkStateDir returns why the state dir cannot safely take more writes,
// or nil. It is checked before every write to the op log: a write the log
// fails is fatal to it (its commit pipeline cannot go on after a failed
// WAL write), so the node stops writing while MinStateFree bytes are still
// free rather than when none are, and never writes into a state dir that is
// not the one it opened (a disk mounted over it, a directory replaced).
func (n *Node) checkStateDir() error {
	dir := n.cfg.StateDir
	st, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("state dir %s is unreadable (%v): a disk that did not mount?", dir, err)
	}
	if !os.SameFile(st, n.stateInfo) {
		return fmt.Errorf("state dir %s is not the one opened at start (another or an empty disk mounted over it?)", dir)
	}
	// The key is the identity (the certificate is made again from it at
	// the next start): a state dir without it is not this device's.
	if _, err := os.Stat(filepath.Join(dir, certs.KeyFile)); err != nil {
		return fmt.Errorf("state dir %s is unreadable: %w", dir, err)
	}
	if n.cfg.MinStateFree > 0 {
		if free, err := n.diskFree(dir); err == nil && free < uint64(n.cfg.MinStateFree) {
			return fmt.Errorf("state dir %s: disk nearly full (%.1f MiB free, %d MiB kept free for the op log and database)",
				dir, float64(free)/(1<<20), n.cfg.MinStateFree>>20)
		}
	}
	return nil
}

// waitForStateDir blocks while the state dir cannot take writes, pausing
// the node meanwhile. It returns nil once it can, or ctx's error.
func (n *Node) waitForStateDir(ctx context.Context) error {
	for {
		err := n.checkStateDir()
		if err == nil {
			return nil
		}
		n.pause(ctx, err.Error())
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-n.after(guardPoll):
		}
	}
}

// after is time.After on the node's clock.
func (n *Node) after(d time.Duration) <-chan time.Time { return n.clock.NewTimer(d).C() }

// guardPoll is how often a paused node checks whether it may resume.
const guardPoll = 2 * time.Second

// checkFolder returns why the folder at the configured path is not the one
// this node syncs, or nil when it is.
func (n *Node) checkFolder(ctx context.Context) error {
	want, _, err := n.db.Meta(ctx, metaMarker)
	if err != nil {
		return fmt.Errorf("state database unreadable: %w", err)
	}
	st, err := os.Stat(n.cfg.Folder)
	switch {
	case err != nil:
		return fmt.Errorf("folder %s is gone (%v): a disk that did not mount?", n.cfg.Folder, err)
	case !st.IsDir():
		return fmt.Errorf("folder %s is not a directory", n.cfg.Folder)
	}
	got := readMarker(filepath.Join(n.cfg.Folder, MarkerName))
	if got != want {
		return fmt.Errorf("folder %s lacks its %s marker: it looks like another or an empty disk (not mounted?)", n.cfg.Folder, MarkerName)
	}
	return nil
}

var errPaused = errors.New("folder paused")

// pause stops recording and applying: no scan result is trusted, so no
// deletion is sent to peers and nothing is written into the wrong disk.
// The watch loop is told to stop; Run then waits in waitUntilSyncable.
//
// The folder is closed while paused, so the node does not keep a wrong
// disk busy: the administrator can unmount it and mount the real one.
func (n *Node) pause(ctx context.Context, why string) {
	if !n.paused.Swap(true) {
		n.events.publish(EventPaused, EventFields{Reason: why})
		n.log.Error("folder paused: no change is recorded or applied until it is back", "reason", why)
		n.commitMu.Lock()
		if r := n.folderRoot(); r != nil {
			r.Close()
		}
		n.commitMu.Unlock()
		n.pauseKick.Kick()
	}
	// Best effort: a state dir that cannot take this write is itself the
	// reason, and the log says it.
	n.db.SetMeta(ctx, metaPaused, why)
}

// waitUntilSyncable blocks while the state dir cannot take writes or the
// folder is missing or not the synced one, checking every guardPoll, then
// reopens the folder and resumes.
func (n *Node) waitUntilSyncable(ctx context.Context) error {
	for {
		err := n.checkSyncable(ctx)
		if err == nil && !n.paused.Load() {
			return nil
		}
		if err == nil {
			// The checks pass; the folder is opened again (it may be
			// another mount of it). Opening can still fail (unmounted
			// meanwhile, no permission): that is one more reason to wait.
			var root Folder
			if root, err = n.openFolder(n.cfg.Folder); err == nil {
				n.resume(ctx, root)
				return nil
			}
			err = fmt.Errorf("folder %s cannot be opened: %w", n.cfg.Folder, err)
		}
		n.pause(ctx, err.Error())
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-n.after(guardPoll):
		}
	}
}

// resume takes root as the folder and ends a pause.
func (n *Node) resume(ctx context.Context, root Folder) {
	n.commitMu.Lock()
	if old := n.setFolder(root); old != nil {
		old.Close()
	}
	// Another disk may be mounted there now.
	n.probeVolume(ctx)
	n.paused.Store(false)
	n.commitMu.Unlock()
	n.db.SetMeta(ctx, metaPaused, "")
	n.events.publish(EventResumed, EventFields{Reason: "folder and state dir usable again"})
	n.log.Info("folder and state dir are usable again; resuming", "folder", n.cfg.Folder, "state", n.cfg.StateDir)
	n.kickApply()
}
