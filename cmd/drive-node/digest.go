package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/drive-node/drive-node/certs"
	"github.com/drive-node/drive-node/node"
	"github.com/drive-node/drive-node/node/control"
)

// differencesTimeout bounds what status waits for the daemon to list
// where it and its peers differ.
const differencesTimeout = 20 * time.Second

// addDifferences asks the running daemon, for each peer whose last state
// digest is not this device's, where the two differ and why, and puts
// the answer (or why there is none) in st. Without a daemon st is left
// as it is.
func addDifferences(ctx context.Context, stateDir string, st *node.Status) {
	if !st.Running {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, differencesTimeout)
	defer cancel()
	var c *control.Client
	for i := range st.Peers {
		ps := st.Peers[i].State
		if ps == nil || ps.Identical {
			continue
		}
		id, err := certs.ParseDeviceID(st.Peers[i].ID)
		if err != nil {
			continue
		}
		if c == nil {
			if c, err = control.Dial(ctx, stateDir); err != nil {
				ps.DifferencesError = err.Error()
				return
			}
		}
		if ps.Differences, err = c.Differences(ctx, id, node.DefaultDifferences); err != nil {
			ps.DifferencesError = err.Error()
		}
	}
}

// printDigestStatus prints which peers hold this device's state and,
// for the others, where they differ and why.
func printDigestStatus(w io.Writer, st node.Status) {
	if st.State == nil {
		fmt.Fprintf(w, "sync state:  not computed yet\n")
		return
	}
	var same []string
	for _, p := range st.Peers {
		if p.State != nil && p.State.Identical {
			same = append(same, shown(peerName(p)))
		}
	}
	if len(same) > 0 {
		fmt.Fprintf(w, "sync state:  identical to %s (state %s…)\n", strings.Join(same, ", "), st.State.Short())
	} else {
		fmt.Fprintf(w, "sync state:  state %s…, %d records\n", st.State.Short(), st.State.Files)
	}
	for _, p := range st.Peers {
		switch {
		case p.State == nil:
			fmt.Fprintf(w, "  %s has announced no state yet\n", shown(peerName(p)))
		case !p.State.Identical:
			fmt.Fprintf(w, "  %s differs (its state %s…, as of %s)\n", shown(peerName(p)), p.State.Short(), p.State.At.Local().Format(time.DateTime))
			for _, d := range p.State.Differences {
				fmt.Fprintf(w, "    %s: %s\n", shown(d.Path), d.Why)
			}
			if p.State.DifferencesError != "" {
				fmt.Fprintf(w, "    (cannot list the paths: %s)\n", shown(p.State.DifferencesError))
			}
		}
	}
}

// peerName is a peer's name, or its short ID when it has none.
func peerName(p node.PeerStatus) string {
	if p.Name != "" {
		return p.Name
	}
	if i := strings.IndexByte(p.ID, '-'); i > 0 {
		return p.ID[:i]
	}
	return p.ID
}
