package node

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"math/rand"
	randv2 "math/rand/v2"
	"os"
	"path"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/drive-node/drive-node/certs"
	"github.com/drive-node/drive-node/content"
	"github.com/drive-node/drive-node/internal/clock"
	"github.com/drive-node/drive-node/node/internal/core"
	"github.com/drive-node/drive-node/node/internal/folder"
	"github.com/drive-node/drive-node/oplog"
	"github.com/drive-node/drive-node/quicnet"
	"github.com/drive-node/drive-node/state"
	"github.com/drive-node/drive-node/watcher"
)

// A simulated device is a real Node — the orchestrator that records
// observations, applies received ops, skips superseded ones, blocks an
// origin whose op fails, records follow-ups and explains crash residue —
// over an in-memory folder, an op log on pebble's in-memory file system,
// a state database, and a clock the simulation moves. Only the watcher
// and the transport are not there: the simulation reports what a user
// changed, as the watcher would, and carries ops between devices.

// contentStore holds every content simulated users wrote. It stands in
// for a device that has a content and is not connected now: fetched from
// after every connected device, it keeps ops whose content no connected
// device holds from waiting for ever (see -sim.strictcontent).
type contentStore struct {
	mu   sync.Mutex
	data map[content.Hash][]byte
}

func (s *contentStore) put(b []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.data == nil {
		s.data = map[content.Hash][]byte{}
	}
	s.data[content.Sum(b)] = b
}

func (s *contentStore) Fetch(ctx context.Context, h content.Hash, offset int64, dst io.Writer) (int64, error) {
	s.mu.Lock()
	b, ok := s.data[h]
	s.mu.Unlock()
	if !ok {
		return 0, fmt.Errorf("content %s: %w", h.Short(), quicnet.ErrNotFound)
	}
	if offset < int64(len(b)) {
		if _, err := dst.Write(b[offset:]); err != nil {
			return 0, err
		}
	}
	return int64(len(b)), nil
}

// sharedContent is every content simulated users wrote, across seeds
// (contents are named by device and step, so seeds share them safely).
var sharedContent contentStore

// peerContent fetches content from another simulated device through the
// node's own serving side (OpenContent), as the transport does: only
// what that device has recorded and still holds on disk is found.
type peerContent struct{ from *replica }

// open opens h on the other device as the transport's serving side does;
// a content it does not hold is quicnet.ErrNotFound.
func (p peerContent) open(ctx context.Context, h content.Hash) (io.ReadSeekCloser, int64, error) {
	f, size, err := p.from.node.OpenContent(ctx, h)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, 0, fmt.Errorf("fetch %s from %s: %w", h.Short(), p.from.id.Short(), quicnet.ErrNotFound)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("fetch %s from %s: %w", h.Short(), p.from.id.Short(), err)
	}
	return f, size, nil
}

func (p peerContent) Fetch(ctx context.Context, h content.Hash, offset int64, dst io.Writer) (int64, error) {
	f, size, err := p.open(ctx, h)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	if offset < size {
		if _, err := f.Seek(offset, io.SeekStart); err != nil {
			return 0, err
		}
		if _, err := io.CopyN(dst, f, size-offset); err != nil {
			return 0, fmt.Errorf("fetch %s from %s: %w", h.Short(), p.from.id.Short(), err)
		}
	}
	return size, nil
}

// FetchChunkList serves the list of h from the other device's serving
// side (OpenChunkList), as the transport does.
func (p peerContent) FetchChunkList(ctx context.Context, h content.Hash, limit int64, dst io.Writer) (int64, error) {
	r, n, err := p.from.node.OpenChunkList(ctx, h)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, fmt.Errorf("fetch the list of %s from %s: %w", h.Short(), p.from.id.Short(), quicnet.ErrNotFound)
	}
	if err != nil || r == nil {
		return 0, err
	}
	defer r.Close()
	if n > limit {
		return 0, fmt.Errorf("fetch the list of %s from %s: %d bytes, over %d", h.Short(), p.from.id.Short(), n, limit)
	}
	if _, err := io.CopyN(dst, r, n); err != nil {
		return 0, fmt.Errorf("fetch the list of %s from %s: %w", h.Short(), p.from.id.Short(), err)
	}
	return n, nil
}

