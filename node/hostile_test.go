package node

import (
	"context"
	"crypto"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drive-node/drive-node/certs"
	"github.com/drive-node/drive-node/content"
	"github.com/drive-node/drive-node/node/internal/core"
	"github.com/drive-node/drive-node/oplog"
	"github.com/drive-node/drive-node/quicnet"
	"github.com/drive-node/drive-node/state"
	"github.com/drive-node/drive-node/wire"
)

// TestHostilePeerCannotWriteOutsideFolder has a paired but malicious peer
// send ops whose paths escape the folder, plus one good op whose content
// it first serves corrupted. Nothing may appear outside the folder; the
// good file must arrive intact after a second fetch.
func TestHostilePeerCannotWriteOutsideFolder(t *testing.T) {
	parent := t.TempDir()
	folder := filepath.Join(parent, "folder")
	outsideDir := filepath.Join(parent, "outside")
	os.MkdirAll(folder, 0o755)
	os.MkdirAll(outsideDir, 0o755)
	if err := os.Symlink(outsideDir, filepath.Join(folder, "link")); err != nil {
		t.Fatal(err)
	}

	evil := pairedPeer(t, folder, "evil")
	addr := freeUDPPort(t)
	n := startNode(t, folder, addr)

	payload := []byte("attacker-controlled bytes")
	good := []byte("a perfectly good file")
	src := &memSource{
		data: map[content.Hash][]byte{content.Sum(payload): payload, content.Sum(good): good},
		bad:  map[content.Hash]int{content.Sum(good): 1},
	}
	absTarget := filepath.Join(parent, "absolute.txt")
	seq := uint64(0)
	op := func(kind oplog.Kind, path, newPath string, data []byte) oplog.Op {
		seq++
		return oplog.Op{Origin: evil.ID, Seq: seq, Lamport: seq, Kind: kind, Path: path, NewPath: newPath,
			Hash: content.Sum(data), Size: int64(len(data)), Mode: 0o644, MTime: time.Now().UnixNano()}
	}
	ops := []oplog.Op{
		op(oplog.KindWrite, "../outside/escape.txt", "", payload),
		op(oplog.KindWrite, absTarget, "", payload),
		op(oplog.KindWrite, "sub/../../outside/dots.txt", "", payload),
		op(oplog.KindWrite, "link/through-symlink.txt", "", payload),
		op(oplog.KindMkdir, "../outside/newdir", "", nil),
		op(oplog.KindWrite, ".drive-node/state.db", "", payload),
		op(oplog.KindWrite, "sub/good.txt", "", good),
		op(oplog.KindRename, "sub/good.txt", "../outside/moved.txt", good),
	}
	ops[4].Hash, ops[4].Size = content.Hash{}, 0

	sendAsPeer(t, evil, n, src, ops)
	waitFor(t, "the good file, fetched again after a corrupted copy", func() string {
		b, err := os.ReadFile(filepath.Join(folder, "sub/good.txt"))
		if err != nil || string(b) != string(good) {
			return "not there yet"
		}
		return ""
	})
	// The rename to outside came after; give the node time to have
	// refused it too, then check everything.
	waitFor(t, "all hostile ops processed", func() string {
		applied, _ := n.db.Applied(context.Background())
		if applied[evil.ID] != seq {
			return "applied " + strings.Repeat("|", int(applied[evil.ID]))
		}
		return ""
	})
	entries, _ := os.ReadDir(outsideDir)
	if len(entries) != 0 {
		t.Fatalf("files appeared outside the folder: %v", entries)
	}
	if _, err := os.Stat(absTarget); err == nil {
		t.Fatal("absolute path written")
	}
	if b, _ := os.ReadFile(filepath.Join(folder, ".drive-node/state.db")); strings.Contains(string(b), string(payload)) {
		t.Fatal("peer overwrote the state database")
	}
	if _, err := os.Stat(filepath.Join(folder, "sub/good.txt")); err != nil {
		t.Fatal("the good file was moved out by the hostile rename")
	}
	logs := n.logs.String()
	for _, want := range []string{"unsafe path", "content does not match its hash"} {
		if !strings.Contains(logs, want) {
			t.Errorf("log does not mention %q", want)
		}
	}
	if src.bad[content.Sum(good)] != 0 {
		t.Fatal("the corrupted copy was never served: the test did not exercise the hash check")
	}
}

