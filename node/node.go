// Package node is drive-node's engine: the one package that knows the
// others. A local change flows watcher → node → oplog (synced) → state →
// peers; a change from a peer flows transport → node → oplog → folder →
// state.
//
// Guarantees: an op is in the op log, synced, before the state database
// records it and before any peer can hear of it; the state database never
// runs ahead of the log, and a node that starts behind (a crash between
// the two, or a lost database) catches it up from the log before it does
// anything else.
//
// Another program embeds the engine with Open, Run and Close; it follows
// what the node does with Events, reads Status, and trusts or drops
// devices with Pair and Unpair, all through the node's own database
// handle. The node changes no process-wide setting and logs only through
// Config.Logger; Config.PacketConn hands it a socket of the program's
// own. See the package example and examples/received.
package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/drive-node/drive-node/certs"
	"github.com/drive-node/drive-node/content"
	"github.com/drive-node/drive-node/internal/clock"
	"github.com/drive-node/drive-node/internal/kick"
	"github.com/drive-node/drive-node/internal/lockfile"
	"github.com/drive-node/drive-node/node/internal/core"
	"github.com/drive-node/drive-node/node/internal/volume"
	"github.com/drive-node/drive-node/oplog"
	"github.com/drive-node/drive-node/quicnet"
	"github.com/drive-node/drive-node/state"
	"github.com/drive-node/drive-node/watcher"
)

// Files inside the state directory.
const (
	lockName  = "lock"
	dbName    = "state.db"
	oplogName = "oplog"
)

// Meta keys written to the state database for `drive-node status`.
const (
	metaPID           = "pid"
	metaStartedAt     = "started_at"
	metaReadyAt       = "ready_at"
	metaLastChange    = "last_change"
	metaFolder        = "folder"
	metaVersions      = "versions"       // the version store's schedule, or "off"
	metaVersionsShare = "versions_share" // its cap, a share of the disk
	metaBrakeRule     = "brake_rule"     // the brake's rule, or "off"
)

