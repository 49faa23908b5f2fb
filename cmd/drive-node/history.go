package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/drive-node/drive-node/node"
	"github.com/drive-node/drive-node/node/control"
)

// The commands that need the op log (history, restore, approve, reject)
// ask the running daemon through its control socket; when none runs they
// open the node themselves, and for history and restore also connect to
// the peers for a while, to find and fetch contents and to send what the
// restore recorded.

// nodeFlags are what a command that may open the node itself takes
// besides the location: how to reach peers, and for how long to wait.
type nodeFlags struct {
	loc         locationFlags
	listen      string
	peers       []string
	noDiscovery bool
	wait        time.Duration
}

func (f *nodeFlags) add(fs *pflag.FlagSet, network bool) {
	f.loc.add(fs)
	if network {
		fs.StringVar(&f.listen, "listen", ":22000", "UDP address to listen on when the daemon is not running")
		fs.StringArrayVar(&f.peers, "peer", nil, "static peer address HOST:PORT when the daemon is not running (repeatable)")
		fs.BoolVar(&f.noDiscovery, "no-discovery", false, "do not look for peers with mDNS when the daemon is not running")
		fs.DurationVar(&f.wait, "wait", 15*time.Second, "when the daemon is not running: how long to wait for peers, before and after")
	}
}

// onNode runs fn against the running daemon, or against the node opened
// here when none runs (network: connecting to peers for f.wait before and
// after fn).
func onNode(f *nodeFlags, stderr io.Writer, network bool, fn func(ctx context.Context, n control.Node) error) error {
	ctx := context.Background()
	stateDir, err := f.loc.stateDir()
	if err != nil {
		return err
	}
	if c, err := runningDaemon(ctx, stateDir); err != nil || c != nil {
		if err != nil {
			return err
		}
		return fn(ctx, c)
	}
	folder, err := f.loc.syncedFolder(ctx, stateDir)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	// The version store, the brake and the role keep the settings the
	// daemon last ran with: pruning by other ones would drop what the
	// daemon keeps, and another role would record what it keeps apart.
	cfg := node.Config{Folder: folder, StateDir: stateDir, Listen: f.listen, Peers: f.peers, NoDiscovery: f.noDiscovery, Logger: logger}
	if st, err := node.ReadStatus(ctx, stateDir); err == nil {
		cfg.Versions, cfg.VersionsMaxShare, cfg.Brake, cfg.Role = st.Versions.Keep, st.Versions.MaxShare, st.Brake, node.Role(st.Role)
	}
	n, err := node.Open(ctx, cfg)
	if err != nil {
		return err
	}
	defer n.Close()
	if !network {
		return fn(ctx, n)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- n.Run(rctx) }()
	defer func() { cancel(); <-done }()
	select {
	case <-n.Ready():
	case err := <-done:
		done <- err
		return err
	}
	waitPeers(ctx, stateDir, f.wait, func(p node.PeerStatus) bool { return p.Connected })
	err = fn(ctx, n)
	// What was recorded (all of a restore, or part of one that failed
	// somewhere) goes to the peers before the node stops.
	waitPeers(ctx, stateDir, f.wait, func(p node.PeerStatus) bool { return p.Connected && p.Behind == 0 })
	return err
}

