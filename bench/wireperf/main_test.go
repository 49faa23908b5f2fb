package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
)

// TestServeThenFetch runs both commands in one process over loopback: the
// fetch must receive every byte, verified against the printed hash.
func TestServeThenFetch(t *testing.T) {
	const size = 3<<20 + 5
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	pc.Close()

	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	served := make(chan error, 1)
	go func() {
		served <- run(ctx, []string{"serve", "--state", t.TempDir(), "--listen", addr, "--size", fmt.Sprint(size)}, pw)
		pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatalf("serve printed no hash: %v (%v)", err, <-served)
	}
	go io.Copy(io.Discard, pr)
	hash, ok := strings.CutPrefix(strings.TrimSpace(line), "hash ")
	if !ok {
		t.Fatalf("serve printed %q", line)
	}

	var out strings.Builder
	if err := run(ctx, []string{"fetch", "--state", t.TempDir(), "--listen", "127.0.0.1:0", "--from", addr, "--hash", hash, "--verify"}, &out); err != nil {
		t.Fatal(err)
	}
	var n int64
	var secs float64
	if _, err := fmt.Sscanf(out.String(), "%d %f", &n, &secs); err != nil || n != size || secs <= 0 {
		t.Fatalf("fetch printed %q, want %d bytes and a positive time", out.String(), size)
	}

	// A content the server does not have is an error, not a zero-byte success.
	other := strings.Repeat("0", len(hash))
	if err := run(ctx, []string{"fetch", "--state", t.TempDir(), "--listen", "127.0.0.1:0", "--from", addr, "--hash", other}, io.Discard); err == nil {
		t.Fatal("fetch of a content the server lacks succeeded")
	}
	cancel()
	if err := <-served; err != nil {
		t.Fatalf("serve: %v", err)
	}
}