// Node is a running engine for one folder.
type Node struct {
	cfg  Config
	log  *slog.Logger
	id   *certs.Identity
	lock *lockfile.Lock
	ops  opLog
	db   stateStore
	// root is the folder; every write goes through it, so nothing escapes
	// it. It is reopened when a folder that went missing comes back.
	root   atomic.Pointer[Folder]
	paused atomic.Bool // the folder or state dir is unusable: nothing is recorded or applied
	// pauseKick tells the watch loop that pause was called.
	pauseKick kick.Signal
	// stateInfo identifies the state dir opened, so that a disk mounted
	// over it later is not written to.
	stateInfo os.FileInfo

	tr        *quicnet.Transport
	pairer    atomic.Pointer[pairer] // set once the network runs
	logWatch  logWatch
	applyKick kick.Signal
	// peerLost tells LAN discovery that a peer went away, so that it
	// looks for peers at once rather than at its next idle check.
	peerLost kick.Signal
	// applying wakes content requests that wait for an apply, and relays
	// keeps two devices from waiting for each other (relay.go).
	applying applyProgress
	relays   relays
	// burst and activity tell releaseLoop that a burst of changes was
	// handled, and that the node is still busy.
	burst, activity kick.Signal
	peersMu         sync.Mutex
	peerRowMu       sync.Mutex // serialises updatePeerRow's read and write of a row
	peers           map[certs.DeviceID]*peerState

	// placing holds the records of files an apply has placed and not yet
	// written to the database (see dbIndex).
	placing placingSet
	// residue is what ops pending at start-up may have left unrecorded.
	residue residue
	// unstaged holds contents an apply found it needed and had not
	// fetched; the next pass fetches them before taking the commit lock.
	unstaged wantSet
	// unplaced counts the passes that failed on an op for a reason that
	// does not go away (see giveUp).
	unplaced unplacedTries
	// vol is what the folder's file system can hold (see probeVolume).
	vol atomic.Pointer[volume.Traits]
	// commitMu serialises turning changes into ops and applying them, so
	// the state database sees ops in the order the log accepted them.
	commitMu sync.Mutex

	// now is the clock and diskFree the free-space probe; tests replace
	// them.
	clock    clock.Clock
	diskFree func(path string) (uint64, error)
	// flushData flushes a received file's data while it arrives, and
	// openFolder opens the folder again after a pause (tests make them
	// fail).
	flushData  func(f File) error
	openFolder func(path string) (Folder, error)
	// decided, when set, runs after a remote op is decided and before its
	// effects: tests change the folder there, as a user might, and the
	// simulation counts the rules plans exercise.
	decided func(op oplog.Op, plan core.RemotePlan)
	// contentFrom, when set, turns the connected peers into the sources
	// content is fetched from: tests make a connection's transfers hang,
	// and the simulation, which has no transport, ignores them and gives
	// its own store.
	contentFrom func(peers []*quicnet.Peer) []contentFetcher

	// pending writes what status shows of the ops not yet applied;
	// progress counts ops applied and content bytes received, which the
	// stall watchdog reads (stallAfter and stallCheck; tests shorten them).
	pending                pendingReport
	progress, stallResets  atomic.Uint64
	busy                   atomic.Int32 // long local work under way (see busyWith)
	stallAfter, stallCheck time.Duration
	// foldSettle is the constant foldSettle; tests shorten it.
	foldSettle time.Duration
	// fetchWorkers bounds the fetches in flight; the simulation runs one
	// at a time, so that a seed makes its changes in one order.
	fetchWorkers int
	// windowOps and windowBytes bound the pending ops an apply pass holds
	// at once (applyWindowOps, applyWindowBytes; tests make windows
	// small); ahead is what passes found beyond their windows (lookAhead).
	windowOps, windowBytes int
	ahead                  aheadState

	// brakes is what the brake remembers between passes.
	brakes brakeState
	// digests is this device's state digest as last computed.
	digests digestState

	// mesh is told when this device's mesh members or revocations change:
	// each session with a mesh member then sends it introductions and
	// revocations again (mesh.go).
	mesh meshState

	// reserved says which paths are the node's own (never synced);
	// ignoreRules is what the user's rules ignore (see ignored), swapped
	// under the commit lock. ignoreKick asks for the rules files to be
	// read again, rescanKick for the watcher to look at the whole folder,
	// and setAsideDue for the next apply pass to carry out the ops set
	// aside whose reason is gone.
	reserved     func(string) bool
	ignorePoll   time.Duration // see ignoreLoop; tests shorten it
	ignoreRules  atomic.Pointer[ignoreRules]
	ignoreLoaded bool // the rules files were read once (under the commit lock)
	ignoreKick   kick.Signal
	rescanKick   kick.Signal
	setAsideDue  atomic.Bool
	resumeNote   string // what the last resume that failed said (apply passes only)

	// lists keeps the chunk lists of contents this device holds;
	// indexQueue, while Run runs, takes lists to record in the chunk
	// index (see indexSoon).
	lists      *listStore
	indexQueue atomic.Pointer[chan content.Hash]
	// announced holds the records of local ops sent to peers and not yet
	// written to the database, so their contents are served meanwhile.
	announced announcedFiles

	// events is what subscribers follow (see Events); live holds the
	// running counters status, progress and metrics read.
	events *Events
	live   liveCounters
	// request is a pause asked for through Pause.
	request pauseRequest

	readyOnce sync.Once
	ready     chan struct{}
}

