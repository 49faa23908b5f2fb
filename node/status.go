package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/drive-node/drive-node/certs"
	"github.com/drive-node/drive-node/internal/lockfile"
	"github.com/drive-node/drive-node/state"
)

// Status is what `drive-node status` shows. It is read from the state
// directory, so it works whether or not the daemon runs.
type Status struct {
	Device     string `json:"device"`
	Folder     string `json:"folder"`
	StateDir   string `json:"state_dir"`
	Running    bool   `json:"running"`
	PID        int    `json:"pid,omitempty"`
	Ready      bool   `json:"ready"`               // running and its start-up scan is recorded
	Paused     string `json:"paused,omitempty"`    // why the folder is paused, if it is
	DiskFull   string `json:"disk_full,omitempty"` // set while received changes wait for space
	Files      int    `json:"files"`
	Dirs       int    `json:"dirs"`
	Tombstones int    `json:"tombstones"`
	Bytes      int64  `json:"bytes"`
	Ops        uint64 `json:"ops"`
	// FoldedAt is the op count at which the log was last folded (its
	// superseded ops removed); 0 if it never was.
	FoldedAt   uint64       `json:"folded_at,omitempty"`
	LastChange *time.Time   `json:"last_change,omitempty"`
	Peers      []PeerStatus `json:"peers"`
	Conflicts  []Conflict   `json:"conflicts"`
	// PendingOps counts the ops in the log not yet applied to the folder;
	// Pending says, per origin, how many and why. Zero means nothing
	// received is left to do.
	PendingOps uint64    `json:"pending_ops"`
	Pending    []Pending `json:"pending"`
	// Unplaced lists received changes this device cannot carry out (a
	// name its file system refuses, a directory it may not write): they
	// are skipped here, and the sending device's later changes go on.
	Unplaced []Unplaced `json:"unplaced"`
	// FileSystem is what the last probe found about the folder's file
	// system (nil before the daemon's first start).
	FileSystem *FileSystem `json:"filesystem,omitempty"`
	// Versions is the version store: whether it is on, its schedule,
	// and what it holds.
	Versions VersionsStatus `json:"versions"`
	// Held lists the runs of changes the brake holds (see Node.Approve
	// and Node.Reject); Brake is the rule the daemon last ran with.
	Held  []HeldRun `json:"held"`
	Brake string    `json:"brake,omitempty"`
	// Restores are the most recent restores, newest first.
	Restores []RestoreSummary `json:"restores"`
	// Role is the role the daemon last ran with (see Role).
	Role string `json:"role,omitempty"`
	// LocalChanges lists (the first 1,000 of) LocalChangeCount changes a
	// receive-only device keeps to itself; `drive-node revert` puts the
	// mesh's version back.
	LocalChanges     []LocalChange `json:"local_changes"`
	LocalChangeCount int           `json:"local_change_count"`
	// Differing lists (the first 1,000 of) DifferingCount paths where
	// peers made changes a send-only device did not carry out; `drive-node
	// override` sends this device's version again.
	Differing      []Differing `json:"differing"`
	DifferingCount int         `json:"differing_count"`
	// Ignored counts the peers' changes set aside because their paths are
	// ignored here; they are carried out if the rules change.
	Ignored int `json:"ignored"`
	// Live reports what only the running daemon knows (see Node.Status);
	// nil when the status was read from the state directory.
	Live *LiveStatus `json:"live,omitempty"`
	// State is this device's state digest as the daemon last computed it
	// (nil before the first); each peer's is in its PeerStatus.
	State *StateDigest `json:"state,omitempty"`
}

// LocalChange is a change a receive-only device keeps to itself, as status
// lists it.
type LocalChange struct {
	Path string    `json:"path"`
	Kind string    `json:"kind"`
	At   time.Time `json:"at"`
}

// VersionsStatus is what status shows of the version store.
type VersionsStatus struct {
	// Keep is the retention schedule ("off" when versions are off), and
	// MaxShare the largest share of the disk the store takes, as the
	// daemon last ran with them.
	Keep     string  `json:"keep"`
	MaxShare float64 `json:"max_share,omitempty"`
	Versions int     `json:"versions"`
	Contents int     `json:"contents"`
	Bytes    int64   `json:"bytes"`
}

// RestoreSummary is one restore as status lists it.
type RestoreSummary struct {
	At          time.Time `json:"at"`
	Paths       []string  `json:"paths"`
	To          string    `json:"to"` // the time or version restored to
	Restored    int       `json:"restored"`
	Removed     int       `json:"removed"`
	Unchanged   int       `json:"unchanged"`
	Unavailable int       `json:"unavailable"`
}

