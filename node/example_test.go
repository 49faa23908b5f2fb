package node_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/drive-node/drive-node/certs"
	"github.com/drive-node/drive-node/node"
)

// Example embeds the engine in a program: open it on a folder, trust a
// device, follow its events, run it until the context ends, and read its
// status. examples/received is a whole program built this way.
func Example() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n, err := node.Open(ctx, node.Config{
		Folder:      "/srv/drive",
		Listen:      ":22000",
		NoDiscovery: false, // find peers with mDNS
		Logger:      slog.New(slog.NewTextHandler(os.Stderr, nil)),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer n.Close()

	laptop, err := certs.ParseDeviceID("AIKY55K-...") // the other device's `drive-node id`
	if err == nil {
		n.Pair(ctx, laptop, "laptop")
	}

	// Subscribed before Run, from the newest event: nothing is missed.
	events := n.Events().Subscribe(n.Events().Last())
	go func() {
		for {
			ev, err := events.Next(ctx)
			if err != nil {
				return
			}
			if ev.Type == node.EventApplied {
				fmt.Println("received", ev.Path)
			}
		}
	}()
	go func() {
		<-n.Ready()
		if st, err := n.Status(ctx); err == nil {
			fmt.Println(st.Files, "files tracked")
		}
	}()
	if err := n.Run(ctx); err != nil {
		fmt.Println(err)
	}
}
