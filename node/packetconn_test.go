package node

import (
	"net"
	"os"
	"path/filepath"
	"testing"
)

// TestHandedInSockets runs two nodes on sockets their embedding program
// opened: they sync as over sockets of their own, and each socket is
// closed when its node's Run returns.
func TestHandedInSockets(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	pairFolders(t, a, b)
	connA, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	connB, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	withConn := func(c net.PacketConn) func(*Config) {
		return func(cfg *Config) { cfg.Listen, cfg.PacketConn = "", c }
	}
	na := startNodeConfig(t, a, "", withConn(connA), nil)
	nb := startNodeConfig(t, b, "", withConn(connB), nil, connA.LocalAddr().String())
	if err := os.WriteFile(filepath.Join(a, "note.txt"), []byte("handed in"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "note.txt on b", func() string {
		got, err := os.ReadFile(filepath.Join(b, "note.txt"))
		if err != nil || string(got) != "handed in" {
			return "not yet"
		}
		return ""
	})
	if got := na.tr.Addr().String(); got != connA.LocalAddr().String() {
		t.Errorf("a's transport listens on %s, want the handed-in %s", got, connA.LocalAddr())
	}
	na.stop(t)
	nb.stop(t)
	for name, c := range map[string]net.PacketConn{"a": connA, "b": connB} {
		if _, err := c.WriteTo([]byte{0}, c.LocalAddr()); err == nil {
			t.Errorf("%s's socket is still open after Run returned", name)
		}
	}
}