// waitPeers waits, at most for wait, until every paired peer is as ok says.
func waitPeers(ctx context.Context, stateDir string, wait time.Duration, ok func(node.PeerStatus) bool) {
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		st, err := node.ReadStatus(ctx, stateDir)
		if err != nil {
			return
		}
		all := true
		for _, p := range st.Peers {
			all = all && ok(p)
		}
		if all {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func runHistory(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("history", stdout)
	var f nodeFlags
	var asJSON bool
	f.add(fs, true)
	fs.BoolVar(&asJSON, "json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("history takes one path, relative to the folder")
	}
	p, err := folderRelative(f.loc.folderPath(), fs.Arg(0))
	if err != nil {
		return err
	}
	return onNode(&f, stderr, true, func(ctx context.Context, n control.Node) error {
		hist, err := n.History(ctx, p)
		if err != nil {
			return err
		}
		if asJSON {
			return printJSON(stdout, hist)
		}
		if len(hist) == 0 {
			fmt.Fprintf(stdout, "%s: no version in the op log\n", shown(p))
			return nil
		}
		for _, e := range hist {
			at := "(time unknown)"
			if !e.At.IsZero() {
				at = e.At.Local().Format(time.DateTime)
			}
			who := e.DeviceName
			if who == "" {
				who = e.Device[:7]
			}
			change := e.Change
			if e.Other != "" {
				change += " " + shown(e.Other)
			}
			fmt.Fprintf(stdout, "%s  %-14s %-28s", at, shown(who), change)
			if e.Hash != "" {
				where := "nowhere reachable now"
				if len(e.Where) > 0 {
					where = strings.Join(e.Where, ", ")
				}
				fmt.Fprintf(stdout, " %10s  %s  at: %s", humanBytes(e.Size), e.Hash[:12], shown(where))
			}
			fmt.Fprintln(stdout)
		}
		return nil
	})
}

func runRestore(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("restore", stdout)
	var f nodeFlags
	var at, version string
	var asJSON bool
	f.add(fs, true)
	fs.StringVar(&at, "at", "", "restore to how the folder was at this time: RFC 3339 (2026-12-01T15:04:05Z) or a duration ago (2h, 90m)")
	fs.StringVar(&version, "version", "", "restore a file to this version (a hash prefix from history)")
	fs.BoolVar(&asJSON, "json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return errors.New("restore takes one or more paths, relative to the folder (. for all of it)")
	}
	if (at == "") == (version == "") {
		return errors.New("restore needs one of --at TIME and --version HASH")
	}
	req := node.RestoreRequest{Version: version}
	if at != "" {
		t, err := parseWhen(at, time.Now())
		if err != nil {
			return err
		}
		req.At = t
	}
	for _, a := range fs.Args() {
		p, err := folderRelative(f.loc.folderPath(), a)
		if err != nil {
			return err
		}
		req.Paths = append(req.Paths, p)
	}
	return onNode(&f, stderr, true, func(ctx context.Context, n control.Node) error {
		res, err := n.Restore(ctx, req)
		if err != nil {
			return err
		}
		return printRestored(stdout, "restore", res, asJSON)
	})
}

// printRestored prints what a restore (or a revert, named by what) did,
// and fails if a path could not be restored.
func printRestored(stdout io.Writer, what string, res []node.RestoreResult, asJSON bool) error {
	counts := map[string]int{}
	for _, r := range res {
		counts[r.Outcome]++
	}
	if asJSON {
		if err := printJSON(stdout, res); err != nil {
			return err
		}
	} else {
		for _, r := range res {
			if r.Outcome != node.Unchanged {
				line := fmt.Sprintf("%-11s %s", r.Outcome, shown(r.Path))
				if r.Why != "" {
					line += ": " + shown(r.Why)
				}
				fmt.Fprintln(stdout, line)
			}
		}
		fmt.Fprintf(stdout, "restored %d, removed %d, already as they were %d, not available %d\n",
			counts[node.Restored], counts[node.Removed], counts[node.Unchanged], counts[node.Unavailable])
	}
	if counts[node.Unavailable] > 0 {
		return fmt.Errorf("%s: %d paths could not be restored", what, counts[node.Unavailable])
	}
	return nil
}

func runBrake(approve bool, args []string, stdout, stderr io.Writer) error {
	name := "reject"
	if approve {
		name = "approve"
	}
	fs := newFlagSet(name, stdout)
	var f nodeFlags
	f.add(fs, false)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%s: unexpected argument %q", name, fs.Arg(0))
	}
	return onNode(&f, stderr, false, func(ctx context.Context, n control.Node) error {
		var runs []node.HeldRun
		var answered int
		var err error
		if approve {
			runs, err = n.Approve(ctx)
		} else {
			runs, answered, err = n.Reject(ctx)
		}
		if err != nil {
			return err
		}
		for _, r := range runs {
			who := r.Name
			if who == "" {
				who = r.Origin[:7]
			}
			if approve {
				fmt.Fprintf(stdout, "approved: the changes of %s (%d files) are applied\n", shown(who), r.Files)
			} else {
				fmt.Fprintf(stdout, "rejected: the changes of %s (%d files) are answered with this device's files\n", shown(who), r.Files)
			}
		}
		if !approve {
			fmt.Fprintf(stdout, "%d paths sent back to every device\n", answered)
		}
		return nil
	})
}

// parseWhen reads a time as RFC 3339 or as a duration before now.
func parseWhen(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("--at %q: want RFC 3339 (2026-12-01T15:04:05Z) or a duration ago (2h, 90m)", s)
}

// folderRelative turns a path given on the command line into one relative
// to the folder: an absolute path, or a relative one given from a working
// directory inside the folder, is taken as it names a file; any other
// relative path is relative to the folder already.
func folderRelative(folder, p string) (string, error) {
	if folder == "" {
		if filepath.IsAbs(p) {
			return "", fmt.Errorf("%s: give --folder to use an absolute path", p)
		}
		return filepath.ToSlash(filepath.Clean(p)), nil
	}
	abs := p
	if !filepath.IsAbs(p) {
		wd, err := filepath.Abs(".")
		if err != nil || !inside(folder, wd) {
			return filepath.ToSlash(filepath.Clean(p)), nil
		}
		abs = filepath.Join(wd, p)
	}
	if !inside(folder, abs) {
		return "", fmt.Errorf("%s is not inside the folder %s", p, folder)
	}
	rel, err := filepath.Rel(folder, abs)
	if err != nil {
		return "", err
	}
	return filepath.ToSlash(rel), nil
}

// inside reports whether p is dir or below it.
func inside(dir, p string) bool {
	p = filepath.Clean(p)
	return p == dir || strings.HasPrefix(p, dir+string(filepath.Separator))
}

func printJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", escapeC1(b))
	return err
}
