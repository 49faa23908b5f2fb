package oplog

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestLogCompactsWithoutSamplingTicker fills the log through many
// memtable flushes: with the event-driven compaction scheduler (no 100 ms
// sampling ticker) the flushed tables must still be compacted, so that
// level 0 does not grow without end, and the log must close cleanly.
func TestLogCompactsWithoutSamplingTicker(t *testing.T) {
	l := openLog(t, t.TempDir(), 1)
	ctx := context.Background()
	path := strings.Repeat("p", 200)
	batch := make([]Op, 500)
	for round := range 120 { // about 12 MiB of ops, eight memtables
		for i := range batch {
			batch[i] = Op{Kind: KindWrite, Path: fmt.Sprintf("%s/%d/%d", path, round, i)}
		}
		if _, err := l.Append(ctx, batch...); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		m := l.db.Metrics()
		if m.Flush.Count > 0 && m.Compact.Count > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %d flushes no compaction ran; level 0 holds %d tables", m.Flush.Count, m.Levels[0].TablesCount)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}
