package node

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/drive-node/drive-node/internal/clock"
	"github.com/drive-node/drive-node/internal/durable"
	"github.com/drive-node/drive-node/node/internal/retention"
	"github.com/drive-node/drive-node/watcher"
)

// StateDirName is the state directory's name when it lives in the folder.
const StateDirName = ".drive-node"

// TempPrefix starts the name of every temporary file the node writes in the
// folder; the watcher ignores such files and a restart removes stale ones.
const TempPrefix = ".drive-node-tmp-"

// Config says what a node syncs and where it keeps its state.
type Config struct {
	// Folder is the directory kept identical on every peer. It must exist.
	Folder string
	// StateDir holds the identity, op log and database; default
	// Folder/.drive-node. It is never synced.
	StateDir string
	// Listen is the UDP address the transport listens on.
	Listen string
	// PacketConn, when set, is the socket the transport uses instead of
	// listening on Listen (see quicnet.Config.PacketConn). Run uses it and
	// closes it when it returns; a node that never runs leaves it to the
	// caller.
	PacketConn net.PacketConn
	// Name is shown to peers; default the host name.
	Name string
	// Peers are static peer addresses (host:port) dialled in addition to
	// those discovered.
	Peers []string
	// NoDiscovery turns mDNS discovery off (static peers only).
	NoDiscovery bool
	// RescanInterval is the period of the safety-net rescan while every
	// directory of the folder has a watch (at most 10 minutes while some
	// has none); every sixth is a full scan. Default an hour; negative
	// turns the rescan off.
	RescanInterval time.Duration
	// MinStateFree is how many bytes the node keeps free on the state
	// dir's disk: below it, it pauses rather than risk a failed op log
	// write. 0 means DefaultMinStateFree; negative means no reserve.
	MinStateFree int64
	// Logger receives all of the node's logs, the op log's and the
	// watcher's and transport's included: they describe the engine's
	// events. Nil discards them; the node never logs anywhere else, nor
	// through slog's default logger.
	Logger *slog.Logger
	// Clock, when set, is the time the node, its watcher and its
	// transport read and wait on; nil is the system clock. On a fake
	// clock nothing timed happens until the clock is moved.
	Clock clock.Clock
	// AfterBurst, when set, is called from the node's own goroutine once
	// the node has handled a burst of changes (a large sync or scan) and
	// has then been idle for about a second; never while it is busy, and
	// at most once per burst. The daemon sets it to debug.FreeOSMemory, so
	// that a small board gets back the memory the burst used; the node
	// itself changes no process-wide setting.
	AfterBurst func()
	// Versions is the version store's retention schedule, as
	// comma-separated AGE:EVERY pairs ("1h:all,1d:1h,30d:1d,1y:1w", the
	// default when empty); "off" keeps no versions. See docs/history.md.
	Versions string
	// VersionsMaxShare caps the version store at this fraction of the
	// size of the folder's disk, dropping the oldest versions first; 0
	// means DefaultVersionsMaxShare.
	VersionsMaxShare float64

	// Brake is when a peer's run of changes that would delete or
	// overwrite many files here is held for approval, as ParseBrake reads
	// it ("1000,30%,5m"); "" is DefaultBrake, "off" no brake.
	Brake string

	// FoldAfter is how many ops the log takes before the ops they
	// superseded are folded away (see DefaultFoldAfter); the log must
	// also have grown by half the folder's record count. Negative: never.
	FoldAfter int
	// FoldAge is how long an op stays after a later op superseded it
	// (see DefaultFoldAge, when 0); negative: no time at all.
	FoldAge time.Duration

	// Role is what the device does with changes (see Role); "" is the
	// role it last ran with, SendReceive for a new device.
	Role Role

	// schedule is Versions parsed; nil when versions are off.
	schedule retention.Schedule
	// brake is Brake parsed; nil when off.
	brake *BrakeRule
}

// DefaultRescanInterval is Config.RescanInterval when unset.
const DefaultRescanInterval = watcher.DefaultRescanInterval

// DefaultVersionsMaxShare is Config.VersionsMaxShare when unset.
const DefaultVersionsMaxShare = 0.10

// DefaultMinStateFree is Config.MinStateFree when unset: room for the op
// log's write-ahead log to fill its memtable (2 MiB) and be flushed and
// compacted several times over, and for SQLite's WAL.
const DefaultMinStateFree = 16 << 20

// Errors a caller may want to tell apart; each is wrapped with the path.
var (
	ErrFolderMissing    = errors.New("folder does not exist")
	ErrNotADirectory    = errors.New("is not a directory")
	ErrStateNotWritable = errors.New("is not writable")
	// ErrNoIdentity is returned when the state dir holds no device
	// identity but the folder was synced before: the state is elsewhere
	// (a disk that did not mount) and starting would make a new device.
	ErrNoIdentity = errors.New("holds no device identity")
	// ErrFolderNotOurs is returned when the state dir has no history but
	// the folder carries the marker of another state dir that synced it:
	// the real state is elsewhere, and starting would make a new device.
	ErrFolderNotOurs = errors.New("has never synced this folder")
)

