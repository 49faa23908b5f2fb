package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/drive-node/drive-node/node"
)

// TestPrintDigestStatus: peers that hold this device's state are named
// on one line with the state's first 6 bytes; one that differs lists its
// paths and why; one that announced nothing says so.
func TestPrintDigestStatus(t *testing.T) {
	root := "3f2a9c0b1d2e" + strings.Repeat("00", 26)
	st := node.Status{
		State: &node.StateDigest{Root: root, Files: 4},
		Peers: []node.PeerStatus{
			{ID: "AAAAAAA-B", Name: "nas", State: &node.PeerState{StateDigest: node.StateDigest{Root: root}, Identical: true}},
			{ID: "CCCCCCC-D", Name: "laptop", State: &node.PeerState{StateDigest: node.StateDigest{Root: root}, Identical: true}},
			{ID: "EEEEEEE-F", Name: "pi", State: &node.PeerState{StateDigest: node.StateDigest{Root: "1a2b3c4d5e6f" + strings.Repeat("11", 26)},
				Differences: []node.Difference{{Path: "x.log", Why: node.WhyIgnored}, {Path: "new\x1b[2J.txt", Why: node.WhyPeerBehind}}}},
			{ID: "GGGGGGG-H"},
		},
	}
	var out bytes.Buffer
	printDigestStatus(&out, st)
	for _, want := range []string{
		"identical to nas, laptop (state 3f2a9c0b1d2e…)",
		"pi differs (its state 1a2b3c4d5e6f…",
		"    x.log: ignored here\n",
		`    "new\x1b[2J.txt": peer has not caught up`,
		"GGGGGGG has announced no state yet",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("status lacks %q:\n%s", want, out.String())
		}
	}
}
