package node

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestStatusOnlyReads: status opens the database read-only (it neither
// migrates nor writes it, even when the daemon would) and takes the
// device ID from the certificate, never reading the private key.
func TestStatusOnlyReads(t *testing.T) {
	ctx := context.Background()
	folder := t.TempDir()
	stateDir := DefaultStateDir(folder, "")
	n, err := Open(ctx, Config{Folder: folder, NoDiscovery: true})
	if err != nil {
		t.Fatal(err)
	}
	id := n.ID().String()
	n.Close()

	raw, err := sql.Open("sqlite", filepath.Join(stateDir, dbName))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	version := func() (v int) {
		if err := raw.QueryRow("PRAGMA user_version").Scan(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	latest := version()
	if _, err := raw.Exec(fmt.Sprintf("PRAGMA user_version = %d", latest-1)); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadStatus(ctx, stateDir); err == nil || !strings.Contains(err.Error(), "start the daemon once to upgrade it") {
		t.Errorf("status of an older database: %v, want a refusal saying to start the daemon", err)
	}
	if v := version(); v != latest-1 {
		t.Errorf("status migrated the database to version %d", v)
	}
	if _, err := raw.Exec(fmt.Sprintf("PRAGMA user_version = %d", latest)); err != nil {
		t.Fatal(err)
	}

	if err := os.WriteFile(filepath.Join(stateDir, "device-key.pem"), []byte("unreadable key"), 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := ReadStatus(ctx, stateDir)
	if err != nil {
		t.Fatal(err)
	}
	if st.Device != id {
		t.Fatalf("status shows device %q, want %q from the certificate", st.Device, id)
	}
}
