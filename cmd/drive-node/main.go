// Command drive-node keeps one folder identical on the devices of a local
// network, with no server and no internet.
//
//	drive-node --folder DIR [--state DIR] [--listen ADDR] [--name NAME] [--peer HOST:PORT]...
//	drive-node COMMAND [flags] [ARGS]
//
// `drive-node --help` lists the commands (the table in commands.go) and
// `drive-node help COMMAND` gives one command's flags.
//
// The exit code is 0 after a clean stop, 2 when the op log's disk failed
// (the state disk is full, say: a supervisor such as systemd restarts the
// daemon, which then reads back what the disk holds), and 1 for any other
// error.
//
// Everything process-wide is set here, not in the node package: the
// memory limit, signal handling, handing the heap back to the OS after a
// burst of changes (node.Config.AfterBurst), the logger, the exit code.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/drive-node/drive-node/internal/clock"
	"github.com/drive-node/drive-node/node"
	"github.com/drive-node/drive-node/node/control"
	"github.com/drive-node/drive-node/oplog"
	"github.com/spf13/pflag"
)

// version and commit are set at build time by scripts/release.sh
// (-ldflags "-X main.version=… -X main.commit=…"); a plain build reports
// "dev" and the commit Go recorded, if any.
var (
	version = "dev"
	commit  = ""
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run executes one command line and returns the exit code. Every failure is
// one line on stderr naming the problem.
func run(args []string, stdout, stderr io.Writer) int {
	cmd := ""
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	var err error
	if cmd == "" {
		err = runDaemon(args, stdout, stderr)
	} else if c, ok := findCommand(cmd); ok {
		err = c.run(args, stdout, stderr)
	} else {
		err = fmt.Errorf("unknown command %q (want one of %s, or no command to run the daemon; see drive-node --help)", cmd, commandNames())
	}
	if err != nil && !errors.Is(err, pflag.ErrHelp) && !errors.Is(err, errNoneIgnored) {
		fmt.Fprintf(stderr, "drive-node: %v\n", err)
	}
	return exitCode(err)
}

// exitCode maps the error a command ended with to the process's exit
// code: 2 when the op log failed (its disk cannot be written), so that a
// supervisor restarts the daemon as it did when pebble's fatal error ended
// the process; 1 for any other error; 0 for none or a request for help.
func exitCode(err error) int {
	switch {
	case err == nil, errors.Is(err, pflag.ErrHelp):
		return 0
	case errors.Is(err, oplog.ErrFailed):
		return 2
	}
	return 1
}

func printVersion(w io.Writer) {
	rev := commit
	if bi, ok := debug.ReadBuildInfo(); ok && rev == "" {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				rev = s.Value
			}
		}
	}
	if rev == "" {
		rev = "unknown"
	}
	fmt.Fprintf(w, "drive-node %s (commit %s, %s, %s/%s)\n", version, rev, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// locationFlags are the --folder/--state pair every command takes.
type locationFlags struct{ folder, state string }

func (l *locationFlags) add(fs *pflag.FlagSet) {
	fs.StringVar(&l.folder, "folder", "", "the synced folder")
	fs.StringVar(&l.state, "state", "", "state directory (default FOLDER/.drive-node)")
}

// folderPath is the folder given, made absolute, or "" if none was.
func (l *locationFlags) folderPath() string {
	if l.folder == "" {
		return ""
	}
	abs, err := filepath.Abs(l.folder)
	if err != nil {
		return l.folder
	}
	return abs
}

// syncedFolder is the folder given, or else the one the state in stateDir
// says it syncs.
func (l *locationFlags) syncedFolder(ctx context.Context, stateDir string) (string, error) {
	if folder := l.folderPath(); folder != "" {
		return folder, nil
	}
	st, err := node.ReadStatus(ctx, stateDir)
	if err != nil {
		return "", err
	}
	if st.Folder == "" {
		return "", errors.New("give --folder DIR: the state dir does not say which folder it syncs")
	}
	return st.Folder, nil
}

// stateDir resolves where the state lives; the folder must exist when it
// is what locates the state.
func (l *locationFlags) stateDir() (string, error) {
	if l.state != "" {
		return node.DefaultStateDir("", l.state), nil
	}
	if l.folder == "" {
		return "", errors.New("give --folder DIR or --state DIR")
	}
	if err := node.CheckFolder(l.folder); err != nil {
		return "", err
	}
	abs, err := filepath.Abs(l.folder)
	if err != nil {
		return "", fmt.Errorf("folder %s: %w", l.folder, err)
	}
	return node.DefaultStateDir(abs, ""), nil
}

func runDaemon(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("drive-node", stdout)
	var cfg node.Config
	var showVersion bool
	var logLevel, logFormat, cpuProfile, memProfile string
	var maxMemory, minStateFree int64
	var foldAge time.Duration
	var api apiFlags
	api.add(fs)
	fs.StringVar(&cfg.Folder, "folder", "", "the folder to keep in sync (required)")
	fs.StringVar(&cfg.StateDir, "state", "", "state directory (default FOLDER/.drive-node)")
	fs.StringVar(&cfg.Listen, "listen", ":22000", "UDP address to listen on")
	fs.StringVar(&cfg.Name, "name", "", "name shown to peers (default host name)")
	fs.StringArrayVar(&cfg.Peers, "peer", nil, "static peer address HOST:PORT (repeatable)")
	fs.BoolVar(&cfg.NoDiscovery, "no-discovery", false, "do not announce or look for peers with mDNS")
	fs.DurationVar(&cfg.RescanInterval, "rescan", node.DefaultRescanInterval, "rescan period while every directory is watched, at most 10m while one is not (every sixth rescan is a full one)")
	fs.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&logFormat, "log-format", "text", "text or json")
	fs.Int64Var(&maxMemory, "max-memory", 32, "soft memory limit in MiB (the Go heap is collected harder near it; 0 for none)")
	fs.Int64Var(&minStateFree, "min-state-free", node.DefaultMinStateFree>>20, "MiB kept free on the state dir's disk; below it the node pauses (0 for no reserve)")
	fs.StringVar(&cfg.Versions, "versions", "", "keep replaced files: on (1h:all,1d:1h,30d:1d,1y:1w), off, or a schedule of AGE:EVERY pairs")
	fs.Float64Var(&cfg.VersionsMaxShare, "versions-max-share", node.DefaultVersionsMaxShare, "largest share of the folder's disk the version store takes (oldest versions go first)")
	fs.StringVar(&cfg.Brake, "brake", "", "hold a peer's mass deletes or overwrites: on (1000,30%,5m), off, or FILES,PERCENT%,WINDOW")
	fs.IntVar(&cfg.FoldAfter, "fold-after", node.DefaultFoldAfter, "fold superseded ops out of the op log once it has taken this many ops (and half the folder's file count) since the last fold; -1 never")
	fs.DurationVar(&foldAge, "fold-age", node.DefaultFoldAge, "keep an op at least this long after a later one superseded it, so that restore --at replays every change of that time (0: fold at once)")
	fs.StringVar((*string)(&cfg.Role), "role", "", "send-receive, receive-only (apply peers' changes, send none) or send-only (send changes, apply none); default: the role it last ran with, else send-receive")
	fs.BoolVar(&showVersion, "version", false, "print the version and exit")
	fs.StringVar(&cpuProfile, "cpu-profile", "", "write a CPU profile (pprof) to this file until the daemon stops")
	fs.StringVar(&memProfile, "mem-profile", "", "write a heap profile (pprof: allocations since start, memory in use) to this file when the daemon stops")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if showVersion {
		printVersion(stdout)
		return nil
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if err := api.check(); err != nil {
		return err
	}
	logger, err := newLogger(stderr, logLevel, logFormat)
	if err != nil {
		return err
	}
	cfg.Logger = logger
	// MiB figures are shifted into bytes: past maxMiB they would overflow.
	const maxMiB = 1 << 40
	switch {
	case cfg.RescanInterval <= 0:
		return fmt.Errorf("--rescan %v: must be a positive duration, such as 1h", cfg.RescanInterval)
	case maxMemory < 0 || maxMemory > maxMiB:
		return fmt.Errorf("--max-memory %d: must be between 0 (no limit) and %d MiB", maxMemory, int64(maxMiB))
	case minStateFree < 0 || minStateFree > maxMiB:
		return fmt.Errorf("--min-state-free %d: must be between 0 (no reserve) and %d MiB", minStateFree, int64(maxMiB))
	}
	switch {
	case minStateFree == 0:
		cfg.MinStateFree = -1
	default:
		cfg.MinStateFree = minStateFree << 20
	}
	switch {
	case foldAge < 0:
		return fmt.Errorf("--fold-age %s: must be 0 (fold at once) or more", foldAge)
	case foldAge == 0:
		cfg.FoldAge = -1
	default:
		cfg.FoldAge = foldAge
	}
	if maxMemory > 0 && os.Getenv("GOMEMLIMIT") == "" {
		// A small board shares its memory with other services; the
		// daemon's transfers stream, so a modest heap suffices.
		debug.SetMemoryLimit(maxMemory << 20)
	}
	// For the same reason the memory a burst of changes used goes back to
	// the OS as soon as the node is idle, not over minutes.
	cfg.AfterBurst = debug.FreeOSMemory

	if cpuProfile != "" {
		f, err := os.Create(cpuProfile)
		if err != nil {
			return fmt.Errorf("--cpu-profile: %w", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return fmt.Errorf("--cpu-profile %s: %w", cpuProfile, err)
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}

	if memProfile != "" {
		defer func() {
			f, err := os.Create(memProfile)
			if err != nil {
				logger.Error("heap profile", "err", err)
				return
			}
			defer f.Close()
			if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
				logger.Error("heap profile", "path", memProfile, "err", err)
			}
		}()
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	n, err := node.Open(ctx, cfg)
	if err != nil {
		return err
	}
	logger.Info("drive-node started", "version", version)
	cctx, stopControl := context.WithCancel(ctx)
	controlDone := make(chan struct{})
	go func() {
		defer close(controlDone)
		if err := control.Serve(cctx, n, n.StateDir(), logger); err != nil {
			logger.Warn("the control socket is not served: history, restore, approve and reject wait for the daemon to stop", "err", err)
		}
	}()
	waitAPI := api.serve(cctx, n, logger)
	runErr := n.Run(ctx)
	stopControl()
	<-controlDone
	waitAPI()
	closeErr := n.Close()
	if runErr != nil {
		return runErr
	}
	if closeErr != nil {
		return closeErr
	}
	logger.Info("drive-node stopped")
	return nil
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", format)
}

func runID(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("id", stdout)
	var loc locationFlags
	loc.add(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("id: unexpected argument %q", fs.Arg(0))
	}
	dir, err := loc.stateDir()
	if err != nil {
		return err
	}
	id, err := node.Identity(loc.folderPath(), dir)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Device ID of this drive-node (state %s):\n%s\n", dir, id.ID)
	return nil
}

func runPair(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("pair", stdout)
	var loc locationFlags
	var name string
	loc.add(fs)
	fs.StringVar(&name, "name", "", "a name for the device, shown in status")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("pair takes exactly one device ID (see `drive-node id` on the other device)")
	}
	dir, err := loc.stateDir()
	if err != nil {
		return err
	}
	id, err := resolveDeviceID(context.Background(), dir, fs.Arg(0), false)
	if err != nil {
		return err
	}
	if err := node.Pair(context.Background(), loc.folderPath(), dir, id, name); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Paired with %s. Pair this device on the other side too.\n", id)
	return nil
}

func runStatus(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("status", stdout)
	var loc locationFlags
	var asJSON, watch bool
	loc.add(fs)
	fs.BoolVar(&asJSON, "json", false, "print JSON")
	fs.BoolVar(&watch, "watch", false, "redraw every second until interrupted")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("status: unexpected argument %q", fs.Arg(0))
	}
	dir, err := loc.stateDir()
	if err != nil {
		return err
	}
	if watch {
		ctx, stop := interrupted()
		defer stop()
		return watchStatus(ctx, clock.Real{}, time.Second, dir, asJSON, stdout)
	}
	st, err := readStatus(context.Background(), dir)
	if err != nil {
		return err
	}
	addDifferences(context.Background(), dir, &st)
	if asJSON {
		b, err := json.MarshalIndent(st, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(stdout, "%s\n", escapeC1(b))
		return err
	}
	printStatus(stdout, st)
	return nil
}

// printStatus prints st for a person. Names and messages come partly from
// peers (device names, paths, errors naming paths): each goes through
// shown, so that no escape sequence a peer chose reaches the terminal.
func printStatus(w io.Writer, st node.Status) {
	run := "not running"
	if st.Running {
		run = fmt.Sprintf("running (pid %d)", st.PID)
		if st.DiskFull != "" {
			run += ", " + shown(st.DiskFull)
		}
		if st.Paused != "" {
			run += ", PAUSED: " + shown(st.Paused)
		} else if !st.Ready {
			run += ", start-up scan in progress"
			if st.Live != nil {
				run += fmt.Sprintf(" (%d files looked at)", st.Live.ScannedFiles)
			}
		}
	}
	fmt.Fprintf(w, "device:      %s\nfolder:      %s\nstate:       %s\ndaemon:      %s\n", shown(st.Device), shown(st.Folder), shown(st.StateDir), run)
	if st.FileSystem != nil {
		fmt.Fprintf(w, "file system: %s\n", shown(st.FileSystem.Summary))
	}
	fmt.Fprintf(w, "tracked:     %d files, %d directories, %s\nops in log:  %d\n", st.Files, st.Dirs, humanBytes(st.Bytes), st.Ops)
	if st.LastChange != nil {
		fmt.Fprintf(w, "last change: %s\n", st.LastChange.Local().Format(time.DateTime))
	}
	fmt.Fprintf(w, "peers:       %d\n", len(st.Peers))
	for _, p := range st.Peers {
		conn := "disconnected"
		if p.Connected {
			conn = "connected " + shown(p.Address)
		}
		seen := "never"
		if p.LastSeen != nil {
			seen = p.LastSeen.Local().Format(time.DateTime)
		}
		fmt.Fprintf(w, "  %s %s: %s, last seen %s, lacks %d of our ops", shown(p.ID), shown(p.Name), conn, seen, p.Behind)
		if p.Error != "" {
			fmt.Fprintf(w, ", %s", shown(p.Error))
		}
		fmt.Fprintln(w)
		printPeerProgress(w, p)
	}
	if st.PendingOps == 0 {
		fmt.Fprintf(w, "to apply:    nothing\n")
	} else {
		fmt.Fprintf(w, "to apply:    %d ops\n", st.PendingOps)
		for _, p := range st.Pending {
			fmt.Fprintf(w, "  %d from %s %s: %s\n", p.Ops, shown(p.Origin), shown(p.Name), shown(p.Reason))
		}
	}
	if len(st.Unplaced) > 0 {
		fmt.Fprintf(w, "not placed:  %d received changes this device cannot carry out (skipped here only)\n", len(st.Unplaced))
		for _, u := range st.Unplaced {
			switch u.Kind {
			case "case-conflict":
				fmt.Fprintf(w, "  %q from %s: case conflict with %q, which this folder cannot hold apart from it (rename one of them on any device)\n", u.Path, u.Origin, u.Other)
			default:
				fmt.Fprintf(w, "  %q from %s: %s\n", u.Path, u.Origin, u.Reason)
			}
		}
	}
	if len(st.Conflicts) > 0 {
		fmt.Fprintf(w, "conflicts:   %d\n", len(st.Conflicts))
		for _, c := range st.Conflicts {
			fmt.Fprintf(w, "  %s (copy of %s)\n", shown(c.Copy), shown(c.Original))
		}
	}
	printHistoryStatus(w, st)
	printRoleStatus(w, st)
	printDigestStatus(w, st)
}

// printRoleStatus prints the role and what it keeps apart, and what the
// ignore rules set aside.
func printRoleStatus(w io.Writer, st node.Status) {
	if st.Role != "" {
		fmt.Fprintf(w, "role:        %s\n", shown(st.Role))
	}
	if st.LocalChangeCount > 0 {
		fmt.Fprintf(w, "local:       %d changes kept on this device, not sent (`drive-node revert` puts the mesh's version back)\n", st.LocalChangeCount)
		for _, c := range st.LocalChanges {
			fmt.Fprintf(w, "  %s %s\n", shown(c.Kind), shown(c.Path))
		}
	}
	if st.DifferingCount > 0 {
		fmt.Fprintf(w, "differing:   %d paths peers changed, not applied here (`drive-node override` sends this device's version)\n", st.DifferingCount)
		for _, d := range st.Differing {
			fmt.Fprintf(w, "  %s: %d changes by %s\n", shown(d.Path), d.Changes, shown(strings.Join(d.By, ", ")))
		}
	}
	if st.Ignored > 0 {
		fmt.Fprintf(w, "ignored:     %d received changes to paths ignored here, kept in the log\n", st.Ignored)
	}
}

// printHistoryStatus prints the version store, the brake and the recent
// restores.
func printHistoryStatus(w io.Writer, st node.Status) {
	switch v := st.Versions; v.Keep {
	case "":
	case "off":
		fmt.Fprintf(w, "versions:    off (%d kept from before)\n", v.Versions)
	default:
		fmt.Fprintf(w, "versions:    %d of %d files, %s (keeping %s)\n", v.Versions, v.Contents, humanBytes(v.Bytes), v.Keep)
	}
	for _, h := range st.Held {
		who := h.Name
		if who == "" {
			who = h.Origin
		}
		fmt.Fprintf(w, "HELD:        changes from %s that delete or overwrite %d of %d files, since %s: `drive-node approve` applies them, `drive-node reject` sends this device's files back\n",
			shown(who), h.Files, h.Of, h.Since.Local().Format(time.DateTime))
	}
	for i, r := range st.Restores {
		if i == 3 {
			break
		}
		fmt.Fprintf(w, "restored:    %s to %s at %s: %d restored, %d removed, %d unchanged, %d not available\n",
			shown(strings.Join(r.Paths, " ")), shown(r.To), r.At.Local().Format(time.DateTime), r.Restored, r.Removed, r.Unchanged, r.Unavailable)
	}
}

// shown is s as printed for a person: s itself when every character of it
// prints as itself, else s quoted with Go's escapes (strconv.Quote), so that
// control characters, escape sequences, invalid UTF-8 and invisible or
// reordering characters show as what they are instead of acting on the
// terminal.
func shown(s string) string {
	for _, r := range s {
		if r == utf8.RuneError || !strconv.IsPrint(r) {
			return strconv.Quote(s)
		}
	}
	return s
}

// escapeC1 writes DEL and the C1 control characters of encoded JSON as
// \u escapes: the encoder escapes only those below U+0020, and some
// terminals act on U+009B as on ESC [. They can only stand inside
// strings, where the escape means the same character.
func escapeC1(b []byte) string {
	var out strings.Builder
	for _, r := range string(b) {
		if r >= 0x7f && r <= 0x9f {
			fmt.Fprintf(&out, `\u%04x`, r)
		} else {
			out.WriteRune(r)
		}
	}
	return out.String()
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
