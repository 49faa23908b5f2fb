package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/drive-node/drive-node/internal/clock"
	"github.com/drive-node/drive-node/internal/lockfile"
	"github.com/drive-node/drive-node/node"
	"github.com/drive-node/drive-node/node/control"
)

// apiFlags are the daemon's flags for the API on TCP and the metrics.
type apiFlags struct {
	api, metrics string
	allowRemote  bool
}

func (f *apiFlags) add(fs interface {
	StringVar(p *string, name, value, usage string)
	BoolVar(p *bool, name string, value bool, usage string)
}) {
	fs.StringVar(&f.api, "api", "", "also serve the control API on this TCP address (127.0.0.1:PORT), to requests with the state dir's api-token")
	fs.StringVar(&f.metrics, "metrics", "", "serve Prometheus metrics at /metrics on this TCP address (127.0.0.1:PORT)")
	fs.BoolVar(&f.allowRemote, "api-allow-remote", false, "let --api and --metrics listen on addresses other machines reach")
}

// check refuses, before the daemon starts, addresses it would refuse.
func (f *apiFlags) check() error {
	for flag, addr := range map[string]string{"--api": f.api, "--metrics": f.metrics} {
		if addr != "" && !f.allowRemote {
			if err := control.CheckLoopback(addr); err != nil {
				return fmt.Errorf("%s: %w (give --api-allow-remote to allow it)", flag, err)
			}
		}
	}
	return nil
}

// serve runs the TCP API and the metrics as asked, until ctx ends; the
// returned function waits for them to stop.
func (f *apiFlags) serve(ctx context.Context, n *node.Node, log *slog.Logger) (wait func()) {
	done := make(chan struct{}, 2)
	started := 0
	run := func(what string, fn func() error) {
		started++
		go func() {
			defer func() { done <- struct{}{} }()
			if err := fn(); err != nil && ctx.Err() == nil {
				log.Error(what+" not served", "err", err)
			}
		}()
	}
	if f.api != "" {
		run("the TCP API", func() error {
			return control.ServeTCP(ctx, n, control.TCPConfig{Addr: f.api, StateDir: n.StateDir(), AllowRemote: f.allowRemote}, log)
		})
	}
	if f.metrics != "" {
		run("metrics", func() error {
			return control.ServeMetrics(ctx, n, f.metrics, f.allowRemote, func(net.Addr) {}, log)
		})
	}
	return func() {
		for range started {
			<-done
		}
	}
}

// readStatus asks the running daemon for its live status, or reads the
// state directory when no daemon answers there.
func readStatus(ctx context.Context, stateDir string) (node.Status, error) {
	if c, err := control.Dial(ctx, stateDir); err == nil {
		st, err := c.Status(ctx)
		if err == nil {
			return st, nil
		}
		// A daemon that stopped meanwhile: the state directory says the rest.
	}
	return node.ReadStatus(ctx, stateDir)
}

// watchStatus redraws the status every interval on clk until ctx ends:
// the screen is cleared first, or, for JSON, one document a line.
func watchStatus(ctx context.Context, clk clock.Clock, every time.Duration, stateDir string, asJSON bool, w io.Writer) error {
	t := clk.NewTicker(every)
	defer t.Stop()
	for {
		st, err := readStatus(ctx, stateDir)
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			return err
		case asJSON:
			b, err := json.Marshal(st)
			if err != nil {
				return err
			}
			fmt.Fprintf(w, "%s\n", escapeC1(b))
		default:
			fmt.Fprint(w, "\x1b[H\x1b[2J")
			printStatus(w, st)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C():
		}
	}
}

// printPeerProgress prints what is left to exchange with a connected peer.
func printPeerProgress(w io.Writer, p node.PeerStatus) {
	if p.PeerProgress == nil {
		return
	}
	pp := p.PeerProgress
	fmt.Fprintf(w, "    to receive %d changes (%s), to send %d (%s)", pp.ToReceiveFiles, humanBytes(int64(pp.ToReceiveBytes)), pp.ToSendFiles, humanBytes(int64(pp.ToSendBytes)))
	if pp.RateBytesPerS > 0 {
		fmt.Fprintf(w, ", %s/s", humanBytes(int64(pp.RateBytesPerS)))
	}
	if pp.ETAS != nil && *pp.ETAS > 0 {
		fmt.Fprintf(w, ", about %s left", (time.Duration(*pp.ETAS) * time.Second).String())
	}
	fmt.Fprintln(w)
}