// Open validates cfg, takes the state directory's lock, and opens the
// identity, op log and database, catching the database up from the log.
// The returned node does nothing until Run.
func Open(ctx context.Context, cfg Config) (_ *Node, err error) {
	cfg, err = cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := prepareStateDir(cfg.StateDir); err != nil {
		return nil, err
	}
	n := newNode(cfg)
	defer func() {
		if err != nil {
			n.Close()
		}
	}()
	if n.stateInfo, err = os.Stat(cfg.StateDir); err != nil {
		return nil, fmt.Errorf("state dir %s: %w", cfg.StateDir, err)
	}
	if n.lock, err = lockfile.AcquireWait(filepath.Join(cfg.StateDir, lockName), 2*time.Second); err != nil {
		return nil, fmt.Errorf("state dir %s: %w", cfg.StateDir, err)
	}
	if err := checkIdentityKept(cfg); err != nil {
		return nil, err
	}
	if n.id, err = certs.LoadOrCreate(cfg.StateDir); err != nil {
		return nil, err
	}
	ops, err := oplog.Open(filepath.Join(cfg.StateDir, oplogName), n.id.Signer(), n.log)
	if err != nil {
		return nil, err
	}
	n.ops = ops
	db, err := state.Open(ctx, filepath.Join(cfg.StateDir, dbName))
	if err != nil {
		return nil, err
	}
	n.db = db
	if err := n.resolveRole(ctx); err != nil {
		return nil, err
	}
	// Status tells this run's readiness from an earlier run's by these,
	// written together: this run's PID beside the earlier run's start and
	// readiness would read as ready before the start-up scan.
	keep, brake := "off", "off"
	if cfg.schedule != nil {
		keep = cfg.schedule.String()
	}
	if cfg.brake != nil {
		brake = cfg.brake.String()
	}
	if err := n.db.SetMetas(ctx, map[string]string{
		metaPID: strconv.Itoa(os.Getpid()), metaStartedAt: strconv.FormatInt(n.clock.Now().UnixNano(), 10), metaFolder: cfg.Folder,
		metaVersions: keep, metaVersionsShare: strconv.FormatFloat(cfg.VersionsMaxShare, 'g', -1, 64), metaBrakeRule: brake,
		metaRole: string(n.cfg.Role),
	}); err != nil {
		return nil, err
	}
	if err := n.forgetRoleLeftovers(ctx); err != nil {
		return nil, err
	}
	root, err := n.openFolder(cfg.Folder)
	if err != nil {
		return nil, fmt.Errorf("folder %s: %w", cfg.Folder, err)
	}
	n.setFolder(root)
	n.loadIgnore(ctx)
	n.probeVolume(ctx)
	if err := n.initMarker(ctx); err != nil {
		return nil, err
	}
	n.removeStaleTemps()
	if n.lists, err = openListStore(filepath.Join(cfg.StateDir, listsDir)); err != nil {
		return nil, err
	}
	if err := n.sweepLists(ctx); err != nil {
		return nil, err
	}
	if err := n.checkVersionStore(ctx); err != nil {
		return nil, fmt.Errorf("folder %s: %w", cfg.Folder, err)
	}
	if err := n.catchUp(ctx); err != nil {
		return nil, err
	}
	if err := n.db.ResetPeerStatus(ctx); err != nil {
		return nil, err
	}
	return n, nil
}

// newNode is a node with its defaults, holding nothing open yet.
func newNode(cfg Config) *Node {
	n := &Node{cfg: cfg, log: cfg.Logger, clock: clock.Or(cfg.Clock), diskFree: diskFree, flushData: dataSync, openFolder: OpenRootFolder, ready: make(chan struct{}),
		stallAfter: stallAfter, stallCheck: stallCheck, fetchWorkers: fetchWorkers,
		windowOps: applyWindowOps, windowBytes: applyWindowBytes,
		peers: map[certs.DeviceID]*peerState{}, reserved: ignoreFunc(cfg.Folder, cfg.StateDir), ignorePoll: ignorePoll}
	// The defaults rule until the files are read, and what an earlier
	// run set aside may be due.
	n.events = NewEvents(EventRingSize, uint64(n.clock.Now().UnixMicro()), n.clock.Now)
	n.ignoreRules.Store(newIgnoreRules(nil, nil, ""))
	n.digests.quiet = digestQuiet
	n.foldSettle = foldSettle
	n.setAsideDue.Store(true)
	return n
}

// catchUp brings the database up to the log once the folder is open, as
// the first thing a node does: a crash can leave it behind.
func (n *Node) catchUp(ctx context.Context) error {
	// Before any pending op is applied again: what such an op left on disk
	// before a crash is told apart from local changes by the ops pending.
	if err := n.noteResidue(ctx); err != nil {
		return fmt.Errorf("reading the changes pending in %s: %w", n.cfg.StateDir, err)
	}
	// The database may be behind the log (a crash between the two, or a
	// lost database): record what it lacks before looking at the folder.
	if n.paused.Load() {
		// Local ops are still recorded from the log; remote ones wait.
	} else if err := n.applyPending(ctx); err != nil {
		n.log.Warn("some received changes wait for a peer", "err", err)
	}
	return nil
}

