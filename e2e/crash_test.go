package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drive-node/drive-node/certs"
	"github.com/drive-node/drive-node/internal/netlab"
	"github.com/drive-node/drive-node/node"
	"github.com/drive-node/drive-node/oplog"
	"github.com/drive-node/drive-node/state"
)

// mutator changes a folder continuously: creates, appends, renames,
// deletes, nested directories.
type mutator struct {
	root string
	rng  *rand.Rand
	n    int
}

func (m *mutator) step() {
	m.n++
	files := m.list(false)
	dirs := m.list(true)
	pickDir := func() string {
		if len(dirs) == 0 || m.rng.Intn(3) == 0 {
			return ""
		}
		return dirs[m.rng.Intn(len(dirs))]
	}
	switch r := m.rng.Intn(100); {
	case r < 30 || len(files) == 0:
		p := filepath.Join(m.root, pickDir(), fmt.Sprintf("f%d-%d.txt", m.n, m.rng.Intn(1000)))
		os.WriteFile(p, bytes.Repeat([]byte{byte(m.n)}, m.rng.Intn(20000)), 0o644)
	case r < 50:
		f, err := os.OpenFile(filepath.Join(m.root, files[m.rng.Intn(len(files))]), os.O_APPEND|os.O_WRONLY, 0)
		if err == nil {
			f.Write(bytes.Repeat([]byte("appended "), 1+m.rng.Intn(500)))
			f.Close()
		}
	case r < 62:
		src := files[m.rng.Intn(len(files))]
		os.Rename(filepath.Join(m.root, src), filepath.Join(m.root, pickDir(), fmt.Sprintf("moved%d.txt", m.n)))
	case r < 75:
		os.Remove(filepath.Join(m.root, files[m.rng.Intn(len(files))]))
	case r < 90:
		os.MkdirAll(filepath.Join(m.root, pickDir(), fmt.Sprintf("d%d", m.n), fmt.Sprintf("e%d", m.rng.Intn(3))), 0o755)
	default:
		if len(dirs) > 0 {
			os.RemoveAll(filepath.Join(m.root, dirs[m.rng.Intn(len(dirs))]))
		}
	}
}

func (m *mutator) list(dirs bool) []string {
	var out []string
	filepath.WalkDir(m.root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		rel, _ := filepath.Rel(m.root, p)
		if rel == "." {
			return nil
		}
		if strings.HasPrefix(d.Name(), ".drive-node") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() == dirs {
			out = append(out, rel)
		}
		return nil
	})
	return out
}

// readStatus runs `drive-node status --json`; while the daemon is still
// creating its state it may fail, which reads as "not ready".
func readStatus(h *netlab.Host, bin, folder string) (node.Status, error) {
	out, err := h.Command(context.Background(), bin, "status", "--folder", folder, "--json").Output()
	var st node.Status
	if err == nil {
		err = json.Unmarshal(out, &st)
	}
	return st, err
}

