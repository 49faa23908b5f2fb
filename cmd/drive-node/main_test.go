package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/drive-node/drive-node/certs"
	"github.com/drive-node/drive-node/node"
	"github.com/drive-node/drive-node/oplog"
	"github.com/spf13/pflag"
)

func runCLI(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestErrorsAreOneClearLine(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	os.WriteFile(file, nil, 0o644)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--folder", filepath.Join(dir, "missing")}, "does not exist"},
		{[]string{"--folder", file}, "is not a directory"},
		{[]string{}, "no folder given"},
		{[]string{"--folder", dir, "--log-level", "loud"}, "--log-level"},
		{[]string{"pair", "--folder", dir, "AAAAAAA-BBBBBBB"}, "malformed device ID"},
		{[]string{"pair", "--folder", dir}, "exactly one device ID"},
		{[]string{"status", "--folder", filepath.Join(dir, "missing")}, "does not exist"},
		{[]string{"id"}, "--folder DIR or --state DIR"},
		{[]string{"frobnicate"}, "unknown command"},
		{[]string{"status", "--folder", dir, "extra"}, `unexpected argument "extra"`},
		{[]string{"id", "--folder", dir, "extra"}, `unexpected argument "extra"`},
		{[]string{"--folder", dir, "--rescan", "-1m"}, "--rescan -1m0s: must be a positive duration"},
		{[]string{"--folder", dir, "--rescan", "0s"}, "--rescan 0s: must be a positive duration"},
		{[]string{"--folder", dir, "--max-memory", "-5"}, "--max-memory -5"},
		{[]string{"--folder", dir, "--max-memory", "9000000000000000"}, "--max-memory 9000000000000000"},
		{[]string{"--folder", dir, "--min-state-free", "9000000000000000"}, "--min-state-free 9000000000000000"},
	} {
		code, _, stderr := runCLI(tc.args...)
		if code == 0 {
			t.Errorf("%v: exit 0", tc.args)
		}
		if !strings.Contains(stderr, tc.want) || strings.Count(strings.TrimRight(stderr, "\n"), "\n") != 0 {
			t.Errorf("%v: stderr %q, want one line containing %q", tc.args, stderr, tc.want)
		}
	}
}

func TestIDPairStatus(t *testing.T) {
	dir := t.TempDir()
	code, out, stderr := runCLI("id", "--folder", dir)
	if code != 0 {
		t.Fatalf("id: %s", stderr)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	self, err := certs.ParseDeviceID(lines[len(lines)-1])
	if err != nil {
		t.Fatalf("last line of id is not an ID: %v", err)
	}
	if _, out2, _ := runCLI("id", "--folder", dir); !strings.Contains(out2, self.String()) {
		t.Fatal("id changed between calls")
	}
	if code, _, stderr := runCLI("pair", "--folder", dir, self.String()); code == 0 || !strings.Contains(stderr, "own ID") {
		t.Fatalf("pairing with itself: %d %q", code, stderr)
	}
	other := certs.DeviceIDFromDER([]byte("another device"))
	if code, _, stderr := runCLI("pair", "--folder", dir, "--name", "nas", strings.ToLower(other.String())); code != 0 {
		t.Fatalf("pair: %s", stderr)
	}
	code, out, stderr = runCLI("status", "--folder", dir, "--json")
	if code != 0 {
		t.Fatalf("status: %s", stderr)
	}
	var st struct {
		Device  string
		Running bool
		Peers   []struct{ ID, Name string }
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatal(err)
	}
	if st.Device != self.String() || st.Running || len(st.Peers) != 1 || st.Peers[0].ID != other.String() || st.Peers[0].Name != "nas" {
		t.Fatalf("status: %+v", st)
	}
	if code, out, _ := runCLI("status", "--state", filepath.Join(dir, ".drive-node")); code != 0 || !strings.Contains(out, "not running") {
		t.Fatalf("text status via --state: %s", out)
	}
}

func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}} {
		code, out, _ := runCLI(args...)
		if code != 0 || !strings.HasPrefix(out, "drive-node ") || !strings.Contains(out, "go1") {
			t.Fatalf("%v: %d %q", args, code, out)
		}
	}
}

// A failed op log ends the daemon with exit code 2 (a supervisor restarts
// it), however deep in the node's error it is; other errors with 1.
func TestExitCodes(t *testing.T) {
	failed := fmt.Errorf("node for /f stopped: %w", fmt.Errorf("%w: /f/.drive-node/oplog: pebble: fatal commit error", oplog.ErrFailed))
	for _, tc := range []struct {
		err  error
		want int
	}{
		{nil, 0},
		{pflag.ErrHelp, 0},
		{errors.New("folder /f does not exist"), 1},
		{failed, 2},
	} {
		if got := exitCode(tc.err); got != tc.want {
			t.Errorf("exitCode(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
}

// TestStatusQuotesNamesWithControlCharacters: device names, paths and
// errors partly come from peers; none may put an escape sequence on the
// terminal, yet what they say stays readable.
func TestStatusQuotesNamesWithControlCharacters(t *testing.T) {
	evil := "evil\x1b]0;owned\x07"
	st := node.Status{
		Device: "ME", Running: true, Paused: "write \x1b[2J failed",
		Peers:      []node.PeerStatus{{ID: "PEER", Name: evil, Error: "bad \x9b1m byte"}},
		PendingOps: 1, Pending: []node.Pending{{Origin: "PEER", Name: evil, Ops: 1, Reason: "cannot apply: a\u202etxt.exe"}},
		Conflicts: []node.Conflict{{Copy: "x\x1bc.conflict.txt", Original: "plain name.txt"}},
	}
	var out bytes.Buffer
	printStatus(&out, st)
	got := out.String()
	for i, r := range got {
		if r != '\n' && !strconv.IsPrint(r) || r == utf8.RuneError {
			t.Fatalf("status prints %U at byte %d:\n%s", r, i, got)
		}
	}
	for _, want := range []string{`"evil\x1b]0;owned\a"`, `"write \x1b[2J failed"`, `"bad \x9b1m byte"`, `"cannot apply: a\u202etxt.exe"`, `"x\x1bc.conflict.txt"`, "(copy of plain name.txt)"} {
		if !strings.Contains(got, want) {
			t.Errorf("status lacks %s:\n%s", want, got)
		}
	}
	// --json: the encoder escapes what is below U+0020; DEL and the C1
	// controls are escaped too, and the document reads back the same.
	st.Peers[0].Name = "csi\u009b2J del\x7f"
	b, _ := json.Marshal(st)
	js := escapeC1(b)
	if strings.ContainsFunc(js, func(r rune) bool { return r < 0x20 || r >= 0x7f && r <= 0x9f }) {
		t.Fatalf("--json prints a control character: %q", js)
	}
	var back node.Status
	if err := json.Unmarshal([]byte(js), &back); err != nil || back.Peers[0].Name != st.Peers[0].Name {
		t.Fatalf("--json reads back as %+v, %v", back.Peers, err)
	}
}
