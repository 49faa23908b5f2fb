package state

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/drive-node/drive-node/certs"
	"github.com/drive-node/drive-node/content"
	"github.com/drive-node/drive-node/internal/goroutines"
)

func testPath(t testing.TB) string {
	t.Helper()
	return filepath.Join(t.TempDir(), "state.db")
}

func openTest(t testing.TB, path string) *DB {
	t.Helper()
	db, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Error(err)
		}
	})
	return db
}

func newDB(t testing.TB) *DB {
	t.Helper()
	return openTest(t, testPath(t))
}

// dev returns a distinct device ID for each n.
func dev(n byte) certs.DeviceID {
	var id certs.DeviceID
	for i := range id {
		id[i] = n ^ byte(i*7)
	}
	return id
}

func TestOpenFreshIsLatestWithPragmas(t *testing.T) {
	ctx := context.Background()
	path := testPath(t)
	db := openTest(t, path)
	v, err := db.SchemaVersion(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if v != latestVersion() || v < 2 {
		t.Fatalf("fresh schema version %d, want %d", v, latestVersion())
	}
	// Every pooled connection must carry the pragmas: check on several at
	// once by holding them in transactions.
	for i := 0; i < 3; i++ {
		conn, err := db.sql.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		for _, tc := range []struct {
			pragma string
			want   string
		}{
			{"journal_mode", "wal"},
			{"busy_timeout", "5000"},
			{"foreign_keys", "1"},
			{"synchronous", "1"}, // NORMAL
		} {
			var got string
			if err := conn.QueryRowContext(ctx, "PRAGMA "+tc.pragma).Scan(&got); err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("conn %d: PRAGMA %s = %s, want %s", i, tc.pragma, got, tc.want)
			}
		}
	}
	if runtime.GOOS != "windows" {
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("database file mode %v, want 0600", st.Mode().Perm())
		}
	}
}

func TestOpenPathNeedingEscapes(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "a dir?#%x", "state.db")
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	db := openTest(t, path)
	if err := db.SetMeta(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("database not at the path given: %v", err)
	}
}

func TestOpenMissingDirNamesPath(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing", "state.db")
	_, err := Open(context.Background(), path)
	if err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("Open in a missing dir: %v, want error naming %s", err, path)
	}
}

func TestOpenNotADatabase(t *testing.T) {
	path := testPath(t)
	if err := os.WriteFile(path, []byte(strings.Repeat("not sqlite ", 1000)), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Open(context.Background(), path)
	if err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("Open of a non-database: %v, want error naming %s", err, path)
	}
}