// ID returns this device's ID.
func (n *Node) ID() certs.DeviceID { return n.id.ID }

// StateDir returns the state directory in use, made absolute.
func (n *Node) StateDir() string { return n.cfg.StateDir }

// Ready is closed once the start-up scan's findings are all in the log and
// the database.
func (n *Node) Ready() <-chan struct{} { return n.ready }

// Close releases everything Open acquired. It is safe on a partly opened
// node.
func (n *Node) Close() error {
	var errs []error
	if r := n.folderRoot(); r != nil {
		errs = append(errs, r.Close())
	}
	if n.db != nil {
		errs = append(errs, n.db.Close())
	}
	if n.ops != nil {
		errs = append(errs, n.ops.Close())
	}
	if n.lists != nil {
		errs = append(errs, n.lists.close())
	}
	if n.lock != nil {
		errs = append(errs, n.lock.Release())
	}
	return errors.Join(errs...)
}

// Run watches the folder and records every change until ctx ends. It
// returns nil when ctx was cancelled, or the error that stopped it. When
// the op log fails (its disk cannot be written), Run stops and returns an
// error wrapping oplog.ErrFailed; the node must then be closed and opened
// again. Run never panics or ends the process for a failed disk.
func (n *Node) Run(ctx context.Context) (err error) {
	n.log.Info("node running", "folder", n.cfg.Folder, "state", n.cfg.StateDir, "device", n.id.ID.String(), "ops", n.ops.Count())

	// Checked last, once everything below has stopped: a failed log is
	// why Run stopped, whatever else the loops returned.
	defer func() {
		if lerr := n.ops.Err(); lerr != nil {
			err = fmt.Errorf("node for %s stopped: %w", n.cfg.Folder, lerr)
		}
	}()
	ctx, cancel := context.WithCancel(ctx)
	// On the way out everything that uses the log and the database stops
	// before Run returns, so Close never pulls them from under a transfer:
	// a fetch in flight is abandoned (its temp file kept for resuming), an
	// op half-applied stays pending.
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Add(1)
	go func() {
		defer wg.Done()
		select {
		case <-n.ops.Failed():
			n.log.Error("the op log failed: the node stops", "state", n.cfg.StateDir, "err", n.ops.Err())
			cancel()
		case <-ctx.Done():
		}
	}()
	if err := n.startNetwork(ctx); err != nil {
		return err
	}
	defer n.tr.Close()
	wg.Add(7)
	go func() { defer wg.Done(); n.indexLoop(ctx) }()
	go func() { defer wg.Done(); n.digestLoop(ctx) }()
	go func() { defer wg.Done(); n.applyLoop(ctx) }()
	go func() { defer wg.Done(); n.ignoreLoop(ctx) }()
	go func() { defer wg.Done(); n.stallLoop(ctx) }()
	go func() { defer wg.Done(); n.purgeLoop(ctx) }()
	go func() { defer wg.Done(); n.versionsLoop(ctx) }()
	wg.Add(1)
	go func() { defer wg.Done(); n.foldLoop(ctx) }()
	if n.cfg.AfterBurst != nil {
		wg.Add(1)
		go func() { defer wg.Done(); n.releaseLoop(ctx) }()
	}

	for {
		if err := n.waitUntilSyncable(ctx); err != nil {
			return nil
		}
		err := n.watch(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if !errors.Is(err, errPaused) {
			n.pause(ctx, err.Error())
		}
		// A pause that the checks cannot see (a failed write) still lasts
		// a poll interval, so a failing disk is not retried in a loop.
		select {
		case <-ctx.Done():
			return nil
		case <-n.after(guardPoll):
		}
	}
}

// watch runs a watcher on the folder and records what it reports, until
// ctx ends, the watcher fails (the folder vanished) or a batch that would
// delete arrives while the folder is not the synced one (errPaused).
func (n *Node) watch(ctx context.Context) error {
	w, err := watcher.New(watcher.Options{
		Root:           n.cfg.Folder,
		Index:          dbIndex{db: n.db, placing: &n.placing, nfc: n.volume().NormInsensitive},
		ExactNames:     n.volume().Folds(),
		IgnoreModes:    n.volume().NoModes,
		MTimePrecision: n.volume().MTimePrecision,
		Ignore:         n.ignored,
		Hash:           func(ctx context.Context, f *os.File) (content.Hash, int64, error) { return n.hashKeepingList(ctx, f) },
		RescanInterval: n.cfg.RescanInterval,
		Looked:         func() { n.live.scanned.Add(1) },
		Logger:         n.log,
		Clock:          n.clock,
	})
	if err != nil {
		return err
	}
	n.live.scanned.Store(0) // each watch starts with a scan
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	obs := make(chan []watcher.Observation) // unbuffered: see the ready logic below
	werr := make(chan error, 1)
	go func() { werr <- w.Run(wctx, obs) }()
	defer func() { cancel(); <-werr }()

	scanned := w.Scanned()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-werr:
			werr <- err // for the deferred wait
			return fmt.Errorf("watching %s: %w", n.cfg.Folder, err)
		case <-n.rescanKick.C():
			w.Rescan()
		case <-n.pauseKick.C():
			if n.paused.Load() {
				return errPaused
			}
		case batch := <-obs:
			if hasRemoval(batch) {
				// Removals are trusted only while the folder is the one
				// synced: an unmounted disk looks like everything deleted.
				if err := n.checkFolder(ctx); err != nil {
					n.pause(ctx, err.Error())
					return errPaused
				}
			}
			if err := n.recordLocal(ctx, batch); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				if errors.Is(err, errPaused) {
					// Not recorded: still on disk, found by the scan
					// that starts the next watch.
					return errPaused
				}
				// The changes are still on disk; the scan that starts the
				// next watch finds them. Ops the log took before the
				// database failed are recorded from the log by the applier.
				n.kickApply()
				n.pause(ctx, fmt.Sprintf("recording local changes failed (state dir %s): %v", n.cfg.StateDir, err))
				return errPaused
			}
		case <-scanned:
			// The channel is unbuffered and the watcher closes Scanned
			// after its last scan batch was received, so every start-up
			// finding has been recorded by now.
			scanned = nil
			n.markReady(ctx)
		}
	}
}

