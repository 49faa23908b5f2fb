package node

import (
	"context"

	"github.com/drive-node/drive-node/certs"
	"github.com/drive-node/drive-node/content"
	"github.com/drive-node/drive-node/oplog"
	"github.com/drive-node/drive-node/state"
)

// The two stores the engine keeps are reached through what it needs of
// them, so a test can put a store that fails at a chosen call between the
// engine and the real one.

// opLog is what the node needs of the op log (an *oplog.Log).
type opLog interface {
	Append(ctx context.Context, ops ...oplog.Op) ([]oplog.Op, error)
	Insert(ctx context.Context, from certs.DeviceID, ops ...oplog.Op) ([]oplog.Op, error)
	InsertFolded(ctx context.Context, from certs.DeviceID, folded map[certs.DeviceID]uint64, ops ...oplog.Op) ([]oplog.Op, error)
	Fold(ctx context.Context, origin certs.DeviceID, seqs []uint64) (int, error)
	Folded(origin certs.DeviceID) uint64
	Reclaim(ctx context.Context) error
	AddOrigin(ctx context.Context, key oplog.OriginKey, voucher certs.DeviceID) error
	Origin(id certs.DeviceID) (key oplog.OriginKey, voucher certs.DeviceID, ok bool)
	Vouched(voucher certs.DeviceID) int
	Get(origin certs.DeviceID, seq uint64) (op oplog.Op, found bool, err error)
	Iterate(ctx context.Context, origin certs.DeviceID, from uint64, fn func(oplog.Op) error) error
	Highest(origin certs.DeviceID) uint64
	Vector() map[certs.DeviceID]uint64
	Count() uint64
	// Failed is closed, and Err says why, once the log cannot be written.
	Failed() <-chan struct{}
	Err() error
	Close() error
}

// stateStore is what the node needs of the state database (a *state.DB).
type stateStore interface {
	Apply(ctx context.Context, b state.Batch) error
	Applied(ctx context.Context) (map[certs.DeviceID]uint64, error)
	File(ctx context.Context, path string) (f state.File, ok bool, err error)
	FilesAt(ctx context.Context, paths []string) (map[string]state.File, error)
	FilesByHash(ctx context.Context, h content.Hash) ([]state.File, error)
	ContentFiles(ctx context.Context, h content.Hash) ([]state.ContentFile, error)
	ContentFilesOf(ctx context.Context, hs []content.Hash) (map[content.Hash][]state.ContentFile, error)
	FilesUnder(ctx context.Context, dir string, fn func(state.File) error) error
	Children(ctx context.Context, dir string, fn func(state.Child) error) error
	EachHead(ctx context.Context, fn func(state.OpID) error) error
	PurgeTombstones(ctx context.Context, olderThan int64) (int, error)
	Stats(ctx context.Context) (state.Stats, error)
	LiveEntries(ctx context.Context, dir string, fn func(state.LiveEntry) error) error
	FilesGeneration() uint64
	DirtyDirs(ctx context.Context, under string) ([]state.DirtyDir, error)
	DigestDirOf(ctx context.Context, p string) ([32]byte, bool, error)
	DigestSubdirs(ctx context.Context, dir string) (map[string][32]byte, error)
	SaveDigestTree(ctx context.Context, u state.DigestTreeUpdate) error
	SetPeerDigest(ctx context.Context, p state.PeerDigest) error
	PeerDigests(ctx context.Context) (map[certs.DeviceID]state.PeerDigest, error)

	AddVersions(ctx context.Context, vs []state.Version) error
	Versions(ctx context.Context, path string, under bool) ([]state.Version, error)
	VersionsByHash(ctx context.Context, h content.Hash) ([]state.Version, error)
	KeepsVersionFor(ctx context.Context, path string, by state.OpID, h content.Hash) (bool, error)
	AllVersions(ctx context.Context) ([]state.Version, error)
	DropVersions(ctx context.Context, ids []int64) ([]content.Hash, error)
	HasVersionContent(ctx context.Context, h content.Hash) (bool, error)
	VersionStats(ctx context.Context) (state.VersionStats, error)
	SetAsideOps(ctx context.Context, why string, fn func(state.SetAside) error) error
	SetAsideCounts(ctx context.Context) (map[string]int, error)
	SetAsideAt(ctx context.Context, path string) (bool, error)
	LocalChanges(ctx context.Context, fn func(state.LocalChange) error) error
	ForgetLocalChanges(ctx context.Context) error
	RecordedTimes(ctx context.Context) ([]state.OpTimes, error)

	RecordConflict(ctx context.Context, c state.Conflict) error
	Conflicts(ctx context.Context) ([]state.Conflict, error)

	Meta(ctx context.Context, key string) (value string, ok bool, err error)
	SetMeta(ctx context.Context, key, value string) error
	SetMetas(ctx context.Context, kv map[string]string) error
	SetMetaSynced(ctx context.Context, key, value string) error

	IsPaired(ctx context.Context, id certs.DeviceID) (bool, error)
	Pair(ctx context.Context, id certs.DeviceID, name string) error
	PairByCode(ctx context.Context, id certs.DeviceID, name string) error
	Unpair(ctx context.Context, id certs.DeviceID) error
	PairIntroduced(ctx context.Context, by certs.DeviceID, devices []state.Introduced, stmt, sig []byte) ([]certs.DeviceID, error)
	RevokeIntroduced(ctx context.Context, by, id certs.DeviceID, stmt, sig []byte) (bool, error)
	Revocations(ctx context.Context, limit int) ([]certs.DeviceID, error)
	NoteUnpaired(ctx context.Context, id certs.DeviceID, addr string, at int64) error
	UnpairedSeen(ctx context.Context) ([]state.UnpairedDevice, error)
	Peer(ctx context.Context, id certs.DeviceID) (p state.Peer, ok bool, err error)
	Peers(ctx context.Context) ([]state.Peer, error)
	UpdatePeerStatus(ctx context.Context, p state.Peer) error
	ResetPeerStatus(ctx context.Context) error
	SetPeerProgresses(ctx context.Context, peer certs.DeviceID, have map[certs.DeviceID]uint64) error

	IndexChunks(ctx context.Context, c content.Hash, next func() (content.Chunk, error)) error
	ChunkSources(ctx context.Context, h content.Hash, size int64, limit int) ([]state.ChunkSource, error)
	ChunksBesides(ctx context.Context, c content.Hash) (bool, error)
	IndexedContents(ctx context.Context, fn func(content.Hash) error) error
	DropChunks(ctx context.Context, cs []content.Hash) error

	Close() error
}

var (
	_ opLog      = (*oplog.Log)(nil)
	_ stateStore = (*state.DB)(nil)
)
