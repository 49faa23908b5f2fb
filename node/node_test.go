package node

import (
	"bytes"
	"context"
	"crypto"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drive-node/drive-node/certs"
	"github.com/drive-node/drive-node/content"
	"github.com/drive-node/drive-node/oplog"
)

// testLog collects a node's logs for failure messages and assertions.
type testLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *testLog) Write(p []byte) (int, error) { l.mu.Lock(); defer l.mu.Unlock(); return l.b.Write(p) }
func (l *testLog) String() string              { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

type runningNode struct {
	*Node
	folder string
	addr   string
	logs   *testLog
	cancel context.CancelFunc
	done   chan error
}

func freeUDPPort(t testing.TB) string {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().String()
}

// identityOf creates (or loads) the identity of a folder's default state dir.
func identityOf(t testing.TB, folder string) certs.DeviceID {
	t.Helper()
	id, err := Identity(folder, DefaultStateDir(folder, ""))
	if err != nil {
		t.Fatal(err)
	}
	return id.ID
}

func pairFolders(t testing.TB, a, b string) {
	t.Helper()
	ctx := context.Background()
	if err := Pair(ctx, a, DefaultStateDir(a, ""), identityOf(t, b), "b"); err != nil {
		t.Fatal(err)
	}
	if err := Pair(ctx, b, DefaultStateDir(b, ""), identityOf(t, a), "a"); err != nil {
		t.Fatal(err)
	}
}

// startNode runs a node on folder, listening on loopback, dialling peers,
// with mDNS off (tests stay on loopback), and waits until it is ready.
func startNode(t testing.TB, folder, addr string, peers ...string) *runningNode {
	t.Helper()
	return startNodeWith(t, folder, addr, nil, peers...)
}

// pairedPeer creates a device identity and pairs folder's node with it
// under name, as `drive-node pair` would.
func pairedPeer(t testing.TB, folder, name string) *certs.Identity {
	t.Helper()
	peer, err := certs.LoadOrCreate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := Pair(context.Background(), folder, DefaultStateDir(folder, ""), peer.ID, name); err != nil {
		t.Fatal(err)
	}
	return peer
}

// startNodeWith is startNode with setup called between Open and Run, to
// inject what the test controls.
func startNodeWith(t testing.TB, folder, addr string, setup func(*Node), peers ...string) *runningNode {
	t.Helper()
	return startNodeConfig(t, folder, addr, nil, setup, peers...)
}

// startNodeConfig is startNodeWith with tweak adjusting the Config Open
// is given.
func startNodeConfig(t testing.TB, folder, addr string, tweak func(*Config), setup func(*Node), peers ...string) *runningNode {
	t.Helper()
	logs := &testLog{}
	cfg := Config{
		Folder: folder, Listen: addr, Peers: peers, NoDiscovery: true, Name: filepath.Base(folder),
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if tweak != nil {
		tweak(&cfg)
	}
	n, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if setup != nil {
		setup(n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &runningNode{Node: n, folder: folder, addr: addr, logs: logs, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- n.Run(ctx) }()
	t.Cleanup(func() { r.stop(t) })
	select {
	case <-n.Ready():
	case err := <-r.done:
		// Run has returned: stop must not wait for it again.
		r.cancel()
		r.cancel = nil
		n.Close()
		t.Fatalf("node stopped: %v\n%s", err, logs)
	case <-time.After(20 * time.Second):
		t.Fatalf("node not ready\n%s", logs)
	}
	return r
}

func (r *runningNode) stop(t testing.TB) {
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.cancel = nil
	if err := <-r.done; err != nil {
		t.Errorf("run: %v", err)
	}
	r.Node.Close()
	if t.Failed() {
		t.Logf("logs of %s:\n%s", r.folder, r.logs)
	}
}

func waitFor(t testing.TB, what string, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	last := ""
	for time.Now().Before(deadline) {
		if last = cond(); last == "" {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s: %s", what, last)
}

// sameTree returns "" when a and b hold the same files, directories and
// contents (drive-node's own files left out), or what differs.
func sameTree(a, b string) string {
	read := func(root string) map[string]string {
		out := map[string]string{}
		filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return nil
			}
			rel, _ := filepath.Rel(root, p)
			if rel == "." {
				return nil
			}
			if d.Name() == StateDirName || d.Name() == MarkerName || d.Name() == VersionsDirName || strings.HasPrefix(d.Name(), TempPrefix) {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			if d.IsDir() {
				out[filepath.ToSlash(rel)] = "dir"
				return nil
			}
			b, _ := os.ReadFile(p)
			out[filepath.ToSlash(rel)] = content.Sum(b).Short()
			return nil
		})
		return out
	}
	ta, tb := read(a), read(b)
	var diffs []string
	for p, h := range ta {
		if tb[p] != h {
			diffs = append(diffs, p+": "+h+" vs "+tb[p])
		}
	}
	for p := range tb {
		if _, ok := ta[p]; !ok {
			diffs = append(diffs, "extra "+p)
		}
	}
	return strings.Join(diffs, "; ")
}

func write(t *testing.T, path, data string) {
	t.Helper()
	os.MkdirAll(filepath.Dir(path), 0o755)
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// replace puts data at path as an editor that saves safely does: a
// temporary file renamed over it, so no watcher sees it half written.
func replace(t *testing.T, path, data string) {
	t.Helper()
	tmp := path + ".saving"
	write(t, tmp, data)
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func TestTwoNodesSync(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	pairFolders(t, a, b)
	write(t, filepath.Join(a, "before.txt"), "made before start")
	addrA, addrB := freeUDPPort(t), freeUDPPort(t)
	na := startNode(t, a, addrA, addrB)
	nb := startNode(t, b, addrB, addrA)
	waitFor(t, "initial sync", func() string { return sameTree(a, b) })

	write(t, filepath.Join(a, "docs/report.txt"), "v1")
	write(t, filepath.Join(a, "empty"), "")
	waitFor(t, "create", func() string { return sameTree(a, b) })
	write(t, filepath.Join(a, "docs/report.txt"), "v2, longer")
	os.Rename(filepath.Join(a, "before.txt"), filepath.Join(a, "docs/renamed.txt"))
	os.MkdirAll(filepath.Join(a, "x/y/z"), 0o755)
	waitFor(t, "modify, rename, mkdir", func() string { return sameTree(a, b) })
	os.Remove(filepath.Join(a, "empty"))
	os.RemoveAll(filepath.Join(a, "x"))
	write(t, filepath.Join(b, "from-b.txt"), "b's file")
	waitFor(t, "delete, rmdir, and a change from b", func() string { return sameTree(a, b) })

	// The files b received did not come back as local ops: b made one.
	if got := nb.ops.Highest(nb.ID()); got != 1 {
		t.Fatalf("b has %d ops of its own, want 1 (its received files came back as local changes)", got)
	}
	if na.ops.Highest(nb.ID()) != 1 || nb.ops.Highest(na.ID()) != na.ops.Highest(na.ID()) {
		t.Fatalf("logs did not converge: a %v, b %v", na.ops.Vector(), nb.ops.Vector())
	}
}

// memSource is a content source for a hostile test peer.
type memSource struct {
	mu   sync.Mutex
	data map[content.Hash][]byte
	bad  map[content.Hash]int // serve wrong bytes this many times first
}

func (m *memSource) OpenContent(_ context.Context, h content.Hash) (io.ReadSeekCloser, int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.data[h]
	if !ok {
		return nil, 0, fs.ErrNotExist
	}
	if m.bad[h] > 0 {
		m.bad[h]--
		b = bytes.Repeat([]byte("X"), len(b))
	}
	return readSeekNopCloser{bytes.NewReader(b)}, int64(len(b)), nil
}

func (m *memSource) OpenChunkList(_ context.Context, h content.Hash) (io.ReadCloser, int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.data[h]; !ok {
		return nil, 0, fs.ErrNotExist
	}
	return nil, 0, nil
}

type readSeekNopCloser struct{ *bytes.Reader }

func (readSeekNopCloser) Close() error { return nil }

// addOrigin records peer's key in l, as pairing with peer does, and
// returns it.
func addOrigin(t testing.TB, l opLog, peer *certs.Identity) oplog.OriginKey {
	t.Helper()
	key, err := oplog.ParseOriginKey(peer.Certificate.Leaf.RawSubjectPublicKeyInfo)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.AddOrigin(context.Background(), key, peer.ID); err != nil {
		t.Fatal(err)
	}
	return key
}

// insertFrom stores ops as peer made them, sent by peer: peer's key is
// recorded in l, and the ops (consecutive ops of peer) are chained after
// what l holds of peer and signed, as peer's log would.
func insertFrom(t testing.TB, l opLog, peer *certs.Identity, ops ...oplog.Op) []oplog.Op {
	t.Helper()
	addOrigin(t, l, peer)
	sealRuns(t, ops, func(certs.DeviceID) crypto.Signer { return peer.Signer() }, prevIn(t, l))
	stored, err := l.Insert(context.Background(), peer.ID, ops...)
	if err != nil {
		t.Fatal(err)
	}
	return stored
}

// sealRuns signs ops in place as their origins would: each origin's ops,
// in sequence order, chained after prevOf(origin, first sequence), the
// Link of the op before them, and signed at least every
// oplog.MaxUnsignedRun ops and at the last. keyOf returns an origin's key.
func sealRuns(t testing.TB, ops []oplog.Op, keyOf func(certs.DeviceID) crypto.Signer, prevOf func(certs.DeviceID, uint64) oplog.Link) {
	t.Helper()
	runs := map[certs.DeviceID][]int{}
	var origins []certs.DeviceID
	for i, op := range ops {
		if runs[op.Origin] == nil {
			origins = append(origins, op.Origin)
		}
		runs[op.Origin] = append(runs[op.Origin], i)
	}
	for _, o := range origins {
		key := keyOf(o)
		if key == nil {
			t.Fatalf("no key to sign the ops of %s with", o.Short())
		}
		idx := runs[o]
		run := make([]oplog.Op, len(idx))
		for k, i := range idx {
			run[k] = ops[i]
		}
		prev := prevOf(o, run[0].Seq)
		for start := 0; start < len(run); start += oplog.MaxUnsignedRun {
			var err error
			if prev, err = oplog.Seal(key, prev, run[start:min(start+oplog.MaxUnsignedRun, len(run))]); err != nil {
				t.Fatal(err)
			}
		}
		for k, i := range idx {
			ops[i] = run[k]
		}
	}
}

// prevIn returns, for sealRuns, the Link of the op l holds before seq of
// origin (zero when it holds none).
func prevIn(t testing.TB, l opLog) func(certs.DeviceID, uint64) oplog.Link {
	return func(origin certs.DeviceID, seq uint64) oplog.Link {
		before, ok, err := l.Get(origin, seq-1)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			return oplog.Link{}
		}
		return before.Link()
	}
}
