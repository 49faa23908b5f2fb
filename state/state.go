// Package state keeps a node's view of its folder and of its peers in a
// SQLite database (modernc.org/sqlite, pure Go).
//
// What it guarantees:
//
//   - Every write method runs in one transaction: it happens completely or
//     not at all. In particular DB.Apply stores a whole Batch (its rows and
//     the raised applied vector) atomically, so the rows never reflect more
//     or less of an origin's op log than Applied says.
//   - The database may be opened by several processes at once: the daemon
//     keeps it open while the CLI (`drive-node pair`, `drive-node status`)
//     opens the same file; status opens it read-only (OpenReadOnly), so a
//     look never writes or migrates it. The database runs in WAL mode, so
//     readers never block the writer nor the writer the readers, and
//     writers from other processes wait up to five seconds (busy_timeout)
//     for the write lock instead of failing. Write transactions take the lock when they begin
//     (BEGIN IMMEDIATE), so they never fail half-way on a lock upgrade.
//     Within one process writes are serialised before they reach SQLite.
//   - Readers see a consistent snapshot: one call never mixes the states
//     before and after another writer's transaction.
//   - Durability is relaxed (synchronous=NORMAL): after a power loss the
//     last committed transactions may be missing, but the database is never
//     corrupt. That is acceptable because the op log, not this database, is
//     the durable record: Reset and replaying the log rebuilds it. What the
//     log cannot rebuild is written durably (synchronous=FULL for that
//     transaction): Pair, PairByCode, PairIntroduced, Unpair,
//     RevokeIntroduced and SetMetaSynced are on disk when they return.
//   - The schema is versioned (PRAGMA user_version) and migrated forward by
//     Open, each migration in its own transaction with the version bump. A
//     database written by a newer drive-node is refused, never modified.
//
// Unsigned integers (sequence numbers, counters, inode numbers) are stored
// as their two's-complement int64 bit pattern and read back unchanged;
// comparisons of them happen in Go, never in SQL.
package state

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// busyTimeoutMS is how long a connection waits for another connection's
// lock before failing with SQLITE_BUSY.
const busyTimeoutMS = 5000

// DB is an open state database. It is safe for concurrent use.
type DB struct {
	path string
	sql  *sql.DB
	// writeSem (capacity 1) serialises this process's write transactions,
	// so that they queue in Go, honouring their contexts, rather than in
	// SQLite's busy handler. Other processes are held off by busy_timeout.
	writeSem chan struct{}
	// fileByPath is File's query, prepared once: it runs several times
	// for every op applied, and parsing it each time cost more than the
	// lookup itself.
	fileByPath *sql.Stmt
	// filesByHash is FilesByHash's query.
	filesByHash *sql.Stmt
	// contentFiles is ContentFiles' query: it runs for every content a
	// peer asks for.
	contentFiles *sql.Stmt
	// filesAt and contentFilesOf are FilesAt's and ContentFilesOf's
	// queries, for lookupGroup keys.
	filesAt        *sql.Stmt
	contentFilesOf *sql.Stmt
	// keepsVersion is KeepsVersionFor's query: a fold asks it for every
	// op it could remove.
	keepsVersion *sql.Stmt
	// children and childrenOfRoot are Children's page queries: a walk of
	// a folder of a thousand directories asks one for each.
	children, childrenOfRoot *sql.Stmt
	cache                    fileCache
	// filesGen advances after each write of file records or the applied
	// vector (see FilesGeneration).
	filesGen atomic.Uint64
}