// PeerStatus is one paired device as status shows it. Behind counts the
// ops of this device's log that the peer is not known to have (it is
// zero when the peer has received everything, whether or not it has
// applied it: its own status says that).
type PeerStatus struct {
	ID        string     `json:"id"`
	Name      string     `json:"name,omitempty"`
	Connected bool       `json:"connected"`
	Address   string     `json:"address,omitempty"`
	LastSeen  *time.Time `json:"last_seen,omitempty"`
	Behind    uint64     `json:"ops_behind"`
	Error     string     `json:"error,omitempty"`

	// LastAddress is the address the device was last connected at.
	LastAddress string `json:"last_address,omitempty"`
	// PairedBy is how the device was paired: "hand", "code" or
	// "introduction" (see docs/pairing.md).
	PairedBy string `json:"paired_by,omitempty"`
	// IntroducedBy is the mesh member whose introduction paired the
	// device, if one did.
	IntroducedBy string `json:"introduced_by,omitempty"`
	// Progress, for a connected peer of a running daemon (Node.Status),
	// is what is left to exchange with it.
	*PeerProgress
	// State is the state digest the peer last announced (nil before its
	// first), and whether it is this device's.
	State *PeerState `json:"state,omitempty"`
}

// Conflict is a conflict copy the node made.
type Conflict struct {
	Copy     string    `json:"copy"`
	Original string    `json:"original"`
	Created  time.Time `json:"created"`
}

// conflictOf is a conflict copy's record as status shows it.
func conflictOf(c state.Conflict) Conflict {
	return Conflict{Copy: c.CopyPath, Original: c.OriginalPath, Created: time.Unix(0, c.CreatedAt).UTC()}
}

// openStateDB opens the database of a state dir that must already exist,
// read-only and without taking the daemon's lock: SQLite lets the CLI and
// the daemon share it, and a look at the state never changes it (nor
// migrates a database the daemon has not upgraded yet).
func openStateDB(ctx context.Context, stateDir string) (*state.DB, error) {
	if _, err := os.Stat(stateDir); err != nil {
		return nil, fmt.Errorf("state dir %s: %w (has drive-node run on this folder?)", stateDir, err)
	}
	// Status never creates a database: an empty state dir is most likely
	// a disk that did not mount over the real one.
	dbPath := filepath.Join(stateDir, dbName)
	if _, err := os.Stat(dbPath); err != nil {
		return nil, fmt.Errorf("state dir %s holds no drive-node database (%w): a disk that did not mount, or the wrong --state?", stateDir, err)
	}
	return state.OpenReadOnly(ctx, dbPath)
}

// ReadStatus reads the status of the node whose state lives in stateDir.
func ReadStatus(ctx context.Context, stateDir string) (Status, error) {
	st := Status{StateDir: stateDir, Peers: []PeerStatus{}, Conflicts: []Conflict{}, Pending: []Pending{}, Unplaced: []Unplaced{},
		Held: []HeldRun{}, Restores: []RestoreSummary{}, LocalChanges: []LocalChange{}, Differing: []Differing{}}
	// The certificate names the device; the private key is not read.
	if id, err := certs.ReadID(stateDir); err == nil {
		st.Device = id.String()
	}
	db, err := openStateDB(ctx, stateDir)
	if err != nil {
		return st, err
	}
	defer db.Close()
	lockPath := filepath.Join(stateDir, lockName)
	st.Running = lockfile.Held(lockPath)
	meta := func(k string) int64 {
		v, _, _ := db.Meta(ctx, k)
		i, _ := strconv.ParseInt(v, 10, 64)
		return i
	}
	st.Folder, _, _ = db.Meta(ctx, metaFolder)
	if raw, ok, _ := db.Meta(ctx, metaVolume); ok {
		var fs FileSystem
		if json.Unmarshal([]byte(raw), &fs) == nil {
			st.FileSystem = &fs
		}
	}
	if st.Running {
		st.Paused, _, _ = db.Meta(ctx, metaPaused)
		st.DiskFull, _, _ = db.Meta(ctx, metaDiskFull)
	}
	if st.Running {
		st.PID = lockfile.HolderPID(lockPath)
		// Ready only when this run (the lock holder) wrote the start and
		// then the readiness: values from an earlier run do not count.
		st.Ready = int64(st.PID) == meta(metaPID) && meta(metaStartedAt) != 0 && meta(metaReadyAt) >= meta(metaStartedAt)
	}
	st.FoldedAt = uint64(max(meta(metaFoldedAt), 0))
	if t := meta(metaLastChange); t != 0 {
		tt := time.Unix(0, t).UTC()
		st.LastChange = &tt
	}
	stats, err := db.Stats(ctx)
	if err != nil {
		return st, err
	}
	st.Files, st.Dirs, st.Tombstones, st.Bytes, st.Ops = stats.Files, stats.Dirs, stats.Tombstones, stats.Bytes, stats.Ops
	peers, err := db.Peers(ctx)
	if err != nil {
		return st, err
	}
	names := map[string]string{st.Device: "this device"}
	for _, p := range peers {
		names[p.ID.String()] = p.Name
		st.Peers = append(st.Peers, peerStatus(p, st.Running))
	}
	if st.Unplaced, err = readUnplaced(ctx, db); err != nil {
		return st, err
	}
	for i := range st.Unplaced {
		st.Unplaced[i].Origin = originName(st.Unplaced[i].Origin, names)
	}
	if st.Pending, st.PendingOps, err = readPending(ctx, db, st.Running, names); err != nil {
		return st, err
	}
	conflicts, err := db.Conflicts(ctx)
	if err != nil {
		return st, err
	}
	for _, c := range conflicts {
		st.Conflicts = append(st.Conflicts, conflictOf(c))
	}
	readHistoryStatus(ctx, db, &st)
	if err := readDigestStatus(ctx, db, &st); err != nil {
		return st, err
	}
	if err := readRoleStatus(ctx, db, names, &st); err != nil {
		return st, err
	}
	return st, nil
}