// interrupted is a context that ends at Ctrl-C or SIGTERM.
func interrupted() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

// runningDaemon returns a client of the daemon of stateDir, or nil if
// none runs there; it fails when the daemon holds the state dir's lock
// but its control socket does not answer.
func runningDaemon(ctx context.Context, stateDir string) (*control.Client, error) {
	if c, err := control.Dial(ctx, stateDir); err == nil {
		return c, nil
	}
	lockPath := filepath.Join(stateDir, "lock")
	if lockfile.Held(lockPath) {
		return nil, fmt.Errorf("the daemon runs (pid %d) but its control socket in %s does not answer", lockfile.HolderPID(lockPath), stateDir)
	}
	return nil, nil
}

// dialDaemon returns a client for the daemon of the state dir the flags
// name; these commands need one running.
func dialDaemon(ctx context.Context, loc *locationFlags) (*control.Client, error) {
	dir, err := loc.stateDir()
	if err != nil {
		return nil, err
	}
	c, err := runningDaemon(ctx, dir)
	if err == nil && c == nil {
		err = fmt.Errorf("no daemon answers for %s (start it first)", dir)
	}
	return c, err
}

// runEvents prints the daemon's events as JSON lines until interrupted.
func runEvents(args []string, stdout, _ io.Writer) error {
	fs := newFlagSet("events", stdout)
	var loc locationFlags
	var since uint64
	loc.add(fs)
	fs.Uint64Var(&since, "since", 0, "start after this event ID (0: every event the daemon still holds); default: only new events")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("events: unexpected argument %q", fs.Arg(0))
	}
	ctx, stop := interrupted()
	defer stop()
	c, err := dialDaemon(ctx, &loc)
	if err != nil {
		return err
	}
	var from *uint64
	if fs.Changed("since") {
		from = &since
	}
	enc := json.NewEncoder(stdout)
	err = c.Follow(ctx, from, func(ev node.Event) error { return enc.Encode(ev) })
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// daemonCommand parses the flags of a command that takes only --folder or
// --state and asks the running daemon: it returns a client and a context
// that ends after 30 s.
func daemonCommand(name string, args []string, help io.Writer) (context.Context, context.CancelFunc, *control.Client, error) {
	fs := newFlagSet(name, help)
	var loc locationFlags
	loc.add(fs)
	if err := fs.Parse(args); err != nil {
		return nil, nil, nil, err
	}
	if fs.NArg() > 0 {
		return nil, nil, nil, fmt.Errorf("%s: unexpected argument %q", name, fs.Arg(0))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	c, err := dialDaemon(ctx, &loc)
	if err != nil {
		cancel()
		return nil, nil, nil, err
	}
	return ctx, cancel, c, nil
}

// runPause pauses (pause true) or resumes the daemon's syncing.
func runPause(pause bool, args []string, stdout io.Writer) error {
	name, do := "resume", (*control.Client).Resume
	said := [2]string{"Not paused on request.", "Resumed."}
	if pause {
		name, do = "pause", (*control.Client).Pause
		said = [2]string{"Already paused.", "Paused: nothing is applied or sent until `drive-node resume` or a restart of the daemon; changes here are still recorded."}
	}
	ctx, cancel, c, err := daemonCommand(name, args, stdout)
	if err != nil {
		return err
	}
	defer cancel()
	changed, err := do(c, ctx)
	if err != nil {
		return err
	}
	if changed {
		fmt.Fprintln(stdout, said[1])
	} else {
		fmt.Fprintln(stdout, said[0])
	}
	return nil
}

// runRescan asks the daemon to look at the whole folder again.
func runRescan(args []string, stdout, _ io.Writer) error {
	ctx, cancel, c, err := daemonCommand("rescan", args, stdout)
	if err != nil {
		return err
	}
	defer cancel()
	if err := c.Rescan(ctx); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "Rescan started; what it finds changed is recorded as usual.")
	return nil
}
