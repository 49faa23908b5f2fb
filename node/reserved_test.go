package node

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drive-node/drive-node/content"
	"github.com/drive-node/drive-node/oplog"
)

// TestPeerCannotNameReservedFilesInAnyCase: a peer's ops naming the state
// dir, the marker or a temporary file in another case are refused with a
// clear log line, as the exact names are: on a case-insensitive disk they
// would overwrite the device key or the marker.
func TestPeerCannotNameReservedFilesInAnyCase(t *testing.T) {
	folder := t.TempDir()
	evil := pairedPeer(t, folder, "evil")
	n := startNode(t, folder, freeUDPPort(t))
	payload := []byte("attacker-controlled bytes")
	src := &memSource{data: map[content.Hash][]byte{content.Sum(payload): payload}}
	paths := []string{".DRIVE-NODE/device-key.pem", ".Drive-Node-Folder", ".DRIVE-NODE-TMP-x", "DRIVE-~1/device-key.pem", "good.txt"}
	var ops []oplog.Op
	for i, p := range paths {
		ops = append(ops, oplog.Op{Origin: evil.ID, Seq: uint64(i + 1), Lamport: uint64(i + 1), Kind: oplog.KindWrite, Path: p,
			Hash: content.Sum(payload), Size: int64(len(payload)), Mode: 0o644, MTime: time.Now().UnixNano()})
	}
	sendAsPeer(t, evil, n, src, ops)
	waitFor(t, "every op handled", func() string {
		if applied, _ := n.db.Applied(context.Background()); applied[evil.ID] != uint64(len(ops)) {
			return fmt.Sprintf("applied %d of %d", applied[evil.ID], len(ops))
		}
		return ""
	})
	if _, err := os.Stat(filepath.Join(folder, "good.txt")); err != nil {
		t.Fatalf("the ordinary file did not arrive: %v", err)
	}
	refusals := map[string]bool{}
	for _, line := range strings.Split(n.logs.String(), "\n") {
		if strings.Contains(line, "cannot be carried out on this device") && strings.Contains(line, "names drive-node's own files") {
			refusals[line[strings.Index(line, "op="):]] = true
		}
	}
	for _, p := range paths[:len(paths)-1] {
		if _, err := os.Lstat(filepath.Join(folder, strings.Split(p, "/")[0])); err == nil {
			t.Errorf("%s was written", p)
		}
	}
	if len(refusals) != len(paths)-1 {
		t.Errorf("%d ops refused as naming drive-node's own files, want %d:\n%s", len(refusals), len(paths)-1, n.logs)
	}
	if b, _ := os.ReadFile(filepath.Join(folder, MarkerName)); strings.Contains(string(b), string(payload)) {
		t.Fatal("the peer overwrote the marker")
	}
}
