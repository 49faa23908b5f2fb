package main

import (
	"strings"
	"testing"
)

// TestHelpListsEveryCommand checks that --help names each command with its
// line, and that each command's help gives its own flags on stdout.
func TestHelpListsEveryCommand(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}} {
		code, stdout, stderr := runCLI(args...)
		if code != 0 || stderr != "" {
			t.Fatalf("%v: exit %d, stderr %q", args, code, stderr)
		}
		for _, c := range commands() {
			if !strings.Contains(stdout, "  "+c.name+" ") || !strings.Contains(stdout, c.summary) {
				t.Errorf("%v does not list %s (%q):\n%s", args, c.name, c.summary, stdout)
			}
		}
	}
	for _, c := range commands() {
		for _, args := range [][]string{{"help", c.name}, {c.name, "--help"}} {
			code, stdout, stderr := runCLI(args...)
			if code != 0 || stderr != "" {
				t.Errorf("%v: exit %d, stderr %q", args, code, stderr)
			}
			if c.name == "help" || c.name == "version" {
				if !strings.HasPrefix(stdout, "Usage: drive-node "+c.name) && !strings.Contains(stdout, "Commands:") {
					t.Errorf("%v: want help, got:\n%s", args, stdout)
				}
				continue
			}
			if !strings.HasPrefix(stdout, "Usage: drive-node "+c.name+" ") || !strings.Contains(stdout, "--folder") {
				t.Errorf("%v: want the synopsis and flags of %s, got:\n%s", args, c.name, stdout)
			}
		}
	}
	code, stdout, _ := runCLI("help", "daemon")
	if code != 0 || !strings.Contains(stdout, "--versions") || !strings.Contains(stdout, "--listen") {
		t.Errorf("help daemon: exit %d, want the daemon's flags:\n%s", code, stdout)
	}
	code, _, stderr := runCLI("help", "frobnicate")
	if code != 1 || !strings.Contains(stderr, `unknown command "frobnicate"`) {
		t.Errorf("help frobnicate: exit %d, stderr %q", code, stderr)
	}
}