// migrations returns the schema migrations in order: migration i (0-based)
// takes the database from version i to version i+1.
func migrations() [][]string {
	return [][]string{
		// 1: files, applied vector, peers, peer progress, meta.
		{
			`CREATE TABLE files (
				path       TEXT    NOT NULL PRIMARY KEY,
				dir        INTEGER NOT NULL,
				hash       BLOB    CHECK (hash IS NULL OR length(hash) = 32),
				size       INTEGER NOT NULL,
				mode       INTEGER NOT NULL,
				mtime_ns   INTEGER NOT NULL,
				inode      INTEGER NOT NULL,
				version    BLOB    NOT NULL,
				lamport    INTEGER NOT NULL,
				origin     BLOB    NOT NULL CHECK (length(origin) = 32),
				seq        INTEGER NOT NULL,
				deleted    INTEGER NOT NULL,
				deleted_ns INTEGER NOT NULL,
				updated_ns INTEGER NOT NULL
			) WITHOUT ROWID`,
			`CREATE INDEX files_by_hash ON files (hash) WHERE hash IS NOT NULL AND deleted = 0`,
			`CREATE INDEX files_tombstones ON files (deleted_ns) WHERE deleted = 1`,
			`CREATE TABLE applied (
				origin BLOB    NOT NULL PRIMARY KEY CHECK (length(origin) = 32),
				seq    INTEGER NOT NULL
			) WITHOUT ROWID`,
			`CREATE TABLE peers (
				id           BLOB    NOT NULL PRIMARY KEY CHECK (length(id) = 32),
				name         TEXT    NOT NULL DEFAULT '',
				addresses    TEXT    NOT NULL DEFAULT '[]',
				last_seen_ns INTEGER NOT NULL DEFAULT 0,
				connected    INTEGER NOT NULL DEFAULT 0,
				address      TEXT    NOT NULL DEFAULT '',
				behind       INTEGER NOT NULL DEFAULT 0,
				error        TEXT    NOT NULL DEFAULT '',
				paired_ns    INTEGER NOT NULL
			) WITHOUT ROWID`,
			`CREATE TABLE peer_progress (
				peer   BLOB    NOT NULL REFERENCES peers (id) ON DELETE CASCADE,
				origin BLOB    NOT NULL CHECK (length(origin) = 32),
				seq    INTEGER NOT NULL,
				PRIMARY KEY (peer, origin)
			) WITHOUT ROWID`,
			`CREATE TABLE meta (
				key   TEXT NOT NULL PRIMARY KEY,
				value TEXT NOT NULL
			) WITHOUT ROWID`,
		},
		// 2: conflict copies.
		{
			`CREATE TABLE conflicts (
				copy_path     TEXT    NOT NULL PRIMARY KEY,
				original_path TEXT    NOT NULL,
				winner_origin BLOB    NOT NULL CHECK (length(winner_origin) = 32),
				loser_origin  BLOB    NOT NULL CHECK (length(loser_origin) = 32),
				created_ns    INTEGER NOT NULL
			) WITHOUT ROWID`,
		},
		// 3: the ops whose versions of a path are not superseded (its heads).
		{
			`ALTER TABLE files ADD COLUMN heads BLOB NOT NULL DEFAULT x''`,
		},
		// 4: content over 8 MiB (content.BlockSize) is named by its block
		// tree. The recorded look of every such file is forgotten, so the
		// start-up scan hashes it again and logs its new name; peers then
		// fetch it by a name its holders can serve.
		{
			`UPDATE files SET mtime_ns = -1, inode = 0 WHERE dir = 0 AND deleted = 0 AND size > 8388608`,
		},
		// 5: the version store: contents this device replaced or removed.
		{
			`CREATE TABLE versions (
				id        INTEGER PRIMARY KEY,
				path      TEXT    NOT NULL,
				hash      BLOB    NOT NULL CHECK (length(hash) = 32),
				size      INTEGER NOT NULL,
				mode      INTEGER NOT NULL,
				mtime_ns  INTEGER NOT NULL,
				kept_ns   INTEGER NOT NULL,
				by_origin BLOB    NOT NULL CHECK (length(by_origin) = 32),
				by_seq    INTEGER NOT NULL,
				UNIQUE (path, hash, by_origin, by_seq)
			)`,
			`CREATE INDEX versions_by_hash ON versions (hash)`,
			`CREATE INDEX versions_by_kept ON versions (kept_ns)`,
			// When each op was recorded here: one row per run of an
			// origin's ops recorded together.
			`CREATE TABLE op_times (
				origin BLOB    NOT NULL CHECK (length(origin) = 32),
				first  INTEGER NOT NULL,
				last   INTEGER NOT NULL,
				at_ns  INTEGER NOT NULL,
				PRIMARY KEY (origin, first)
			) WITHOUT ROWID`,
		},
		// 6: received ops counted as handled without being carried out
		// (see SetAside), and changes a receive-only device keeps to
		// itself (see LocalChange).
		{
			`CREATE TABLE local_changes (
				path  TEXT    NOT NULL PRIMARY KEY,
				kind  TEXT    NOT NULL,
				at_ns INTEGER NOT NULL
			) WITHOUT ROWID`,
			`CREATE TABLE set_aside (
				origin   BLOB    NOT NULL CHECK (length(origin) = 32),
				seq      INTEGER NOT NULL,
				path     TEXT    NOT NULL,
				new_path TEXT    NOT NULL,
				why      TEXT    NOT NULL,
				at_ns    INTEGER NOT NULL,
				PRIMARY KEY (origin, seq)
			) WITHOUT ROWID`,
			`CREATE INDEX set_aside_by_path ON set_aside (path)`,
			`CREATE INDEX set_aside_by_new_path ON set_aside (new_path) WHERE new_path != ''`,
		},
		// 7: where this device has each chunk of its contents (see
		// ChunkSource).
		{
			`CREATE TABLE chunk_index (
				chunk   INTEGER NOT NULL,
				content BLOB    NOT NULL CHECK (length(content) = 32),
				offset  INTEGER NOT NULL,
				size    INTEGER NOT NULL,
				PRIMARY KEY (chunk, content, offset)
			) WITHOUT ROWID`,
			`CREATE INDEX chunk_index_by_content ON chunk_index (content)`,
		},
		// 8: devices refused for not being paired (see NoteUnpaired).
		{
			`CREATE TABLE unpaired_seen (
				id      BLOB    PRIMARY KEY CHECK (length(id) = 32),
				address TEXT    NOT NULL,
				at_ns   INTEGER NOT NULL
			) WITHOUT ROWID`,
			`CREATE INDEX unpaired_seen_by_time ON unpaired_seen (at_ns)`,
		},
		// 9: the last state digest each peer announced (see PeerDigest).
		{
			`CREATE TABLE peer_digests (
				peer    BLOB    NOT NULL PRIMARY KEY REFERENCES peers (id) ON DELETE CASCADE,
				root    BLOB    NOT NULL CHECK (length(root) = 32),
				files   INTEGER NOT NULL,
				applied BLOB    NOT NULL,
				at_ns   INTEGER NOT NULL
			) WITHOUT ROWID`,
		},
		// 10: the mesh: how each peer was paired, the signed
		// introductions that paired some, and the devices revoked (see
		// PairIntroduced, RevokeIntroduced). Peers paired before are
		// counted as paired by hand: nothing says how they were.
		{
			`CREATE TABLE introductions (
				id         INTEGER PRIMARY KEY,
				introducer BLOB    NOT NULL CHECK (length(introducer) = 32),
				statement  BLOB    NOT NULL,
				sig        BLOB    NOT NULL,
				at_ns      INTEGER NOT NULL
			)`,
			`ALTER TABLE peers ADD COLUMN paired_by INTEGER NOT NULL DEFAULT 0`,
			`ALTER TABLE peers ADD COLUMN introduction INTEGER REFERENCES introductions (id)`,
			`CREATE TABLE revoked (
				id        BLOB    NOT NULL PRIMARY KEY CHECK (length(id) = 32),
				by        BLOB    NOT NULL CHECK (length(by) IN (0, 32)),
				statement BLOB    NOT NULL DEFAULT x'',
				sig       BLOB    NOT NULL DEFAULT x'',
				at_ns     INTEGER NOT NULL
			) WITHOUT ROWID`,
		},
		// 11: the totals Stats reports, kept by triggers as files
		// change, so that status costs the same at a million files as
		// at ten (a full count took half a second there), and a count
		// of record writes (Stats.Changes).
		{
			`CREATE TABLE file_totals (
				id          INTEGER PRIMARY KEY CHECK (id = 0),
				files       INTEGER NOT NULL,
				dirs        INTEGER NOT NULL,
				tombstones  INTEGER NOT NULL,
				bytes       INTEGER NOT NULL,
				last_change INTEGER NOT NULL,
				changes     INTEGER NOT NULL
			)`,
			`INSERT INTO file_totals SELECT 0,
				COALESCE(SUM(deleted = 0 AND dir = 0), 0),
				COALESCE(SUM(deleted = 0 AND dir <> 0), 0),
				COALESCE(SUM(deleted <> 0), 0),
				COALESCE(SUM(CASE WHEN deleted = 0 AND dir = 0 THEN size ELSE 0 END), 0),
				COALESCE(MAX(updated_ns), 0),
				0
			FROM files`,
			// INSERT OR REPLACE fires the delete trigger for the row it
			// replaces only with recursive_triggers on (see dsn).
			`CREATE TRIGGER file_totals_insert AFTER INSERT ON files BEGIN
				UPDATE file_totals SET
					files = files + (NEW.deleted = 0 AND NEW.dir = 0),
					dirs = dirs + (NEW.deleted = 0 AND NEW.dir <> 0),
					tombstones = tombstones + (NEW.deleted <> 0),
					bytes = bytes + CASE WHEN NEW.deleted = 0 AND NEW.dir = 0 THEN NEW.size ELSE 0 END,
					last_change = MAX(last_change, NEW.updated_ns),
					changes = changes + 1;
			END`,
			`CREATE TRIGGER file_totals_delete AFTER DELETE ON files BEGIN
				UPDATE file_totals SET
					files = files - (OLD.deleted = 0 AND OLD.dir = 0),
					dirs = dirs - (OLD.deleted = 0 AND OLD.dir <> 0),
					tombstones = tombstones - (OLD.deleted <> 0),
					bytes = bytes - CASE WHEN OLD.deleted = 0 AND OLD.dir = 0 THEN OLD.size ELSE 0 END,
					changes = changes + 1;
			END`,
			`CREATE TRIGGER file_totals_update AFTER UPDATE ON files BEGIN
				UPDATE file_totals SET
					files = files - (OLD.deleted = 0 AND OLD.dir = 0) + (NEW.deleted = 0 AND NEW.dir = 0),
					dirs = dirs - (OLD.deleted = 0 AND OLD.dir <> 0) + (NEW.deleted = 0 AND NEW.dir <> 0),
					tombstones = tombstones - (OLD.deleted <> 0) + (NEW.deleted <> 0),
					bytes = bytes - CASE WHEN OLD.deleted = 0 AND OLD.dir = 0 THEN OLD.size ELSE 0 END
						+ CASE WHEN NEW.deleted = 0 AND NEW.dir = 0 THEN NEW.size ELSE 0 END,
					last_change = MAX(last_change, NEW.updated_ns),
					changes = changes + 1;
			END`,
		},
		// 12: the state digest's tree as last summed, and the
		// directories whose records changed since, marked by triggers
		// (see digesttree.go). A directory is the path up to its
		// record's last slash: rtrim strips the last name, whose every
		// character is among the path's own but for the slashes.
		{
			`CREATE TABLE digest_dirs (
				parent TEXT NOT NULL,
				name   TEXT NOT NULL,
				hash   BLOB NOT NULL CHECK (length(hash) = 32),
				PRIMARY KEY (parent, name)
			) WITHOUT ROWID`,
			`CREATE TABLE digest_dirty (
				dir  TEXT    NOT NULL PRIMARY KEY,
				mark INTEGER NOT NULL
			) WITHOUT ROWID`,
			`CREATE TRIGGER digest_dirty_insert AFTER INSERT ON files WHEN NEW.deleted = 0 BEGIN
				` + markDirty("NEW") + `
			END`,
			`CREATE TRIGGER digest_dirty_delete AFTER DELETE ON files WHEN OLD.deleted = 0 BEGIN
				` + markDirty("OLD") + `
			END`,
			`CREATE TRIGGER digest_dirty_update AFTER UPDATE ON files
			WHEN (OLD.deleted = 0 OR NEW.deleted = 0) AND (OLD.path IS NOT NEW.path OR OLD.deleted IS NOT NEW.deleted
				OR OLD.dir IS NOT NEW.dir OR OLD.hash IS NOT NEW.hash OR OLD.mode IS NOT NEW.mode) BEGIN
				` + markDirty("OLD") + `
				` + markDirty("NEW") + `
			END`,
		},
	}
}