// withDefaults validates c and fills in defaults, returning absolute paths.
func (c Config) withDefaults() (Config, error) {
	if c.Folder == "" {
		return c, fmt.Errorf("no folder given (use --folder DIR)")
	}
	abs, err := filepath.Abs(c.Folder)
	if err != nil {
		return c, fmt.Errorf("folder %s: %w", c.Folder, err)
	}
	c.Folder = abs
	if err := CheckFolder(c.Folder); err != nil {
		return c, err
	}
	c.StateDir = DefaultStateDir(c.Folder, c.StateDir)
	if c.Name == "" {
		c.Name, _ = os.Hostname()
	}
	if c.Listen == "" {
		c.Listen = ":22000"
	}
	if c.RescanInterval == 0 {
		c.RescanInterval = DefaultRescanInterval
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.MinStateFree == 0 {
		c.MinStateFree = DefaultMinStateFree
	}
	if err := c.parseVersions(); err != nil {
		return c, err
	}
	if c.brake, err = ParseBrake(c.Brake); err != nil {
		return c, err
	}
	if c.Role, err = ParseRole(string(c.Role)); err != nil {
		return c, err
	}

	return c, nil
}

// parseVersions checks Versions and VersionsMaxShare and sets schedule.
func (c *Config) parseVersions() error {
	if c.VersionsMaxShare == 0 {
		c.VersionsMaxShare = DefaultVersionsMaxShare
	}
	if c.VersionsMaxShare < 0 || c.VersionsMaxShare > 1 {
		return fmt.Errorf("versions: a share of the disk must lie between 0 and 1, not %g", c.VersionsMaxShare)
	}
	switch c.Versions {
	case "off":
		c.schedule = nil
		return nil
	case "", "on":
		c.schedule = retention.Default()
		return nil
	}
	s, err := retention.Parse(c.Versions)
	if err != nil {
		return fmt.Errorf("versions: %w", err)
	}
	c.schedule = s
	return nil
}

// DefaultStateDir returns stateDir made absolute, or folder's own state
// directory when stateDir is empty.
func DefaultStateDir(folder, stateDir string) string {
	if stateDir == "" {
		return filepath.Join(folder, StateDirName)
	}
	if abs, err := filepath.Abs(stateDir); err == nil {
		return abs
	}
	return stateDir
}

// CheckFolder returns an error naming path unless it is an existing
// directory.
func CheckFolder(path string) error {
	st, err := os.Stat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("folder %s: %w", path, ErrFolderMissing)
	case err != nil:
		return fmt.Errorf("folder %s: %w", path, err)
	case !st.IsDir():
		return fmt.Errorf("folder %s %w", path, ErrNotADirectory)
	}
	return nil
}

// prepareStateDir creates dir if needed, makes it private and proves it
// writable.
func prepareStateDir(dir string) error {
	if err := durable.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("state dir %s %w: %w", dir, ErrStateNotWritable, err)
	}
	if err := makePrivate(dir); err != nil {
		return err
	}
	probe := filepath.Join(dir, ".write-test")
	if err := os.WriteFile(probe, nil, 0o600); err != nil {
		return fmt.Errorf("state dir %s %w: %w", dir, ErrStateNotWritable, err)
	}
	return os.Remove(probe)
}

// makePrivate takes the group and other permission bits off dir and
// everything in it: the op log and the database name every synced path, and
// the key is the device's identity. A state dir made by an older
// drive-node, or under a loose umask, is tightened at the next start.
// Windows keeps files private by ACLs, not by these bits.
func makePrivate(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("state dir %s: %w", dir, err)
		}
		if d.Type()&fs.ModeSymlink != 0 {
			return nil // chmod would change what it points to
		}
		info, err := d.Info()
		if err != nil {
			return fmt.Errorf("state dir %s: %w", dir, err)
		}
		if perm := info.Mode().Perm(); perm&0o077 != 0 {
			if err := os.Chmod(p, perm&^0o077); err != nil {
				return fmt.Errorf("state dir %s: make %s private: %w", dir, p, err)
			}
		}
		return nil
	})
}

// ignoreFunc returns the watcher's ignore rule: the state dir when it lies
// inside the folder, and the node's own temporary files.
func ignoreFunc(folder, stateDir string) func(string) bool {
	stateRel := ""
	if rel, err := filepath.Rel(folder, stateDir); err == nil && rel != "." && !strings.HasPrefix(rel, "..") {
		stateRel = filepath.ToSlash(rel)
	}
	return func(p string) bool {
		if stateRel != "" && (p == stateRel || strings.HasPrefix(p, stateRel+"/")) || p == MarkerName ||
			p == VersionsDirName || strings.HasPrefix(p, VersionsDirName+"/") {
			return true
		}
		return strings.HasPrefix(p[strings.LastIndexByte(p, '/')+1:], TempPrefix)
	}
}
