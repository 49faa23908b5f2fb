package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drive-node/drive-node/certs"
	"github.com/drive-node/drive-node/state"
)

// A device that tried to connect is paired by the start of its ID that
// `peers` shows; an ambiguous or unknown start is refused; unpair takes a
// start too, and peers lists what changed.
func TestPairByPrefixPeersUnpair(t *testing.T) {
	dir := t.TempDir()
	if code, _, stderr := runCLI("id", "--folder", dir); code != 0 {
		t.Fatalf("id: %s", stderr)
	}
	db, err := state.Open(context.Background(), filepath.Join(dir, ".drive-node", "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	knock := certs.DeviceIDFromDER([]byte("a device at the door"))
	other := certs.DeviceIDFromDER([]byte("another one"))
	for _, id := range []certs.DeviceID{knock, other} {
		if err := db.NoteUnpaired(context.Background(), id, "10.0.0.7:22000", time.Now().UnixNano()); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	if code, out, _ := runCLI("peers", "--folder", dir); code != 0 || !strings.Contains(out, knock.String()) || !strings.Contains(out, "10.0.0.7:22000") {
		t.Fatalf("peers before pairing:\n%s", out)
	}
	if code, _, stderr := runCLI("pair", "--folder", dir, "ZZZZ"); code == 0 || !strings.Contains(stderr, "nor the start of one") {
		t.Fatalf("pair with an unknown start: %d %q", code, stderr)
	}
	prefix := strings.ToLower(knock.String()[:9])
	if code, _, stderr := runCLI("pair", "--folder", dir, "--name", "laptop", prefix); code != 0 {
		t.Fatalf("pair %s: %s", prefix, stderr)
	}
	code, out, _ := runCLI("peers", "--folder", dir, "--json")
	if code != 0 || !strings.Contains(out, `"name": "laptop"`) || strings.Count(out, knock.String()) != 1 {
		t.Fatalf("peers after pairing:\n%s", out)
	}
	if code, _, stderr := runCLI("unpair", "--folder", dir, knock.String()[:5]); code != 0 {
		t.Fatalf("unpair: %s", stderr)
	}
	if code, _, stderr := runCLI("unpair", "--folder", dir, knock.String()); code == 0 || !strings.Contains(stderr, "not paired") {
		t.Fatalf("unpairing twice: %d %q", code, stderr)
	}
	for code, want := range map[string]string{"7-not-a-code": `"not" is not a word of pairing codes`, "7-orbit": "want a number and 3 words"} {
		if rc, _, stderr := runCLI("join", "--folder", dir, code); rc == 0 || !strings.Contains(stderr, want) {
			t.Fatalf("join %s: %d %q", code, rc, stderr)
		}
	}
}