func TestMigrateFromVersion1(t *testing.T) {
	ctx := context.Background()
	path := testPath(t)
	old, err := openAt(ctx, path, 1, false)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := old.SchemaVersion(ctx); err != nil || v != 1 {
		t.Fatalf("openAt(1): version %d, %v", v, err)
	}
	// Version 1 has no conflicts table.
	if err := old.RecordConflict(ctx, Conflict{CopyPath: "x", Winner: dev(1), Loser: dev(2)}); err == nil {
		t.Fatal("conflicts table exists at version 1")
	}
	// A row as version 1 wrote it (no heads column yet).
	o := dev(1)
	if _, err := old.sql.ExecContext(ctx, `INSERT INTO files (path, dir, hash, size, mode, mtime_ns, inode, version, lamport, origin, seq, deleted, deleted_ns, updated_ns)
		VALUES ('kept', 0, NULL, 3, 420, 0, 0, x'', 1, ?, 7, 0, 0, 0)`, o[:]); err != nil {
		t.Fatal(err)
	}
	nine := dev(9)
	if _, err := old.sql.ExecContext(ctx, `INSERT INTO peers (id, name, paired_ns) VALUES (?, 'nine', 1)`, nine[:]); err != nil {
		t.Fatal(err)
	}
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}

	db := openTest(t, path)
	if v, err := db.SchemaVersion(ctx); err != nil || v != latestVersion() {
		t.Fatalf("after migration: version %d, %v; want %d", v, err, latestVersion())
	}
	got, ok, err := db.File(ctx, "kept")
	if err != nil || !ok || got.Size != 3 || got.Seq != 7 || len(got.Heads) != 0 {
		t.Fatalf("row lost in migration: %+v %v %v", got, ok, err)
	}
	// Version 10 records how peers were paired; those before count as
	// paired by hand, out of the mesh.
	if p, ok, err := db.Peer(ctx, nine); err != nil || !ok || p.Name != "nine" || p.PairedBy != PairedByHand {
		t.Fatalf("peer after migration: %+v %v %v", p, ok, err)
	}
	// Version 3 stores heads.
	got.Heads = []OpID{{dev(1), 7}, {dev(2), 3}}
	if err := db.Apply(ctx, Batch{Files: []File{got}}); err != nil {
		t.Fatal(err)
	}
	if again, _, _ := db.File(ctx, "kept"); len(again.Heads) != 2 || again.Heads[1] != (OpID{dev(2), 3}) {
		t.Fatalf("heads not stored: %+v", again.Heads)
	}
	if p, ok, err := db.Peer(ctx, dev(9)); err != nil || !ok || p.Name != "nine" {
		t.Fatalf("peer lost in migration: %+v %v %v", p, ok, err)
	}
	c := Conflict{CopyPath: "a.conflict", OriginalPath: "a", Winner: dev(1), Loser: dev(2), CreatedAt: 5}
	if err := db.RecordConflict(ctx, c); err != nil {
		t.Fatal(err)
	}
	cs, err := db.Conflicts(ctx)
	if err != nil || len(cs) != 1 || cs[0] != c {
		t.Fatalf("Conflicts = %+v, %v; want [%+v]", cs, err, c)
	}
}

func TestOpenFutureVersionFails(t *testing.T) {
	ctx := context.Background()
	path := testPath(t)
	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	future := latestVersion() + 3
	if _, err := db.sql.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", future)); err != nil {
		t.Fatal(err)
	}
	db.Close()
	_, err = Open(ctx, path)
	if err == nil {
		t.Fatal("opened a database from the future")
	}
	for _, want := range []string{path, fmt.Sprint(future), fmt.Sprint(latestVersion())} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestMetaRoundTrip(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	if _, ok, err := db.Meta(ctx, "paused"); err != nil || ok {
		t.Fatalf("Meta of unset key: ok=%v err=%v", ok, err)
	}
	for _, v := range []string{"1", "", "0"} {
		if err := db.SetMeta(ctx, "paused", v); err != nil {
			t.Fatal(err)
		}
		got, ok, err := db.Meta(ctx, "paused")
		if err != nil || !ok || got != v {
			t.Fatalf("Meta = %q %v %v, want %q", got, ok, err, v)
		}
	}
}

func TestSetMetas(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	if err := db.SetMeta(ctx, "pid", "1"); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"pid": "2", "started_at": "20", "folder": "/srv/sync"}
	if err := db.SetMetas(ctx, want); err != nil {
		t.Fatal(err)
	}
	for k, v := range want {
		if got, ok, err := db.Meta(ctx, k); err != nil || !ok || got != v {
			t.Errorf("Meta(%q) = %q %v %v, want %q", k, got, ok, err, v)
		}
	}
}