// markDirty is the trigger statement that marks the directory of the
// record row (NEW or OLD) changed.
func markDirty(row string) string {
	return `INSERT INTO digest_dirty (dir, mark) VALUES (rtrim(rtrim(` + row + `.path, replace(` + row + `.path, '/', '')), '/'), 0)
				ON CONFLICT (dir) DO UPDATE SET mark = mark + 1;`
}

// latestVersion is the schema version this code writes.
func latestVersion() int { return len(migrations()) }

// Open opens the state database at path, creating the file (mode 0600) if
// it is missing, and migrates its schema to the latest version. The
// directory holding path must exist. A database whose schema is newer than
// this code knows is an error.
func Open(ctx context.Context, path string) (*DB, error) {
	return openAt(ctx, path, latestVersion(), false)
}

// OpenReadOnly opens the existing state database at path for reading
// only, for `drive-node status`: nothing is created, migrated or written,
// so a look at the state never changes it, whoever else has it open. A
// database whose schema is not the one this code reads is an error naming
// both versions: the daemon migrates it when it starts.
func OpenReadOnly(ctx context.Context, path string) (*DB, error) {
	return openAt(ctx, path, latestVersion(), true)
}

// openAt is Open migrating only up to version target (tests use it to
// make databases of older versions), or, when readOnly, OpenReadOnly
// checking that the database is at target.
func openAt(ctx context.Context, path string, target int, readOnly bool) (*DB, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("state: open %s: %w", path, err)
	}
	if !readOnly {
		// Create the file ourselves so that it (and the -wal and -shm
		// files SQLite derives from it) is private to the user.
		f, err := os.OpenFile(abs, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return nil, fmt.Errorf("state: open %s: %w", path, err)
		}
		if err := f.Close(); err != nil {
			return nil, fmt.Errorf("state: open %s: %w", path, err)
		}
	}
	sqldb, err := sql.Open("sqlite", dsn(abs, readOnly))
	if err != nil {
		return nil, fmt.Errorf("state: open %s: %w", path, err)
	}
	// Few connections: writes are serialised anyway, and each connection
	// holds its own page cache.
	sqldb.SetMaxOpenConns(4)
	sqldb.SetMaxIdleConns(2)
	db := &DB{path: path, sql: sqldb, writeSem: make(chan struct{}, 1)}
	if readOnly {
		err = db.checkVersion(ctx, target)
	} else {
		err = db.init(ctx, target)
	}
	if err != nil {
		sqldb.Close()
		return nil, err
	}
	if target == latestVersion() {
		if db.fileByPath, err = sqldb.PrepareContext(ctx, `SELECT `+fileColumns+` FROM files WHERE path = ?`); err == nil {
			db.filesByHash, err = sqldb.PrepareContext(ctx, `SELECT `+fileColumns+` FROM files WHERE hash = ? AND deleted = 0 ORDER BY path`)
		}
		if err == nil {
			db.contentFiles, err = sqldb.PrepareContext(ctx, `SELECT path, size, mtime_ns FROM files WHERE hash = ? AND deleted = 0 ORDER BY path`)
		}
		if err == nil {
			db.filesAt, err = sqldb.PrepareContext(ctx, `SELECT `+fileColumns+` FROM files WHERE path IN `+inList)
		}
		if err == nil {
			db.keepsVersion, err = sqldb.PrepareContext(ctx, `SELECT 1 FROM versions WHERE path = ? AND ((by_origin = ? AND by_seq = ?) OR hash = ?) LIMIT 1`)
		}
		if err == nil {
			db.children, err = sqldb.PrepareContext(ctx, `SELECT `+childColumns+` FROM files WHERE path >= ? AND path < ? AND deleted = 0 ORDER BY path LIMIT ?`)
		}
		if err == nil {
			db.childrenOfRoot, err = sqldb.PrepareContext(ctx, `SELECT `+childColumns+` FROM files WHERE path >= ? AND deleted = 0 ORDER BY path LIMIT ?`)
		}
		if err == nil {
			db.contentFilesOf, err = sqldb.PrepareContext(ctx, `SELECT hash, path, size, mtime_ns FROM files WHERE hash IN `+inList+` AND deleted = 0 ORDER BY hash, path`)
		}
		if err != nil {
			sqldb.Close()
			return nil, fmt.Errorf("state: open %s: %w", path, err)
		}
	}
	return db, nil
}

