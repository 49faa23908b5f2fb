package bench

import (
	"testing"

	"github.com/drive-node/drive-node/internal/netlab"
)

// TestMain removes the binaries the tests built once they have run.
func TestMain(m *testing.M) { netlab.Main(m) }