// FetchRange serves bytes of h from the other device's serving side.
func (p peerContent) FetchRange(ctx context.Context, h content.Hash, offset, length int64, dst io.Writer) (int64, error) {
	f, size, err := p.open(ctx, h)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	if offset+length > size {
		return 0, fmt.Errorf("fetch %s from %s: %w", h.Short(), p.from.id.Short(), quicnet.ErrNotFound)
	}
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return 0, err
	}
	if _, err := io.CopyN(dst, f, length); err != nil {
		return size, fmt.Errorf("fetch %s from %s: %w", h.Short(), p.from.id.Short(), err)
	}
	return size, nil
}

// errInjected is what a store the simulation makes fail returns.
var errInjected = errors.New("injected failure")

// failing is a device's op log and database as its node sees them: an
// armed call fails once with errInjected.
type failing struct {
	opLog
	stateStore
	failAppend, failApply bool
}

func (f *failing) Append(ctx context.Context, ops ...oplog.Op) ([]oplog.Op, error) {
	if f.failAppend {
		f.failAppend = false
		return nil, fmt.Errorf("append to the op log: %w", errInjected)
	}
	return f.opLog.Append(ctx, ops...)
}

func (f *failing) Apply(ctx context.Context, b state.Batch) error {
	if f.failApply {
		f.failApply = false
		return fmt.Errorf("record a batch: %w", errInjected)
	}
	return f.stateStore.Apply(ctx, b)
}

// Close closes neither store: the replica owns them.
func (f *failing) Close() error { return nil }

// newSimClock is the time every device of a simulation sees; nothing
// but the schedule moves it.
func newSimClock() *clock.Fake { return clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)) }

// replica is one simulated device. Its op log, database and folder
// outlive its node: a crash drops the node, and what the folder and the
// log's file system had not made durable, and a new node is opened over
// what is left. (The database keeps what it committed, as it does when
// the process dies: its power-loss behaviour is SQLite's to test.)
type replica struct {
	id     certs.DeviceID
	key    *ecdsa.PrivateKey
	folder *folder.Mem
	logFS  *vfs.MemFS // the op log's file system
	ops    *oplog.Log
	db     *state.DB
	// failing stands between the node and its log and database, to fail
	// a chosen call.
	failing *failing
	node    *Node
	clock   *clock.Fake
	// peers lists the devices this one is connected to now: content is
	// fetched from them.
	peers func() []*replica
	// Counts of what the schedule exercised on this device.
	forwarded, clashes, crashes, faults int
	// folds is set for a folder that takes names under another case or
	// Unicode form (see mixedDisks).
	folds bool
	// decomposes is set for a folder that keeps names decomposed (NFD).
	decomposes bool
	trace      func(string)
	// role and rules are the device's role and its own ignore rules
	// (see rolesSetup); wroteIgnored counts the effects of peers' ops
	// at paths its rules ignore, which must never happen.
	role         Role
	rules        string
	wroteIgnored []string
	// listDir is the device's list store (on the real disk: lists are a
	// checked cache, which a crash of the folder does not touch).
	listDir string
}

// refuses reports whether the replica's disk refuses a name in p, as its
// node's probe found.
func (r *replica) refuses(p string) bool { return r.node.refused(p) }

var simLogger = slog.New(slog.DiscardHandler)

// emptyDB is a new state database's file, made once: a copy of it opens
// without the schema's migrations, which would dominate a short seed.
var emptyDB struct {
	once sync.Once
	data []byte
	err  error
}

// copyEmptyDB writes a new, migrated state database at dst.
func copyEmptyDB(ctx context.Context, dst string) error {
	emptyDB.once.Do(func() {
		dir, err := os.MkdirTemp("", "drive-node-sim-db-")
		if err != nil {
			emptyDB.err = err
			return
		}
		defer os.RemoveAll(dir)
		p := path.Join(dir, "state.db")
		db, err := state.Open(ctx, p)
		if err != nil {
			emptyDB.err = err
			return
		}
		if emptyDB.err = db.Close(); emptyDB.err == nil {
			emptyDB.data, emptyDB.err = os.ReadFile(p)
		}
	})
	if emptyDB.err != nil {
		return fmt.Errorf("empty state database: %w", emptyDB.err)
	}
	return os.WriteFile(dst, emptyDB.data, 0o600)
}

