package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/drive-node/drive-node/certs"
	"github.com/drive-node/drive-node/node"
	"github.com/drive-node/drive-node/node/control"
	"github.com/drive-node/drive-node/pairing"
	"github.com/spf13/pflag"
)

// Pairing in one step: `invite` prints a code and waits, `join CODE` on
// the other device pairs both (docs/pairing.md). Both go through the
// running daemon when there is one, so that it announces the invite on
// its own port and connects to the new peer at once; otherwise they open
// the device themselves for as long as the exchange takes.

// pairingFlags are what invite and join take besides the location.
type pairingFlags struct {
	loc         locationFlags
	name        string
	listen      string
	noDiscovery bool
	logLevel    string
}

func (f *pairingFlags) add(fs *pflag.FlagSet) {
	f.loc.add(fs)
	fs.StringVar(&f.name, "name", "", "this device's name shown to the other device when the daemon is not running (default the host name)")
	fs.StringVar(&f.listen, "listen", ":0", "UDP address an invite is answered on when the daemon is not running")
	fs.BoolVar(&f.noDiscovery, "no-discovery", false, "do not use mDNS when the daemon is not running")
	fs.StringVar(&f.logLevel, "log-level", "warn", "debug, info, warn or error")
}

// reach resolves the state dir and finds the running daemon (c is nil if
// none runs); ctx ends at SIGINT or SIGTERM, or when stop is called.
func (f *pairingFlags) reach() (dir string, ctx context.Context, c *control.Client, stop context.CancelFunc, err error) {
	if dir, err = f.loc.stateDir(); err != nil {
		return "", nil, nil, nil, err
	}
	ctx, stop = signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	if c, err = runningDaemon(ctx, dir); err != nil {
		stop()
		return "", nil, nil, nil, err
	}
	return dir, ctx, c, stop, nil
}

// openPairing opens the device for pairing without its daemon.
func (f *pairingFlags) openPairing(ctx context.Context, stateDir string, stderr io.Writer) (*node.PairingHost, error) {
	logger, err := newLogger(stderr, f.logLevel, "text")
	if err != nil {
		return nil, err
	}
	return node.OpenPairing(ctx, node.PairingConfig{Folder: f.loc.folderPath(), StateDir: stateDir, Name: f.name,
		Listen: f.listen, NoDiscovery: f.noDiscovery, Logger: logger})
}

func printPaired(w io.Writer, r pairing.Result) {
	name := shown(r.Name)
	if name == "" {
		name = "a device with no name"
	}
	fmt.Fprintf(w, "Paired with %s (%s).\n", name, r.ID)
}

func showCode(w io.Writer, st control.InviteStatus) {
	fmt.Fprintf(w, "Pairing code: %s\nOn the other device run:\n  drive-node join %s\n", st.Code, st.Code)
	fmt.Fprintf(w, "The code is valid once, until %s. Waiting for the other device...\n", st.Expires.Local().Format("15:04:05"))
}

func runInvite(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("invite", stdout)
	var f pairingFlags
	f.add(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("invite: unexpected argument %q", fs.Arg(0))
	}
	dir, ctx, c, stop, err := f.reach()
	if err != nil {
		return err
	}
	defer stop()
	var res pairing.Result
	if c != nil {
		res, err = c.Invite(ctx, func(st control.InviteStatus) { showCode(stdout, st) })
	} else {
		res, err = inviteHere(ctx, &f, dir, stdout, stderr)
	}
	if err != nil {
		return fmt.Errorf("invite: %w", err)
	}
	printPaired(stdout, res)
	return nil
}

// inviteHere runs an invite without the daemon.
func inviteHere(ctx context.Context, f *pairingFlags, dir string, stdout, stderr io.Writer) (pairing.Result, error) {
	h, err := f.openPairing(ctx, dir, stderr)
	if err != nil {
		return pairing.Result{}, err
	}
	defer h.Close()
	iv, err := h.Invite(ctx)
	if err != nil {
		return pairing.Result{}, err
	}
	showCode(stdout, control.InviteStatus{Code: iv.Code().String(), Expires: iv.Expires()})
	fmt.Fprintf(stdout, "(the daemon is not running: answering on UDP port %d)\n", h.Addr().Port)
	return iv.Wait(ctx)
}

func runJoin(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("join", stdout)
	var f pairingFlags
	var peers []string
	f.add(fs)
	fs.StringArrayVar(&peers, "peer", nil, "the inviting device's address HOST:PORT, instead of finding it over mDNS (repeatable)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return errors.New("join takes the code that `drive-node invite` printed on the other device, as 7-orbit-velvet-canyon")
	}
	code, err := pairing.ParseCode(strings.Join(fs.Args(), "-"))
	if err != nil {
		return err
	}
	dir, ctx, c, stop, err := f.reach()
	if err != nil {
		return err
	}
	defer stop()
	var res pairing.Result
	if c != nil {
		res, err = c.Join(ctx, code.String(), peers)
	} else {
		var h *node.PairingHost
		if h, err = f.openPairing(ctx, dir, stderr); err != nil {
			return err
		}
		defer h.Close()
		res, err = h.Join(ctx, code, peers)
	}
	if err != nil {
		return err
	}
	printPaired(stdout, res)
	return nil
}