// dsn builds the driver's connection string for the absolute path abs.
// Every pooled connection gets the same pragmas. A read-only connection
// is opened by SQLite itself read-only (mode=ro: it cannot create the
// file or write it), sets nothing that would write (the journal mode),
// and begins its transactions without asking for the write lock.
func dsn(abs string, readOnly bool) string {
	p := filepath.ToSlash(abs)
	if !strings.HasPrefix(p, "/") {
		p = "/" + p // Windows: C:/x -> /C:/x
	}
	u := url.URL{Scheme: "file", Path: p}
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeoutMS))
	if readOnly {
		q.Set("mode", "ro")
	} else {
		q.Add("_pragma", "journal_mode(WAL)")
		q.Set("_txlock", "immediate")
	}
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Add("_pragma", "foreign_keys(1)")
	// The file_totals triggers count a row INSERT OR REPLACE replaces
	// only when triggers fire for the implied delete.
	q.Add("_pragma", "recursive_triggers(1)")
	// 512 KiB of page cache per connection: the daemon's memory budget is
	// small, and the hot rows are few.
	q.Add("_pragma", "cache_size(-512)")
	// A statement that fires triggers (every write to files does) keeps
	// a journal of the pages it changes, to undo itself alone; in memory
	// it holds a few pages and writes none to a temporary file. Recording
	// a batch of 1,000 new files went from 12,300 to 16,100 rows/s
	// (BenchmarkApply).
	q.Add("_pragma", "temp_store(MEMORY)")
	// url.URL would render "file:///abs"; SQLite accepts that too, but the
	// query must be encoded by us, as the driver splits at the first '?'.
	return "file://" + u.EscapedPath() + "?" + q.Encode()
}