// checkRecorded compares the folder with the database: every file and
// directory on disk has a live row with its size and hash, and every live
// row is on disk.
func checkRecorded(t *testing.T, folder string) {
	t.Helper()
	ctx := context.Background()
	db, err := state.Open(ctx, filepath.Join(folder, ".drive-node", "state.db"))
	if err != nil {
		t.Fatalf("database does not open: %v", err)
	}
	defer db.Close()
	disk, err := snapshot(folder)
	if err != nil {
		t.Fatal(err)
	}
	live := map[string]state.File{}
	if err := db.Files(ctx, func(f state.File) error {
		if !f.Deleted {
			live[f.Path] = f
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var problems []string
	for p, e := range disk {
		f, ok := live[p]
		switch {
		case !ok:
			problems = append(problems, "not recorded: "+p)
		case f.Dir != e.dir:
			problems = append(problems, "type differs: "+p)
		case !e.dir && f.Hash.String()[:16] != e.hash:
			problems = append(problems, "content not recorded: "+p)
		}
	}
	for p := range live {
		if _, ok := disk[p]; !ok {
			problems = append(problems, "recorded but gone: "+p)
		}
	}
	sort.Strings(problems)
	if len(problems) > 0 {
		t.Fatalf("after restart the database does not match the folder (%d problems): %s", len(problems), strings.Join(problems[:min(len(problems), 10)], "; "))
	}
}

// openStoppedLog opens the op log of a node that is not running, failing
// the test if it does not open.
func openStoppedLog(t *testing.T, stateDir string) (*oplog.Log, certs.DeviceID) {
	t.Helper()
	id, err := certs.Load(stateDir)
	if err != nil {
		t.Fatal(err)
	}
	l, err := oplog.Open(filepath.Join(stateDir, "oplog"), id.Signer(), nil)
	if err != nil {
		t.Fatalf("op log of a stopped node does not open: %v", err)
	}
	return l, id.ID
}

// checkLog opens the log (the daemon is dead) and checks that the ops it
// had at earlier kill points are still there, byte for byte, and that local
// sequences are contiguous from 1.
func checkLog(t *testing.T, folder string, seen map[uint64][]byte) int {
	t.Helper()
	l, id := openStoppedLog(t, filepath.Join(folder, ".drive-node"))
	defer l.Close()
	var next uint64 = 1
	err := l.Iterate(context.Background(), id, 1, func(op oplog.Op) error {
		if op.Seq != next {
			return fmt.Errorf("sequence %d follows %d", op.Seq, next-1)
		}
		next++
		b, _ := op.MarshalBinary()
		if old, ok := seen[op.Seq]; ok && !bytes.Equal(old, b) {
			return fmt.Errorf("sequence %d was reused for a different op: %s", op.Seq, op)
		}
		seen[op.Seq] = b
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if uint64(len(seen)) != next-1 {
		t.Fatalf("log lost acknowledged ops: had %d, now %d", len(seen), next-1)
	}
	return len(seen)
}

// TestCrashAtRandomMoments kills the daemon with SIGKILL while the folder
// changes, many times, and checks after each restart that every change on
// disk is recorded, that no sequence was ever reused, and that the log and
// database open cleanly.
func TestCrashAtRandomMoments(t *testing.T) {
	bin := netlab.BuildBinary(t, "github.com/drive-node/drive-node/cmd/drive-node")
	lab := netlab.New(t, 1)
	h := lab.Host(0)
	folder := t.TempDir()
	seed := testSeed(t)
	rng := rand.New(rand.NewSource(seed))
	m := &mutator{root: folder, rng: rand.New(rand.NewSource(seed + 1))}
	for i := 0; i < 30; i++ {
		m.step()
	}
	seen := map[uint64][]byte{}
	const killPoints = 24
	for cycle := 0; cycle <= killPoints; cycle++ {
		d := h.Start(t, bin, "--folder", folder, "--no-discovery", "--listen", "127.0.0.1:0", "--log-level", "debug")
		netlab.Eventually(t, 60*time.Second, "daemon ready after restart", func() (bool, string) {
			if d.Exited() {
				t.Fatalf("daemon exited:\n%s", d.Log())
			}
			st, err := readStatus(h, bin, folder)
			return err == nil && st.Running && st.Ready, fmt.Sprintf("%+v %v", st, err)
		})
		if !t.Run(fmt.Sprintf("recorded after restart %d", cycle), func(t *testing.T) { checkRecorded(t, folder) }) {
			t.Fatalf("daemon log:\n%s", d.Log())
		}
		if cycle == killPoints {
			d.Kill()
			break
		}
		// Change the folder while the daemon runs, and kill it at a random
		// moment in the middle.
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
					m.step()
					time.Sleep(time.Duration(rng.Intn(3)) * time.Millisecond)
				}
			}
		}()
		time.Sleep(time.Duration(20+rng.Intn(400)) * time.Millisecond)
		d.Kill()
		close(stop)
		wg.Wait()
		ops := checkLog(t, folder, seen)
		t.Logf("kill point %d: %d ops in the log, %d changes made so far", cycle+1, ops, m.n)
	}
	if len(seen) < killPoints {
		t.Fatalf("only %d ops recorded over %d kill points: the test did not exercise the daemon", len(seen), killPoints)
	}
}