func runUnpair(args []string, stdout, _ io.Writer) error {
	fs := newFlagSet("unpair", stdout)
	var loc locationFlags
	loc.add(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("unpair takes exactly one device ID, or a unique start of one (see `drive-node peers`)")
	}
	dir, err := loc.stateDir()
	if err != nil {
		return err
	}
	ctx := context.Background()
	id, err := resolveDeviceID(ctx, dir, fs.Arg(0), true)
	if err != nil {
		return err
	}
	c, err := runningDaemon(ctx, dir)
	switch {
	case err != nil:
		return err
	case c != nil:
		err = c.Unpair(ctx, id)
	default:
		err = node.Unpair(ctx, dir, id)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Unpaired %s: it can no longer connect to this device.\n", id)
	return nil
}

func runPeers(args []string, stdout, _ io.Writer) error {
	fs := newFlagSet("peers", stdout)
	var loc locationFlags
	var asJSON bool
	loc.add(fs)
	fs.BoolVar(&asJSON, "json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("peers: unexpected argument %q", fs.Arg(0))
	}
	dir, err := loc.stateDir()
	if err != nil {
		return err
	}
	l, err := node.ReadPeers(context.Background(), dir)
	if err != nil {
		return err
	}
	if asJSON {
		return printJSON(stdout, l)
	}
	printPeers(stdout, l)
	return nil
}

func printPeers(w io.Writer, l node.PeerList) {
	fmt.Fprintf(w, "Paired devices: %d\n", len(l.Paired))
	for _, p := range l.Paired {
		name := shown(p.Name)
		if name == "" {
			name = "(no name)"
		}
		var where string
		switch {
		case p.Connected:
			where = "connected at " + shown(p.Address)
		case p.LastSeen != nil:
			where = "last seen " + p.LastSeen.Local().Format(time.DateTime)
			if p.LastAddress != "" {
				where += " at " + shown(p.LastAddress)
			}
		default:
			where = "never connected"
		}
		switch {
		case p.IntroducedBy != "":
			where += ", mesh member introduced by " + shortID(p.IntroducedBy)
		case p.PairedBy == "code":
			where += ", mesh member"
		}
		fmt.Fprintf(w, "  %s  %s  %s\n", p.ID, name, where)
	}
	if len(l.Unpaired) == 0 {
		return
	}
	fmt.Fprintf(w, "Devices that tried to connect without being paired (trust one with `drive-node pair ID`):\n")
	for _, d := range l.Unpaired {
		fmt.Fprintf(w, "  %s  from %s  at %s\n", d.ID, shown(d.Address), d.At.Local().Format(time.DateTime))
	}
}

// resolveDeviceID reads a device ID as given, or else as the unique start
// of one that `peers` lists: of a paired device when paired, else of a
// device that tried to connect (or a paired one, to rename it).
func resolveDeviceID(ctx context.Context, stateDir, s string, paired bool) (certs.DeviceID, error) {
	id, perr := certs.ParseDeviceID(s)
	if perr == nil {
		return id, nil
	}
	norm := func(s string) string { return strings.ToUpper(strings.ReplaceAll(s, "-", "")) }
	prefix := norm(s)
	if len(prefix) < 4 || len(prefix) >= len(norm(certs.DeviceID{}.String())) {
		return id, perr
	}
	l, err := node.ReadPeers(ctx, stateDir)
	if err != nil {
		return id, fmt.Errorf("%w (and the known devices cannot be read to match it as a start of one: %v)", perr, err)
	}
	var ids []string
	for _, p := range l.Paired {
		ids = append(ids, p.ID)
	}
	if !paired {
		for _, d := range l.Unpaired {
			ids = append(ids, d.ID)
		}
	}
	var match []string
	for _, cand := range ids {
		if strings.HasPrefix(norm(cand), prefix) {
			match = append(match, cand)
		}
	}
	switch len(match) {
	case 0:
		return id, fmt.Errorf("%q is not a device ID, nor the start of one `drive-node peers` lists", s)
	case 1:
		return certs.ParseDeviceID(match[0])
	}
	return id, fmt.Errorf("%q starts %d device IDs (%s): give more of it", s, len(match), strings.Join(match, ", "))
}

// shortID is the first group of a device ID as peers prints it.
func shortID(id string) string {
	if i := strings.IndexByte(id, '-'); i > 0 {
		return id[:i]
	}
	return id
}