// newReplica makes device i, its database in dbDir.
func newReplica(ctx context.Context, i int, dbDir string, clock *clock.Fake, peers func() []*replica) (*replica, error) {
	key := simKey(i)
	r := &replica{id: simKeys[i].ID, key: key, folder: folder.NewMem(clock.Now()), logFS: vfs.NewCrashableMem(), clock: clock, peers: peers}
	var err error
	if r.ops, err = oplog.OpenFS("oplog", key, simLogger, r.logFS); err != nil {
		return nil, err
	}
	// Every replica is paired with every other: each log takes the
	// others' ops on their own word.
	for j := range simKeys {
		if err := r.ops.AddOrigin(ctx, simKeys[j], simKeys[j].ID); err != nil {
			r.ops.Close()
			return nil, err
		}
	}
	r.listDir = path.Join(dbDir, fmt.Sprintf("lists-%d", i))
	os.RemoveAll(r.listDir) // an earlier seed's
	dbPath := path.Join(dbDir, fmt.Sprintf("state-%d.db", i))
	if err := copyEmptyDB(ctx, dbPath); err != nil {
		r.ops.Close()
		return nil, err
	}
	if r.db, err = state.Open(ctx, dbPath); err != nil {
		r.ops.Close()
		return nil, err
	}
	return r, r.start(ctx)
}

// start opens a node over the replica's log, database and folder, and
// catches it up as Open does.
func (r *replica) start(ctx context.Context) error {
	n := newNode(Config{Folder: "sim-" + r.id.Short(), Logger: simLogger, Clock: r.clock})
	n.id = &certs.Identity{ID: r.id}
	if r.node != nil && r.node.lists != nil {
		r.node.lists.close() // the run before's
	}
	lists, err := openListStore(r.listDir)
	if err != nil {
		return err
	}
	n.lists = lists
	r.failing = &failing{opLog: r.ops, stateStore: r.db}
	n.ops, n.db = r.failing, r.failing
	n.fetchWorkers = 1
	if simWindowOps > 0 {
		n.windowOps = simWindowOps
	}
	n.contentFrom = func([]*quicnet.Peer) []contentFetcher {
		var out []contentFetcher
		for _, p := range r.peers() {
			out = append(out, peerContent{p})
		}
		if !*simStrictContent {
			out = append(out, &sharedContent)
		}
		return out
	}
	n.decided = r.count
	n.cfg.Role = r.role
	if r.rules != "" {
		n.ignoreRules.Store(newIgnoreRules(nil, []byte(r.rules), "(sim)"))
	}
	n.setFolder(r.folder)
	n.probeVolume(ctx)
	r.node = n
	return n.catchUp(ctx)
}

// crashLog stops the op log as a power cut would: what was synced
// survives, of the rest a random share (rng) does or does not. Every op
// the log acknowledged must be there after it reopens.
func (r *replica) crashLog(rng *rand.Rand) error {
	before := r.vector()
	after := r.logFS.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: rng.Intn(101), RNG: randv2.New(randv2.NewPCG(rng.Uint64(), rng.Uint64()))})
	r.ops.Close() // its files are gone with the machine
	r.logFS = after
	var err error
	if r.ops, err = oplog.OpenFS("oplog", r.key, simLogger, r.logFS); err != nil {
		return fmt.Errorf("reopen the op log after a crash: %w", err)
	}
	if got := r.vector(); !maps.Equal(got, before) {
		return fmt.Errorf("the op log lost acknowledged ops in a crash: it held %v, it holds %v", before, got)
	}
	return nil
}

func (r *replica) close() {
	r.db.Close()
	r.ops.Close()
}

// count notes the rules a remote op's plan exercises.
func (r *replica) count(op oplog.Op, plan core.RemotePlan) {
	if r.trace != nil {
		r.trace(fmt.Sprintf("decided %s#%d %v %q %q %s: effects %v records %v observe %v", op.Origin.Short(), op.Seq, op.Kind, op.Path, op.NewPath, op.Hash.Short(), plan.Effects, plan.Records, plan.Observe))
	}
	observed := map[string]bool{}
	for _, p := range plan.Observe {
		observed[p] = true
	}
	// An edit carried to a rename's target records both paths afterwards.
	if op.Kind == oplog.KindWrite || op.Kind == oplog.KindRename {
		for p := range observed {
			if p != op.Path && observed[op.Path] && !strings.Contains(p, ".conflict-") && !strings.HasPrefix(op.Path, p+"/") {
				r.forwarded++
				break
			}
		}
	}
	for _, e := range plan.Effects {
		for _, p := range []string{e.Path, e.To} {
			if p != "" && r.rules != "" && (r.node.ignored(p, false) || r.node.ignored(p, true)) {
				r.wroteIgnored = append(r.wroteIgnored, fmt.Sprintf("%s#%d wrote %s", op.Origin.Short(), op.Seq, p))
			}
		}
		if e.Kind == core.MoveAside && e.Path != op.Path && e.Path != op.NewPath {
			r.clashes++ // a file in the way of a directory
		}
	}
	if op.Kind != oplog.KindRmdir && (observed[op.Path] && op.Kind != oplog.KindRename || observed[op.NewPath] && op.NewPath != "") {
		r.clashes++ // a directory that had to stay
	}
}

