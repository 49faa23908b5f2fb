// Command received embeds the drive-node engine in a program of its own:
// it keeps a folder in sync as the daemon does and prints a line for each
// file a peer's change brought and each conflict copy made.
//
//	received --folder DIR [--listen ADDR] [--peer HOST:PORT]... [--no-discovery]
//
// The device is paired as the daemon's is (`drive-node pair --folder DIR
// ID`, or invite and join), since the state directory is the same.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/drive-node/drive-node/node"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "received: %v\n", err)
		os.Exit(1)
	}
}

// peerList is a repeatable --peer flag.
type peerList []string

func (p *peerList) String() string     { return strings.Join(*p, ",") }
func (p *peerList) Set(s string) error { *p = append(*p, s); return nil }

func run() error {
	var cfg node.Config
	var peers peerList
	flag.StringVar(&cfg.Folder, "folder", "", "the folder to keep in sync")
	flag.StringVar(&cfg.Listen, "listen", ":22000", "UDP address to listen on")
	flag.Var(&peers, "peer", "a peer's address HOST:PORT (repeatable)")
	flag.BoolVar(&cfg.NoDiscovery, "no-discovery", false, "do not look for peers with mDNS")
	flag.Parse()
	cfg.Peers = peers
	// The engine's own log goes to stderr at warn; stdout is this
	// program's lines.
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	n, err := node.Open(ctx, cfg)
	if err != nil {
		return err
	}
	defer n.Close()

	// Subscribe before Run, from the newest event: nothing this run does
	// is missed.
	sub := n.Events().Subscribe(n.Events().Last())
	go func() {
		for {
			ev, err := sub.Next(ctx)
			if err != nil {
				return
			}
			switch ev.Type {
			case node.EventApplied:
				fmt.Printf("received %s (%s) from %s\n", ev.Path, ev.Kind, ev.Device)
			case node.EventConflict:
				fmt.Printf("conflict %s: the other version is %s\n", ev.Path, ev.Copy)
			case node.EventGap:
				fmt.Printf("missed events %d to %d\n", ev.From, ev.To)
			}
		}
	}()
	fmt.Printf("device %s keeps %s in sync\n", n.ID(), cfg.Folder)
	if err := n.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}