func hasRemoval(batch []watcher.Observation) bool {
	for _, o := range batch {
		if !o.Exists {
			return true
		}
	}
	return false
}

func (n *Node) markReady(ctx context.Context) {
	n.readyOnce.Do(func() {
		if err := n.db.SetMeta(ctx, metaReadyAt, strconv.FormatInt(n.clock.Now().UnixNano(), 10)); err != nil {
			n.log.Warn("recording readiness failed", "err", err)
		}
		n.log.Info("start-up scan complete", "ops", n.ops.Count())
		close(n.ready)
	})
}

// recordLocal records what the watcher reported, looked at again under the
// commit lock (freshen) and less what received ops left before a crash.
func (n *Node) recordLocal(ctx context.Context, obs []watcher.Observation) error {
	if err := n.checkStateDir(); err != nil {
		n.pause(ctx, err.Error())
		return errPaused
	}
	return n.recordObserved(ctx, obs)
}

// recordObserved is recordLocal once the state dir is known to be the
// one opened: the orchestrator's entry point for what was observed.
func (n *Node) recordObserved(ctx context.Context, obs []watcher.Observation) error {
	n.commitMu.Lock()
	defer n.commitMu.Unlock()
	obs, err := n.freshen(ctx, obs)
	if err != nil {
		return err
	}
	if n.residue.active() {
		obs = n.residue.filter(obs)
	}
	return n.recordFreshLocked(ctx, obs)
}