func TestConflictsOrdered(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	in := []Conflict{
		{CopyPath: "b.c", OriginalPath: "b", Winner: dev(1), Loser: dev(2), CreatedAt: 20},
		{CopyPath: "a.c", OriginalPath: "a", Winner: dev(2), Loser: dev(1), CreatedAt: 10},
		{CopyPath: "c.c", OriginalPath: "c", Winner: dev(3), Loser: dev(1), CreatedAt: 10},
	}
	for _, c := range in {
		if err := db.RecordConflict(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	got, err := db.Conflicts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []Conflict{in[1], in[2], in[0]}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("Conflicts = %+v, want %+v", got, want)
	}
}

// TestTwoHandles opens the file twice, as the daemon and the CLI do.
func TestTwoHandles(t *testing.T) {
	ctx := context.Background()
	path := testPath(t)
	daemon := openTest(t, path)
	cli := openTest(t, path)

	if err := cli.Pair(ctx, dev(1), "laptop"); err != nil {
		t.Fatal(err)
	}
	if ok, err := daemon.IsPaired(ctx, dev(1)); err != nil || !ok {
		t.Fatalf("daemon does not see the CLI's pairing: %v %v", ok, err)
	}
	if err := daemon.Apply(ctx, Batch{Files: []File{{Path: "f", Size: 9}}}); err != nil {
		t.Fatal(err)
	}
	if st, err := cli.Stats(ctx); err != nil || st.Files != 1 || st.Bytes != 9 {
		t.Fatalf("CLI does not see the daemon's file: %+v %v", st, err)
	}

	// While the daemon holds the write lock, the CLI's write waits for it
	// (busy_timeout) instead of failing.
	tx, err := daemon.sql.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO meta (key, value) VALUES ('held', '1')`); err != nil {
		t.Fatal(err)
	}
	// A reader is not blocked by the writer, and does not see its
	// uncommitted write.
	if _, ok, err := cli.Meta(ctx, "held"); err != nil || ok {
		t.Fatalf("reader during a write: ok=%v err=%v", ok, err)
	}
	// Nor is `drive-node status` opening the database afresh: Open of an
	// up-to-date database takes no write lock (if it did, this would fail
	// after busy_timeout, as the lock is held until after it returns).
	status, err := Open(ctx, path)
	if err != nil {
		t.Fatalf("Open while another handle writes: %v", err)
	}
	if st, err := status.Stats(ctx); err != nil || st.Files != 1 {
		t.Fatalf("Stats while another handle writes: %+v %v", st, err)
	}
	if err := status.Close(); err != nil {
		t.Fatal(err)
	}
	// The CLI's write reaches SQLite's busy handler, waiting for the
	// lock; only then does the daemon commit.
	paired := make(chan error, 1)
	go func() { paired <- cli.Pair(ctx, dev(2), "phone") }()
	waitInBusyHandler(t, "state.(*DB).Pair", paired)
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := <-paired; err != nil {
		t.Fatalf("write while the other handle held the lock: %v", err)
	}
	if v, ok, err := cli.Meta(ctx, "held"); err != nil || !ok || v != "1" {
		t.Fatalf("held write lost: %q %v %v", v, ok, err)
	}
	if ok, err := daemon.IsPaired(ctx, dev(2)); err != nil || !ok {
		t.Fatalf("daemon does not see the second pairing: %v %v", ok, err)
	}
}

// waitInBusyHandler waits until a goroutine running fn is in SQLite's
// busy handler, waiting for the write lock; it fails the test if done
// delivers fn's result first.
func waitInBusyHandler(t *testing.T, fn string, done <-chan error) {
	t.Helper()
	waiting := func() bool {
		// SQLite's busy callback, or the driver's own, which replaces it
		// for calls with a context that can end.
		return goroutines.Count("", fn, "sqliteDefaultBusyCallback")+goroutines.Count("", fn, "sqlite.busyHandler") > 0
	}
	for deadline := time.Now().Add(busyTimeoutMS * time.Millisecond / 2); !waiting(); {
		select {
		case err := <-done:
			t.Fatalf("write returned (%v) without waiting for the lock; was the transaction not holding it?", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("the write is not waiting in SQLite's busy handler")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestSyncedWriteGivesUpWithItsContext: a pairing (a synced write) that
// waits for another handle's write lock returns its context's error once
// the context ends (it used to go on with no transaction and panic).
func TestSyncedWriteGivesUpWithItsContext(t *testing.T) {
	path := testPath(t)
	daemon, cli := openTest(t, path), openTest(t, path)
	bg := context.Background()
	tx, err := daemon.sql.BeginTx(bg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(bg, `INSERT INTO meta (key, value) VALUES ('held', '1')`); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(bg)
	paired := make(chan error, 1)
	go func() { paired <- cli.Pair(ctx, dev(3), "laptop") }()
	waitInBusyHandler(t, "state.(*DB).Pair", paired)
	cancel()
	select {
	case err := <-paired:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Pair: %v, want the context's error", err)
		}
	case <-time.After(busyTimeoutMS * time.Millisecond):
		t.Fatal("Pair did not give up with its context")
	}
	if ok, err := daemon.IsPaired(bg, dev(3)); err != nil || ok {
		t.Fatalf("paired after giving up: %v %v", ok, err)
	}
}

// TestConcurrentWritersTwoHandles has two handles write at once; none may
// fail with SQLITE_BUSY.
func TestConcurrentWritersTwoHandles(t *testing.T) {
	ctx := context.Background()
	path := testPath(t)
	a, b := openTest(t, path), openTest(t, path)
	const n = 50
	errc := make(chan error, 2)
	for i, db := range []*DB{a, b} {
		go func() {
			for j := 0; j < n; j++ {
				f := File{Path: fmt.Sprintf("h%d/%03d", i, j), Size: 1}
				if err := db.Apply(ctx, Batch{Files: []File{f}, Applied: map[certs.DeviceID]uint64{dev(byte(i)): uint64(j + 1)}}); err != nil {
					errc <- err
					return
				}
			}
			errc <- nil
		}()
	}
	for range 2 {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	st, err := a.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Files != 2*n || st.Ops != 2*n {
		t.Fatalf("Stats after concurrent writes: %+v, want %d files and ops", st, 2*n)
	}
}

const helperEnv = "STATE_TEST_HELPER_DB"

// TestHelperProcess is the second process of TestSecondProcess.
func TestHelperProcess(t *testing.T) {
	path := os.Getenv(helperEnv)
	if path == "" {
		t.Skip("helper process only")
	}
	ctx := context.Background()
	db, err := Open(ctx, path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	defer db.Close()
	if err := db.Pair(ctx, dev(42), "from-cli"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	st, err := db.Stats(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(4)
	}
	fmt.Printf("files=%d\n", st.Files)
}

// TestSecondProcess runs the CLI's access from a real second process while
// this one keeps the database open and writes to it.
func TestSecondProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a process")
	}
	ctx := context.Background()
	path := testPath(t)
	daemon := openTest(t, path)
	if err := daemon.Apply(ctx, Batch{Files: []File{{Path: "x"}, {Path: "y"}}}); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	writerDone := make(chan error, 1)
	go func() { // the daemon keeps writing meanwhile
		for i := 0; ; i++ {
			select {
			case <-stop:
				writerDone <- nil
				return
			default:
			}
			if err := daemon.SetMeta(ctx, "tick", fmt.Sprint(i)); err != nil {
				writerDone <- err
				return
			}
		}
	}()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperEnv+"="+path)
	out, err := cmd.Output()
	close(stop)
	if werr := <-writerDone; werr != nil {
		t.Fatalf("daemon write failed while the CLI ran: %v", werr)
	}
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("helper failed: %v\n%s\n%s", err, out, ee.Stderr)
		}
		t.Fatal(err)
	}
	if !strings.Contains(string(out), "files=2") {
		t.Fatalf("helper output %q, want files=2", out)
	}
	if ok, err := daemon.IsPaired(ctx, dev(42)); err != nil || !ok {
		t.Fatalf("daemon does not see the other process's pairing: %v %v", ok, err)
	}
}

func TestContextCancelled(t *testing.T) {
	db := newDB(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := db.Apply(ctx, Batch{Files: []File{{Path: "a"}}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Apply with cancelled context: %v", err)
	}
	if _, ok, err := db.File(context.Background(), "a"); err != nil || ok {
		t.Fatalf("cancelled Apply stored something: ok=%v err=%v", ok, err)
	}
}

func TestCheckIntegrity(t *testing.T) {
	ctx := context.Background()
	path := testPath(t)
	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	b := Batch{Files: make([]File, 3000)}
	for i := range b.Files {
		b.Files[i] = benchFile(i + 1)
	}
	if err := db.Apply(ctx, b); err != nil {
		t.Fatal(err)
	}
	if err := db.CheckIntegrity(ctx); err != nil {
		t.Fatalf("a sound database: %v", err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	// Scribble over a page in the middle of the file (a B-tree page of the
	// files table or one of its indexes).
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := f.Stat()
	if _, err := f.WriteAt([]byte(strings.Repeat("\xa5", 4096)), st.Size()/2/4096*4096); err != nil {
		t.Fatal(err)
	}
	f.Close()
	db, err = Open(ctx, path)
	if err == nil {
		defer db.Close()
		err = db.CheckIntegrity(ctx)
	}
	if err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("a damaged database passed the check: %v", err)
	}
	t.Logf("damage found: %v", err)
}

// TestMigrateForgetsLooksOfTreeNamedFiles: from version 4, content over
// content.BlockSize has a new name; the files that hold such content must
// be hashed again, and the others must not be.
func TestMigrateForgetsLooksOfTreeNamedFiles(t *testing.T) {
	if content.BlockSize != 8388608 {
		t.Fatalf("content.BlockSize is %d; migration 4 was written for 8 MiB and stays so, a new size needs a new migration", content.BlockSize)
	}
	ctx := context.Background()
	path := testPath(t)
	old, err := openAt(ctx, path, 3, false)
	if err != nil {
		t.Fatal(err)
	}
	rows := []File{
		{Path: "small", Hash: content.Sum([]byte("s")), Size: 1, MTime: 11, Inode: 21, Mode: 0o644},
		{Path: "exactly-a-block", Hash: content.Sum([]byte("b")), Size: content.BlockSize, MTime: 12, Inode: 22, Mode: 0o644},
		{Path: "big", Hash: content.Sum([]byte("B")), Size: content.BlockSize + 1, MTime: 13, Inode: 23, Mode: 0o644},
		{Path: "big-deleted", Size: 0, Deleted: true, DeletedAt: 5, MTime: 14},
	}
	if err := old.Apply(ctx, Batch{Files: rows}); err != nil {
		t.Fatal(err)
	}
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}
	db := openTest(t, path)
	for _, want := range rows {
		got, ok, err := db.File(ctx, want.Path)
		if err != nil || !ok {
			t.Fatalf("%s: lost in migration (%v)", want.Path, err)
		}
		forgotten := got.MTime == -1 && got.Inode == 0
		if wantForgotten := want.Size > content.BlockSize; forgotten != wantForgotten {
			t.Errorf("%s (%d bytes): look forgotten = %v, want %v", want.Path, want.Size, forgotten, wantForgotten)
		}
		if got.Hash != want.Hash || got.Size != want.Size {
			t.Errorf("%s: content changed in migration: %v %d", want.Path, got.Hash.Short(), got.Size)
		}
	}
}

// TestSyncedWritesAreFull: what the op log cannot rebuild is committed
// with synchronous=FULL, and the connection goes back to the pool with
// NORMAL, as every other write expects.
func TestSyncedWritesAreFull(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	db.sql.SetMaxOpenConns(1) // the synced write and the checks below share one connection
	syncMode := func(q interface {
		QueryRowContext(context.Context, string, ...any) *sql.Row
	}) string {
		var got string
		if err := q.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&got); err != nil {
			t.Fatal(err)
		}
		return got
	}
	for _, synced := range []bool{true, false} {
		var during string
		err := db.writeTx(ctx, synced, everyRecord, func(tx *sql.Tx) error {
			during = syncMode(tx)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if want := map[bool]string{true: "2", false: "1"}[synced]; during != want {
			t.Errorf("synced=%v: synchronous %s inside the transaction, want %s", synced, during, want)
		}
		if after := syncMode(db.sql); after != "1" {
			t.Errorf("synced=%v: the pooled connection kept synchronous %s afterwards, want 1 (NORMAL)", synced, after)
		}
	}
	if err := db.Pair(ctx, certs.DeviceID{1}, "peer"); err != nil {
		t.Fatal(err)
	}
	if err := db.SetMetaSynced(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
	if v, ok, err := db.Meta(ctx, "k"); err != nil || !ok || v != "v" {
		t.Fatalf("Meta after SetMetaSynced: %q %v %v", v, ok, err)
	}
}