// readRoleStatus fills in the role, what it keeps apart, and what the
// ignore rules set aside.
func readRoleStatus(ctx context.Context, db *state.DB, names map[string]string, st *Status) error {
	st.Role, _, _ = db.Meta(ctx, metaRole)
	st.LocalChanges = []LocalChange{}
	if err := db.LocalChanges(ctx, func(c state.LocalChange) error {
		if st.LocalChangeCount < listedMax {
			st.LocalChanges = append(st.LocalChanges, LocalChange{c.Path, c.Kind, time.Unix(0, c.At).UTC()})
		}
		st.LocalChangeCount++
		return nil
	}); err != nil {
		return err
	}
	var err error
	if st.Differing, st.DifferingCount, err = differing(ctx, db, whySendOnly, names, listedMax); err != nil {
		return err
	}
	counts, err := db.SetAsideCounts(ctx)
	if err != nil {
		return err
	}
	st.Ignored = counts[whyIgnored]
	return nil
}

// readHistoryStatus fills in the version store, the brake and the recent
// restores. A database older than the version store has none of them.
func readHistoryStatus(ctx context.Context, db *state.DB, st *Status) {
	st.Versions.Keep, _, _ = db.Meta(ctx, metaVersions)
	if v, ok, _ := db.Meta(ctx, metaVersionsShare); ok {
		st.Versions.MaxShare, _ = strconv.ParseFloat(v, 64)
	}
	st.Brake, _, _ = db.Meta(ctx, metaBrakeRule)
	if vs, err := db.VersionStats(ctx); err == nil {
		st.Versions.Versions, st.Versions.Contents, st.Versions.Bytes = vs.Versions, vs.Contents, vs.Bytes
	}
	if r, err := loadBrake(ctx, db); err == nil && len(r.Held) > 0 {
		st.Held = r.runs()
	}
	if raw, ok, _ := db.Meta(ctx, metaRestores); ok {
		json.Unmarshal([]byte(raw), &st.Restores)
	}
}

// ErrPairSelf is returned by Pair for the device's own ID.
var ErrPairSelf = errors.New("that is this device's own ID")

// Pair trusts the device id for the node whose state lives in stateDir,
// creating the state dir and identity if needed. It works while the daemon
// runs: the daemon checks the database at every handshake. folder, if not
// "", is the synced folder: no identity is created for a folder synced
// before (see ErrNoIdentity).
func Pair(ctx context.Context, folder, stateDir string, id certs.DeviceID, name string) error {
	self, err := Identity(folder, stateDir)
	if err != nil {
		return err
	}
	if self.ID == id {
		return fmt.Errorf("pair %s: %w", id, ErrPairSelf)
	}
	db, err := state.Open(ctx, filepath.Join(stateDir, dbName))
	if err != nil {
		return err
	}
	defer db.Close()
	return db.Pair(ctx, id, name)
}

// Identity returns the identity kept in stateDir, creating it (and the
// directory) if there is none. folder, if not "", is the synced folder: if
// it was synced before, a missing identity is an error wrapping
// ErrNoIdentity instead of a new device (the state dir is on a disk that
// did not mount, say). Without the folder, a new identity in a state dir
// that is not the folder's real one is caught when the daemon starts
// (ErrFolderNotOurs).
func Identity(folder, stateDir string) (*certs.Identity, error) {
	if err := prepareStateDir(stateDir); err != nil {
		return nil, err
	}
	if folder != "" {
		if err := checkIdentityKept(Config{Folder: folder, StateDir: stateDir}); err != nil {
			return nil, err
		}
	}
	return certs.LoadOrCreate(stateDir)
}