// init checks the connection settings and migrates the schema to target.
func (db *DB) init(ctx context.Context, target int) error {
	var mode string
	if err := db.sql.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return fmt.Errorf("state: open %s: %w", db.path, err)
	}
	if !strings.EqualFold(mode, "wal") {
		return fmt.Errorf("state: open %s: journal mode is %q, not WAL (is it on a network file system?)", db.path, mode)
	}
	// The common case, an up-to-date schema, needs no write lock: the CLI
	// opening the database must not queue behind the daemon's writes.
	v, err := db.SchemaVersion(ctx)
	if err != nil {
		return err
	}
	if v == target && v <= latestVersion() {
		return nil
	}
	for {
		done, err := db.migrateOne(ctx, target)
		if err != nil {
			return err
		}
		if done {
			return nil
		}
	}
}

// checkVersion returns an error unless the schema is at version want.
func (db *DB) checkVersion(ctx context.Context, want int) error {
	v, err := db.SchemaVersion(ctx)
	switch {
	case err != nil:
		return err
	case v > want:
		return fmt.Errorf("state: %s: schema version %d is newer than this drive-node reads (%d); upgrade drive-node", db.path, v, want)
	case v < want:
		return fmt.Errorf("state: %s: schema version %d is older than this drive-node reads (%d); start the daemon once to upgrade it", db.path, v, want)
	}
	return nil
}