// report records what is at paths now, as the watcher reports a change.
//
// The user's program has made its change durable by then. A change a
// crash takes back after the node logged it would leave an op whose
// content no device has (a power cut losing unsynced user data); a peer
// then waits for that content for ever, which is not what this checks.
func (r *replica) report(ctx context.Context, paths ...string) error {
	if err := r.folder.SyncFS(); err != nil {
		return err
	}
	if r.folds {
		// A user's name may have reached another name's file (A.txt
		// finds a.txt): the watcher then reports the name the disk
		// holds, which a look at every path finds.
		changed, err := r.changed(ctx)
		if err != nil {
			return err
		}
		paths = append(paths, changed...)
	}
	return r.record(ctx, paths)
}

// record records what is at paths now.
func (r *replica) record(ctx context.Context, paths []string) error {
	var obs []watcher.Observation
	seen := map[string]bool{}
	sort.Strings(paths)
	for _, p := range paths {
		found, err := r.node.observe(ctx, p)
		if err != nil {
			return fmt.Errorf("observe %s: %w", p, err)
		}
		for _, o := range found {
			if !seen[o.Path] {
				seen[o.Path] = true
				obs = append(obs, o)
			}
		}
	}
	if r.trace != nil {
		r.trace(fmt.Sprintf("observed %+v", obs))
	}
	return r.node.recordObserved(ctx, obs)
}

// scan reports every path whose disk differs from its record, among
// those on disk or in the records, as the watcher's scan does.
func (r *replica) scan(ctx context.Context) error {
	if err := r.folder.SyncFS(); err != nil {
		return err
	}
	changed, err := r.changed(ctx)
	if err != nil || len(changed) == 0 {
		return err
	}
	return r.record(ctx, changed)
}