// sendAsPeer connects to n as the paired device id, sends ops in one frame
// and serves their content from src until the test ends. The ops are
// signed as their origins would: id's, and those of the devices in
// relayed, which id introduces first as devices it vouches for.
func sendAsPeer(t *testing.T, id *certs.Identity, n *runningNode, src *memSource, ops []oplog.Op, relayed ...*certs.Identity) {
	t.Helper()
	scriptPeer(t, id, n, src, ops, func(wire.Message) {}, relayed...)
}

// scriptPeer is sendAsPeer that also hands each message n sends after
// the ops to each.
func scriptPeer(t *testing.T, id *certs.Identity, n *runningNode, src *memSource, ops []oplog.Op, each func(wire.Message), relayed ...*certs.Identity) {
	t.Helper()
	keys := map[certs.DeviceID]crypto.Signer{id.ID: id.Signer()}
	for _, r := range relayed {
		keys[r.ID] = r.Signer()
	}
	sealRuns(t, ops, func(o certs.DeviceID) crypto.Signer { return keys[o] }, func(certs.DeviceID, uint64) oplog.Link { return oplog.Link{} })
	var introduce wire.Origins
	for _, r := range relayed {
		introduce.Keys = append(introduce.Keys, r.Certificate.Leaf.RawSubjectPublicKeyInfo)
	}
	sent := make(chan struct{})
	tr, err := quicnet.Listen(context.Background(), quicnet.Config{
		Identity: id, Listen: "127.0.0.1:0", Content: src,
		Paired: func(certs.DeviceID) bool { return true },
		OnPeer: func(ctx context.Context, p *quicnet.Peer) {
			p.Send(ctx, &wire.Hello{Version: wire.ProtocolVersion, Name: "scripted"})
			p.Recv(ctx)
			if len(introduce.Keys) > 0 {
				p.Send(ctx, &introduce)
			}
			p.Send(ctx, &wire.Ops{Ops: ops})
			close(sent)
			for {
				m, err := p.Recv(ctx)
				if err != nil {
					return
				}
				each(m)
			}
		},
		Logger: slog.New(slog.NewTextHandler(&testLog{}, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	if _, err := tr.Dial(context.Background(), netip.MustParseAddrPort(n.addr), n.ID()); err != nil {
		t.Fatal(err)
	}
	<-sent
}

// TestConcurrentOpsInOneBatch has a peer send two concurrent writes of the
// same path in one frame, its own and one it relays from a third device:
// the node must keep one as the winner and the other as a conflict copy,
// and record only the copy as its own change (the first write, placed
// moments before the second is decided, is not a local edit).
func TestConcurrentOpsInOneBatch(t *testing.T) {
	folder := t.TempDir()
	peer := pairedPeer(t, folder, "peer")
	n := startNode(t, folder, freeUDPPort(t))
	first, second := []byte("first version"), []byte("second, concurrent version")
	src := &memSource{data: map[content.Hash][]byte{content.Sum(first): first, content.Sum(second): second}}
	relayed, err := certs.LoadOrCreate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	third := relayed.ID
	write := func(origin certs.DeviceID, lamport uint64, data []byte) oplog.Op {
		// No Parent: neither write saw the other. (Two ops of one origin
		// are never concurrent: it made the second after the first.)
		return oplog.Op{Origin: origin, Seq: 1, Lamport: lamport, Kind: oplog.KindWrite, Path: "same.txt",
			Hash: content.Sum(data), Size: int64(len(data)), Mode: 0o644, MTime: time.Now().UnixNano()}
	}
	sendAsPeer(t, peer, n, src, []oplog.Op{write(peer.ID, 1, first), write(third, 2, second)}, relayed)
	// The batch's records, applied marks included, are written before the
	// copy is recorded (a crash in between leaves the copy to the start-up
	// scan), so both are waited for.
	waitFor(t, "both writes applied and the copy recorded", func() string {
		applied, _ := n.db.Applied(context.Background())
		if applied[peer.ID] != 1 || applied[third] != 1 || n.ops.Highest(n.ID()) == 0 {
			return fmt.Sprintf("applied %d and %d, own ops %d", applied[peer.ID], applied[third], n.ops.Highest(n.ID()))
		}
		return ""
	})
	if b, _ := os.ReadFile(filepath.Join(folder, "same.txt")); string(b) != string(second) {
		t.Fatalf("same.txt holds %q, want the higher Lamport's %q", b, second)
	}
	copies, _ := filepath.Glob(filepath.Join(folder, "same.conflict-*.txt"))
	if len(copies) != 1 {
		t.Fatalf("conflict copies %v, want one", copies)
	}
	if b, _ := os.ReadFile(copies[0]); string(b) != string(first) {
		t.Fatalf("conflict copy holds %q", b)
	}
	if got := n.ops.Highest(n.ID()); got != 1 {
		t.Fatalf("the node logged %d ops of its own, want 1 (the conflict copy)", got)
	}
}

// TestEditWhileAReceivedChangeIsApplied: the user saves a file after the
// node decided to replace it with a peer's version and before it did. The
// save must not be overwritten without a trace: the op waits, the save is
// recorded, and both versions are kept (one as a conflict copy).
func TestEditWhileAReceivedChangeIsApplied(t *testing.T) {
	ctx := context.Background()
	folder := t.TempDir()
	write(t, filepath.Join(folder, "f.txt"), "mine, recorded")
	peer := pairedPeer(t, folder, "peer")
	var once sync.Once
	n := startNodeWith(t, folder, freeUDPPort(t), func(n *Node) {
		n.decided = func(op oplog.Op, _ core.RemotePlan) {
			if op.Path == "f.txt" {
				once.Do(func() { write(t, filepath.Join(folder, "f.txt"), "the user's save, just now") })
			}
		}
	})
	var rec state.File
	waitFor(t, "f.txt recorded", func() string {
		r, ok, _ := n.db.File(ctx, "f.txt")
		if !ok {
			return "no record"
		}
		rec = r
		return ""
	})
	theirs := []byte("the peer's version, made after seeing mine")
	src := &memSource{data: map[content.Hash][]byte{content.Sum(theirs): theirs}}
	sendAsPeer(t, peer, n, src, []oplog.Op{{Origin: peer.ID, Seq: 1, Lamport: rec.Lamport + 1, Kind: oplog.KindWrite, Path: "f.txt",
		Hash: content.Sum(theirs), Size: int64(len(theirs)), Mode: 0o644, MTime: time.Now().UnixNano(), Parent: rec.Version}})
	waitFor(t, "both versions kept", func() string {
		var have []string
		matches, _ := filepath.Glob(filepath.Join(folder, "f*.txt"))
		for _, m := range matches {
			b, _ := os.ReadFile(m)
			have = append(have, string(b))
		}
		if !slices.Contains(have, "the user's save, just now") || !slices.Contains(have, string(theirs)) {
			return fmt.Sprintf("folder holds %q", have)
		}
		return ""
	})
}

// TestSameContentInSeveralChunks: one content written to more paths than
// a chunk holds. The chunks are staged ahead of the one being applied; a
// content must be staged once, or a later chunk's temp file is the one an
// earlier chunk moved into place, and its ops wait for a retry.
func TestSameContentInSeveralChunks(t *testing.T) {
	folder := t.TempDir()
	peer := pairedPeer(t, folder, "peer")
	n := startNode(t, folder, freeUDPPort(t))
	data := []byte("the same bytes in every file")
	src := &memSource{data: map[content.Hash][]byte{content.Sum(data): data}}
	const files = 2*applyChunk + 100
	ops := make([]oplog.Op, files)
	for i := range ops {
		ops[i] = oplog.Op{Origin: peer.ID, Seq: uint64(i + 1), Lamport: uint64(i + 1), Kind: oplog.KindWrite,
			Path: fmt.Sprintf("d%d/f%d.txt", i%10, i), Hash: content.Sum(data), Size: int64(len(data)), Mode: 0o644, MTime: 1}
	}
	sendAsPeer(t, peer, n, src, ops)
	waitFor(t, "every op applied", func() string {
		if applied, _ := n.db.Applied(context.Background()); applied[peer.ID] != files {
			return fmt.Sprintf("applied %d of %d", applied[peer.ID], files)
		}
		return ""
	})
	if strings.Contains(n.logs.String(), "op stays pending") {
		t.Fatalf("ops waited for a retry:\n%s", n.logs)
	}
	if got, _ := filepath.Glob(filepath.Join(folder, "d*", "f*.txt")); len(got) != files {
		t.Fatalf("%d files in the folder, want %d", len(got), files)
	}
}
