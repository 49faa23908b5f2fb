package core

import (
	"testing"

	"github.com/drive-node/drive-node/oplog"
)

// An op that changes only a file's mode (chmod +x) changes the mode here:
// the content is the same, so nothing is placed, but the mode must follow.
func TestAModeOnlyChangeIsApplied(t *testing.T) {
	b := newOps()
	base := b.make(devA, 1, oplog.KindWrite, "run.sh", "", "#!/bin/sh")
	exec := b.make(devA, 2, oplog.KindWrite, "run.sh", "", "#!/bin/sh", base)
	exec.Mode = 0o755
	plan := decide(t, recorded(base), exec, false)
	if got := effects(plan); got != "chmod run.sh" {
		t.Fatalf("effects %q, want chmod run.sh", got)
	}
	if len(plan.Records) != 1 || plan.Records[0].Mode != 0o755 {
		t.Fatalf("records %+v, want run.sh at 0755", plan.Records)
	}
	same := b.make(devA, 3, oplog.KindWrite, "run.sh", "", "#!/bin/sh", exec)
	same.Mode = 0o755
	if got := effects(decide(t, recorded(base, exec), same, false)); got != "" {
		t.Fatalf("an op changing nothing on disk: effects %q, want none", got)
	}
}
