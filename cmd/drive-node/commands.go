package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/pflag"
)

// A command is one of drive-node's commands: the daemon itself is the one
// with no name.
type command struct {
	name string
	// args is what follows the name in a synopsis.
	args string
	// summary is the one line `drive-node --help` shows.
	summary string
	run     func(args []string, stdout, stderr io.Writer) error
}

// commands lists every command in the order help shows them.
func commands() []command {
	return []command{
		{"id", "[--folder DIR | --state DIR]", "print this device's ID", runID},
		{"invite", "[--folder DIR | --state DIR]", "print a one-time code and wait for a device to join with it", runInvite},
		{"join", "[--folder DIR | --state DIR] [--peer HOST:PORT] CODE", "pair both devices with the code invite printed", runJoin},
		{"pair", "[--folder DIR | --state DIR] [--name NAME] ID", "trust the device ID (or a unique start of one)", runPair},
		{"unpair", "[--folder DIR | --state DIR] ID", "stop trusting the device and drop its connection", runUnpair},
		{"peers", "[--folder DIR | --state DIR] [--json]", "paired devices, and devices refused as unpaired", runPeers},
		{"status", "[--folder DIR | --state DIR] [--json] [--watch]", "what the daemon does, its peers and what is left to sync", runStatus},
		{"events", "[--folder DIR | --state DIR] [--since ID]", "the running daemon's events as JSON lines", runEvents},
		{"pause", "[--folder DIR | --state DIR]", "stop applying and sending until resume", func(args []string, stdout, _ io.Writer) error {
			return runPause(true, args, stdout)
		}},
		{"resume", "[--folder DIR | --state DIR]", "undo pause", func(args []string, stdout, _ io.Writer) error {
			return runPause(false, args, stdout)
		}},
		{"rescan", "[--folder DIR | --state DIR]", "look at the whole folder again now", runRescan},
		{"history", "[--folder DIR | --state DIR] [--json] PATH", "every version of PATH and where it is", runHistory},
		{"restore", "[--folder DIR | --state DIR] (--at TIME | --version HASH) PATH...", "bring files back as a new change (. for all)", runRestore},
		{"approve", "[--folder DIR | --state DIR]", "apply the changes the brake holds", func(args []string, stdout, stderr io.Writer) error {
			return runBrake(true, args, stdout, stderr)
		}},
		{"reject", "[--folder DIR | --state DIR]", "send this device's files back instead of the held changes", func(args []string, stdout, stderr io.Writer) error {
			return runBrake(false, args, stdout, stderr)
		}},
		{"revert", "[--folder DIR | --state DIR]", "receive-only: put the mesh's version back", runRevert},
		{"override", "[--folder DIR | --state DIR]", "send-only: make every peer match this device", runOverride},
		{"ignore", "[--folder DIR | --state DIR] (--check PATH... | --defaults)", "is PATH ignored, and by which rule; the built-in rules", runIgnore},
		{"version", "", "print the version", runVersion},
		{"help", "[COMMAND]", "the commands, or one command's flags", runHelp},
	}
}

// findCommand returns the command called name.
func findCommand(name string) (command, bool) {
	for _, c := range commands() {
		if c.name == name {
			return c, true
		}
	}
	return command{}, false
}

// commandNames lists the commands' names, for an error naming them.
func commandNames() string {
	var names []string
	for _, c := range commands() {
		names = append(names, c.name)
	}
	return strings.Join(names, ", ")
}

// daemonSynopsis is the daemon's line in the usage.
const daemonSynopsis = "--folder DIR [--state DIR] [--listen ADDR] [--name NAME] [--peer HOST:PORT]... [flags]"

// usage prints every command with its line, then how to get more.
func usage(w io.Writer) {
	fmt.Fprintf(w, "drive-node keeps one folder identical on the devices of a local network.\n\nUsage:\n  drive-node %s\n  drive-node COMMAND [flags] [ARGS]\n\nCommands:\n", daemonSynopsis)
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-9s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, "\n`drive-node help COMMAND` or `drive-node COMMAND --help` gives a command's flags;\n`drive-node help daemon` the daemon's.\n")
}

// runVersion prints the version.
func runVersion(args []string, stdout, _ io.Writer) error {
	fs := newFlagSet("version", stdout)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("version: unexpected argument %q", fs.Arg(0))
	}
	printVersion(stdout)
	return nil
}

// runHelp prints the usage, or one command's synopsis and flags.
func runHelp(args []string, stdout, _ io.Writer) error {
	switch {
	case len(args) == 0, len(args) == 1 && (args[0] == "--help" || args[0] == "-h"):
		usage(stdout)
		return nil
	case len(args) > 1:
		return fmt.Errorf("help takes one command, not %d", len(args))
	case args[0] == "daemon":
		return runDaemon([]string{"--help"}, stdout, stdout)
	}
	c, ok := findCommand(args[0])
	if !ok {
		return fmt.Errorf("unknown command %q (want one of %s)", args[0], commandNames())
	}
	if c.name == "help" {
		fmt.Fprintf(stdout, "Usage: drive-node help %s\n\n%s.\n", c.args, upperFirst(c.summary))
		return nil
	}
	return c.run([]string{"--help"}, stdout, stdout)
}

// newFlagSet returns the flag set of the command called name. Parse errors
// are returned, not printed (the caller prints one line); --help prints
// the command's synopsis and flags to help and makes Parse return
// pflag.ErrHelp.
func newFlagSet(name string, help io.Writer) *pflag.FlagSet {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.SortFlags = false
	fs.SetOutput(io.Discard)
	fs.Usage = func() {
		if c, ok := findCommand(name); ok {
			fmt.Fprintf(help, "Usage: drive-node %s %s\n\n%s.\n", c.name, c.args, upperFirst(c.summary))
		} else {
			usage(help)
			fmt.Fprintf(help, "\nThe daemon:\n  drive-node %s\n", daemonSynopsis)
		}
		if flags := fs.FlagUsages(); flags != "" {
			fmt.Fprintf(help, "\nFlags:\n%s", flags)
		}
	}
	return fs
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