// changed lists the paths whose disk differs from their record, among
// those on disk or in the records.
func (r *replica) changed(ctx context.Context) ([]string, error) {
	paths := r.paths()
	err := r.db.Files(ctx, func(f state.File) error {
		if !f.Deleted {
			paths = append(paths, f.Path)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	var changed []string
	for _, p := range paths {
		differs, err := r.node.diskDiffers(ctx, p, nil, nil)
		if err != nil {
			return nil, err
		}
		if differs {
			changed = append(changed, p)
		}
	}
	return changed, nil
}

// paths lists the folder's entries, less the engine's temp files and
// its version store.
func (r *replica) paths() []string {
	var out []string
	var walk func(dir string)
	walk = func(dir string) {
		d, err := r.folder.Open(dir)
		if err != nil {
			return
		}
		entries, _ := d.ReadDir(-1)
		d.Close()
		for _, e := range entries {
			p := path.Join(dir, e.Name())
			if strings.HasPrefix(e.Name(), TempPrefix) || p == VersionsDirName {
				continue
			}
			out = append(out, p)
			if e.IsDir() {
				walk(p)
			}
		}
	}
	walk(".")
	return out
}

// simEntry is what a path of the folder holds.
type simEntry struct {
	dir  bool
	hash content.Hash
}

// files returns the folder's entries.
func (r *replica) files() map[string]simEntry {
	out := map[string]simEntry{}
	for _, p := range r.paths() {
		st, err := r.folder.Lstat(p)
		if err != nil {
			continue
		}
		if st.IsDir() {
			out[p] = simEntry{dir: true}
			continue
		}
		f, err := r.folder.Open(p)
		if err != nil {
			continue
		}
		b, _ := io.ReadAll(f)
		f.Close()
		out[p] = simEntry{hash: content.Sum(b)}
	}
	return out
}

// write is a user writing data at p, making the directories above it.
func (r *replica) write(ctx context.Context, p, data string) error {
	sharedContent.put([]byte(data))
	if err := r.folder.MkdirAll(parentDir(p), 0o755); err != nil && parentDir(p) != "" {
		return err
	}
	if err := r.folder.WriteFile(p, []byte(data), 0o644); err != nil {
		return err
	}
	touched := []string{p}
	for d := path.Dir(p); d != "."; d = path.Dir(d) {
		touched = append(touched, d)
	}
	return r.report(ctx, touched...)
}

// removeTree is a user deleting p and everything under it.
func (r *replica) removeTree(ctx context.Context, p string) error {
	var walk func(q string) error
	walk = func(q string) error {
		if d, err := r.folder.Open(q); err == nil {
			names, _ := d.Readdirnames(-1)
			d.Close()
			for _, name := range names {
				if err := walk(path.Join(q, name)); err != nil {
					return err
				}
			}
		}
		if err := r.folder.Remove(q); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	}
	if err := walk(p); err != nil {
		return err
	}
	return r.report(ctx, p)
}

// move is a user renaming a file, making the directories above its
// target.
func (r *replica) move(ctx context.Context, from, to string) error {
	if d := parentDir(to); d != "" {
		if err := r.folder.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	if err := r.folder.Rename(from, to); err != nil {
		return err
	}
	touched := []string{from, to}
	for d := path.Dir(to); d != "."; d = path.Dir(d) {
		touched = append(touched, d)
	}
	return r.report(ctx, touched...)
}

// vector is what the replica's log holds.
func (r *replica) vector() map[certs.DeviceID]uint64 { return r.ops.Vector() }

// opsAfter returns origin's ops after seq from the replica's log.
func (r *replica) opsAfter(ctx context.Context, origin certs.DeviceID, seq uint64) ([]oplog.Op, error) {
	var out []oplog.Op
	err := r.ops.Iterate(ctx, origin, seq+1, func(op oplog.Op) error {
		out = append(out, op)
		return nil
	})
	return out, err
}

// allOps returns every op in the replica's log.
func (r *replica) allOps(ctx context.Context) ([]oplog.Op, error) {
	var all []oplog.Op
	for origin := range r.vector() {
		ops, err := r.opsAfter(ctx, origin, 0)
		if err != nil {
			return nil, err
		}
		all = append(all, ops...)
	}
	return all, nil
}

// settledWith reports whether the database has applied everything in
// the log.
func (r *replica) applied(ctx context.Context) (bool, error) {
	applied, err := r.db.Applied(ctx)
	if err != nil {
		return false, err
	}
	for o, n := range r.vector() {
		if applied[o] != n {
			return false, nil
		}
	}
	return true, nil
}

func (r *replica) describeFS() string {
	var parts []string
	for p, e := range r.files() {
		if e.dir {
			parts = append(parts, p+"/")
		} else {
			parts = append(parts, p+"="+e.hash.Short()[:6])
		}
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}

func (r *replica) describeRecords(ctx context.Context) (string, error) {
	var parts []string
	err := r.db.Files(ctx, func(f state.File) error {
		parts = append(parts, fmt.Sprintf("%s:%v:%v:%s:%v:%d:%x:%v", f.Path, f.Deleted, f.Dir, f.Hash.Short(), f.Version, f.Lamport, f.Origin[0], f.Heads))
		return nil
	})
	return strings.Join(parts, "\n"), err
}

// maxSimReplicas bounds the devices of a simulation.
const maxSimReplicas = 5

// simKeys are the public keys of the simulation's devices, by index,
// and simPrivate their private keys. Each is made from its index alone,
// so that a seed gives the same device IDs, and so the same order of
// everything sorted by device, in every run; and the IDs ascend with the
// index, as scenarios expect (a later device wins a tie).
var simKeys, simPrivate = func() ([]oplog.OriginKey, []*ecdsa.PrivateKey) {
	keys, private := make([]oplog.OriginKey, maxSimReplicas), make([]*ecdsa.PrivateKey, maxSimReplicas)
	var last certs.DeviceID
	for i := range keys {
		for try := 0; ; try++ {
			scalar := sha256.Sum256([]byte(fmt.Sprintf("drive-node simulation device %d, try %d", i, try)))
			k, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), scalar[:])
			if err != nil {
				panic(err)
			}
			der, err := x509.MarshalPKIXPublicKey(k.Public())
			if err != nil {
				panic(err)
			}
			if keys[i], err = oplog.ParseOriginKey(der); err != nil {
				panic(err)
			}
			if i == 0 || bytes.Compare(keys[i].ID[:], last[:]) > 0 {
				private[i], last = k, keys[i].ID
				break
			}
		}
	}
	return keys, private
}()

// simKey returns device i's key.
func simKey(i int) *ecdsa.PrivateKey { return simPrivate[i] }