// migrateOne applies the next migration, if the database is below target,
// in one transaction with the version bump. The version is read inside the
// write transaction, so two processes opening an old database at once
// migrate it once.
func (db *DB) migrateOne(ctx context.Context, target int) (done bool, err error) {
	all := migrations()
	err = db.write(ctx, func(tx *sql.Tx) error {
		var v int
		if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
			return fmt.Errorf("read schema version: %w", err)
		}
		if v > len(all) {
			return fmt.Errorf("schema version %d is newer than this drive-node supports (%d); upgrade drive-node", v, len(all))
		}
		if v >= target {
			done = true
			return nil
		}
		for _, stmt := range all[v] {
			if _, err := tx.ExecContext(ctx, stmt); err != nil {
				return fmt.Errorf("migrate schema %d -> %d: %w", v, v+1, err)
			}
		}
		// PRAGMA takes no bound parameters; v is an int we control.
		if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", v+1)); err != nil {
			return fmt.Errorf("migrate schema %d -> %d: set version: %w", v, v+1, err)
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("state: open %s: %w", db.path, err)
	}
	return done, nil
}

// Close closes the database. Calls in progress may fail.
func (db *DB) Close() error {
	for _, st := range []*sql.Stmt{db.fileByPath, db.filesByHash, db.contentFiles, db.filesAt, db.contentFilesOf, db.keepsVersion, db.children, db.childrenOfRoot} {
		if st != nil {
			st.Close()
		}
	}
	if err := db.sql.Close(); err != nil {
		return fmt.Errorf("state: close %s: %w", db.path, err)
	}
	return nil
}

