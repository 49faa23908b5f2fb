package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/drive-node/drive-node/node"
	"github.com/drive-node/drive-node/node/control"
)

// runRevert puts back, on a receive-only device, the mesh's version of
// every path changed there.
func runRevert(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("revert", stdout)
	var f nodeFlags
	var asJSON bool
	f.add(fs, true)
	fs.BoolVar(&asJSON, "json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("revert: unexpected argument %q (it reverts every local change)", fs.Arg(0))
	}
	return onNode(&f, stderr, true, func(ctx context.Context, n control.Node) error {
		res, err := n.Revert(ctx)
		if err != nil {
			return err
		}
		if len(res) == 0 && !asJSON {
			fmt.Fprintln(stdout, "no local change to revert")
			return nil
		}
		return printRestored(stdout, "revert", res, asJSON)
	})
}

// runOverride sends, from a send-only device, its version of every path
// where peers differ.
func runOverride(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("override", stdout)
	var f nodeFlags
	f.add(fs, true)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("override: unexpected argument %q", fs.Arg(0))
	}
	return onNode(&f, stderr, true, func(ctx context.Context, n control.Node) error {
		answered, err := n.Override(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%d paths sent to every peer as this device has them\n", answered)
		return nil
	})
}

// errNoneIgnored makes `ignore --check` exit 1 without a message when no
// path given is ignored, as `git check-ignore` does.
var errNoneIgnored = errors.New("no path given is ignored")

// runIgnore shows the built-in rules, or says of each path whether the
// rules ignore it and by which rule, in the form `git check-ignore -v -n`
// prints: SOURCE:LINE:PATTERN, a tab, the path (":: " and the path when
// no rule matched).
func runIgnore(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("ignore", stdout)
	var loc locationFlags
	var check, defaults, asJSON bool
	loc.add(fs)
	fs.BoolVar(&check, "check", false, "say for each PATH whether it is ignored, and by which rule")
	fs.BoolVar(&defaults, "defaults", false, "print the built-in rules")
	fs.BoolVar(&asJSON, "json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch {
	case defaults:
		if asJSON {
			return printJSON(stdout, node.DefaultIgnoreRules())
		}
		fmt.Fprintln(stdout, strings.Join(node.DefaultIgnoreRules(), "\n"))
		return nil
	case !check:
		return errors.New("ignore: give --check PATH... or --defaults")
	case fs.NArg() == 0:
		return errors.New("ignore --check: give at least one path")
	}
	stateDir, err := loc.stateDir()
	if err != nil {
		return err
	}
	folder, err := loc.syncedFolder(context.Background(), stateDir)
	if err != nil {
		return err
	}
	var paths []string
	for _, a := range fs.Args() {
		p, err := folderRelative(folder, a)
		if err != nil {
			return err
		}
		if strings.HasSuffix(a, "/") {
			p += "/"
		}
		paths = append(paths, p)
	}
	verdicts, err := node.CheckIgnore(folder, stateDir, paths)
	if err != nil {
		return err
	}
	any := false
	for _, v := range verdicts {
		any = any || v.Ignored
	}
	if asJSON {
		if err := printJSON(stdout, verdicts); err != nil {
			return err
		}
	} else {
		for _, v := range verdicts {
			line := ""
			if v.Line > 0 {
				line = fmt.Sprint(v.Line)
			}
			fmt.Fprintf(stdout, "%s:%s:%s\t%s\n", shown(v.Source), line, shown(v.Pattern), shown(v.Path))
		}
	}
	if !any {
		return errNoneIgnored
	}
	return nil
}
