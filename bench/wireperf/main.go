// Command wireperf measures drive-node's transport alone: one content moved
// from memory on one host to memory on another over package quicnet, with
// no folder, op log or state. The LAN benchmark runs it beside iperf3, so
// its table shows how much of the link QUIC itself can carry and so what
// bounds the big-file figure.
//
//	wireperf serve --state DIR --listen ADDR [--size BYTES]
//	    prints "hash H" once the content is ready, then serves it until killed
//	wireperf fetch --state DIR --from ADDR --hash H [--verify]
//	    fetches it once and prints "BYTES SECONDS"
//
// Both sides accept every device that connects: it is a tool for a lab
// network, not for a folder anyone relies on.
package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/drive-node/drive-node/certs"
	"github.com/drive-node/drive-node/content"
	"github.com/drive-node/drive-node/quicnet"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "wireperf:", err)
		os.Exit(1)
	}
}

// run runs one command until it is done or, for serve, until ctx ends,
// printing its results to out.
func run(ctx context.Context, args []string, out io.Writer) error {
	if len(args) == 0 {
		return errors.New("usage: wireperf serve|fetch [flags]")
	}
	fl := pflag.NewFlagSet(args[0], pflag.ContinueOnError)
	state := fl.String("state", "", "directory for this device's identity")
	listen := fl.String("listen", ":0", "UDP address to listen on")
	size := fl.Int64("size", 512<<20, "bytes of random content to serve")
	from := fl.String("from", "", "address of the serving host (fetch)")
	hash := fl.String("hash", "", "content to fetch, as printed by serve")
	verify := fl.Bool("verify", false, "hash the content while receiving it, as a node does")
	if err := fl.Parse(args[1:]); err != nil {
		return err
	}
	if *state == "" {
		return errors.New("--state is required")
	}
	id, err := certs.LoadOrCreate(*state)
	if err != nil {
		return err
	}
	switch args[0] {
	case "serve":
		return serve(ctx, out, id, *listen, *size)
	case "fetch":
		return fetch(ctx, out, id, *listen, *from, *hash, *verify)
	default:
		return fmt.Errorf("unknown command %q (serve or fetch)", args[0])
	}
}

// memory serves one content from memory.
type memory struct {
	hash content.Hash
	data []byte
}

func (m memory) OpenContent(_ context.Context, h content.Hash) (io.ReadSeekCloser, int64, error) {
	if h != m.hash {
		return nil, 0, fmt.Errorf("content %s: %w", h, fs.ErrNotExist)
	}
	return nopCloser{bytes.NewReader(m.data)}, int64(len(m.data)), nil
}

// OpenChunkList serves no chunk lists: the content is fetched whole.
func (m memory) OpenChunkList(_ context.Context, h content.Hash) (io.ReadCloser, int64, error) {
	if h != m.hash {
		return nil, 0, fmt.Errorf("content %s: %w", h, fs.ErrNotExist)
	}
	return nil, 0, nil
}

type nopCloser struct{ *bytes.Reader }

func (nopCloser) Close() error { return nil }

func serve(ctx context.Context, out io.Writer, id *certs.Identity, listen string, size int64) error {
	data := make([]byte, size)
	rng := rand.NewChaCha8([32]byte{1})
	rng.Read(data)
	m := memory{hash: hashOf(data), data: data}
	tr, err := quicnet.Listen(ctx, quicnet.Config{
		Identity: id, Listen: listen, Content: m,
		Paired: func(certs.DeviceID) bool { return true },
		OnPeer: func(ctx context.Context, _ *quicnet.Peer) { <-ctx.Done() },
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		return err
	}
	defer tr.Close()
	fmt.Fprintf(out, "hash %s\n", m.hash)
	<-ctx.Done()
	return nil
}

func hashOf(data []byte) content.Hash {
	h := content.NewHasher()
	h.Write(data)
	return h.Sum()
}

func fetch(ctx context.Context, out io.Writer, id *certs.Identity, listen, from, hash string, verify bool) error {
	addr, err := netip.ParseAddrPort(from)
	if err != nil {
		return fmt.Errorf("--from: %w", err)
	}
	h, err := content.ParseHash(hash)
	if err != nil {
		return fmt.Errorf("--hash: %w", err)
	}
	peers := make(chan *quicnet.Peer, 1)
	tr, err := quicnet.Listen(ctx, quicnet.Config{
		Identity: id, Listen: listen,
		Paired: func(certs.DeviceID) bool { return true },
		OnPeer: func(ctx context.Context, p *quicnet.Peer) { peers <- p; <-ctx.Done() },
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		return err
	}
	defer tr.Close()
	if _, err := tr.Dial(ctx, addr, certs.DeviceID{}); err != nil {
		return err
	}
	var p *quicnet.Peer
	select {
	case p = <-peers:
	case <-ctx.Done():
		return ctx.Err()
	}
	var dst io.Writer = io.Discard
	var hasher *content.Hasher
	if verify {
		hasher = content.NewHasher()
		dst = hasher
	}
	start := time.Now()
	n, err := p.Fetch(ctx, h, 0, dst)
	took := time.Since(start)
	if err != nil {
		return fmt.Errorf("fetch from %s: %w", from, err)
	}
	if hasher != nil && hasher.Sum() != h {
		return fmt.Errorf("fetch from %s: content differs from %s", from, h)
	}
	fmt.Fprintf(out, "%d %.6f\n", n, took.Seconds())
	return nil
}