// SchemaVersion returns the database's schema version.
func (db *DB) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	if err := db.sql.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return 0, fmt.Errorf("state: %s: read schema version: %w", db.path, err)
	}
	return v, nil
}

// write runs fn in a write transaction (BEGIN IMMEDIATE, see dsn) and
// commits it if fn returns nil. Errors are returned unwrapped; callers add
// the path and what they were doing.
func (db *DB) write(ctx context.Context, fn func(tx *sql.Tx) error) error {
	return db.writeTx(ctx, false, everyRecord, fn)
}

// writeSynced is write for what the op log cannot rebuild (pairings, the
// folder marker's record): the commit is on disk when it returns
// (synchronous=FULL for this transaction), not only safe from corruption.
func (db *DB) writeSynced(ctx context.Context, fn func(tx *sql.Tx) error) error {
	return db.writeTx(ctx, true, everyRecord, fn)
}

// writeTx runs fn in a write transaction; touched says which records of
// the files table fn may change, so File forgets only those.
func (db *DB) writeTx(ctx context.Context, synced bool, touched recordsTouched, fn func(tx *sql.Tx) error) (err error) {
	select {
	case db.writeSem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-db.writeSem }()
	db.cache.begin()
	defer db.cache.end(touched)
	var tx *sql.Tx
	if synced {
		// The setting belongs to the connection: this one is held for the
		// transaction and set back before it returns to the pool.
		conn, cerr := db.sql.Conn(ctx)
		if cerr != nil {
			return cerr
		}
		defer conn.Close()
		if _, err := conn.ExecContext(ctx, "PRAGMA synchronous=FULL"); err != nil {
			return err
		}
		defer func() {
			if _, rerr := conn.ExecContext(context.WithoutCancel(ctx), "PRAGMA synchronous=NORMAL"); rerr != nil {
				conn.Raw(func(any) error { return driver.ErrBadConn }) // not returned to the pool as it is
				err = errors.Join(err, rerr)
			}
		}()
		tx, err = conn.BeginTx(ctx, nil)
	} else {
		tx, err = db.sql.BeginTx(ctx, nil)
	}
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		if rerr := tx.Rollback(); rerr != nil && !errors.Is(rerr, sql.ErrTxDone) {
			return errors.Join(err, rerr)
		}
		return err
	}
	return tx.Commit()
}

// read runs fn in a read-only transaction: a consistent snapshot that does
// not take the write lock.
func (db *DB) read(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := db.sql.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit()
}

// CheckIntegrity runs SQLite's full integrity check and returns an error
// naming the database and the first problems found, or nil when the file
// is sound.
func (db *DB) CheckIntegrity(ctx context.Context) error {
	rows, err := db.sql.QueryContext(ctx, "PRAGMA integrity_check")
	if err != nil {
		return fmt.Errorf("state: %s: integrity check: %w", db.path, err)
	}
	defer rows.Close()
	var problems []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			return fmt.Errorf("state: %s: integrity check: %w", db.path, err)
		}
		if line != "ok" {
			problems = append(problems, line)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("state: %s: integrity check: %w", db.path, err)
	}
	if len(problems) > 0 {
		return fmt.Errorf("state: %s is damaged: %s", db.path, strings.Join(problems, "; "))
	}
	return nil
}