// recordFreshLocked turns observations into ops, logs them durably, then
// records them in the database. The caller holds the commit lock and obs
// describe the folder as it is under it (taken by observe, or freshened).
func (n *Node) recordFreshLocked(ctx context.Context, obs []watcher.Observation) error {
	if n.volume().NormInsensitive {
		var err error
		if obs, err = n.inHeldForm(ctx, obs); err != nil {
			return err
		}
	}
	if slices.ContainsFunc(obs, func(o watcher.Observation) bool { return o.Path == IgnoreFileName }) {
		// The rules file changed: what it says decides what else is
		// recorded, observed with it or after.
		n.loadIgnoreLocked(ctx)
	}
	paths := make([]string, len(obs))
	for i, o := range obs {
		paths[i] = o.Path
	}
	known, err := n.db.FilesAt(ctx, paths)
	if err != nil {
		return err
	}
	// What the rules ignore is never recorded, whoever looked at it (a
	// path gone is what its record says it was).
	obs = slices.DeleteFunc(obs, func(o watcher.Observation) bool {
		return n.ignored(o.Path, o.Dir || !o.Exists && known[o.Path].Dir)
	})
	n.noteBurst(len(obs))
	if n.volume().NoModes {
		keepModes(obs, known)
	}
	if step := n.volume().MTimePrecision; step > 1 {
		keepMTimes(obs, known, step)
	}
	plan := core.PlanLocal(obs, known)
	inodes := make(map[string]uint64, len(obs))
	for _, o := range obs {
		inodes[o.Path] = o.Inode
	}
	look := func(r *state.File) { r.Inode = inodes[r.Path] }
	if n.cfg.Role == ReceiveOnly {
		return n.keepLocalLocked(ctx, obs, known, plan.MetaOnly, look)
	}
	if len(plan.Ops) == 0 && len(plan.MetaOnly) == 0 {
		return nil
	}
	ops, err := n.splitRenamesOverSetAside(ctx, plan.Ops, known)
	if err != nil {
		return err
	}
	return n.commitLocalLocked(ctx, ops, plan.MetaOnly, look)
}

// commitLocalLocked logs ops as this device's changes, durably, then
// records them, with metaOnly (rows whose only change is metadata peers do
// not need), in one database batch. look fills in what the disk says of a
// live record that an op cannot carry (its inode). The caller holds the
// commit lock.
func (n *Node) commitLocalLocked(ctx context.Context, ops []oplog.Op, metaOnly []state.File, look func(*state.File)) error {
	if len(ops) > 0 && n.cfg.Role == ReceiveOnly {
		return ErrReceiveOnly
	}
	var accepted []oplog.Op
	if len(ops) > 0 {
		var err error
		if accepted, err = n.ops.Append(ctx, ops...); err != nil {
			return err
		}
	}
	at := n.clock.Now().UnixNano()
	b := state.Batch{Files: metaOnly}
	for _, op := range accepted {
		for _, r := range core.RecordsFor(op, at) {
			if !r.Deleted {
				look(&r)
			}
			b.Files = append(b.Files, r)
		}
		n.log.Debug("local change", "op", op.String())
	}
	if len(accepted) > 0 {
		b.Applied = map[certs.DeviceID]uint64{n.id.ID: accepted[len(accepted)-1].Seq}
		// From here the ops are accepted: peers may hear of them, and
		// ask for their contents before the records below are written.
		// If recording them fails, applyPending records them from the
		// log later.
		n.announced.add(b.Files)
		defer n.announced.drop(b.Files)
		n.logWatch.notify()
	}
	if err := n.db.Apply(ctx, b); err != nil {
		n.kickApply()
		return err
	}
	if len(accepted) > 0 {
		n.live.recorded.Add(uint64(len(accepted)))
		for _, op := range accepted {
			n.events.publish(EventLocalChange, opFields(op, n.id.ID))
		}
		return n.db.SetMeta(ctx, metaLastChange, strconv.FormatInt(at, 10))
	}
	return nil
}

// TombstoneRetention is how long a deletion's record is kept. The op log,
// not the tombstone, is what stops a peer that was away from bringing a
// deleted file back (ops it sends that others already have are recognised
// by origin and sequence); the tombstone keeps the deletion's version for
// edits that were concurrent with it, which arrive within days, not months.
const TombstoneRetention = 90 * 24 * time.Hour

// purgeLoop drops tombstones older than TombstoneRetention, daily.
func (n *Node) purgeLoop(ctx context.Context) {
	t := n.clock.NewTicker(24 * time.Hour)
	defer t.Stop()
	for {
		if k, err := n.db.PurgeTombstones(ctx, n.clock.Now().Add(-TombstoneRetention).UnixNano()); err != nil {
			n.log.Warn("purging old tombstones failed", "err", err)
		} else if k > 0 {
			n.log.Info("purged old tombstones", "count", k)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C():
		}
	}
}
