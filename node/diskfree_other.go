//go:build !linux && !darwin && !freebsd && !windows

package node

import "math"

// diskFree is unknown on this platform: the reserve check never trips and
// a full state disk stops the daemon (see checkStateDir).
func diskFree(string) (uint64, error) { return math.MaxUint64, nil }

// diskSize is unknown on this platform: the version store has no cap.
func diskSize(string) (uint64, error) { return 0, nil }
