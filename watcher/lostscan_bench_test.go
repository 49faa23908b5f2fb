package watcher

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/drive-node/drive-node/certs"
	"github.com/drive-node/drive-node/internal/clock"
	"github.com/drive-node/drive-node/state"
	"github.com/fsnotify/fsnotify"
)

// dbIndex reads an Index from the node's database, as the node's own
// does (without what an apply in progress adds): reading records from it
// is what a full scan spends most on.
type dbIndex struct{ db *state.DB }

func (x dbIndex) Lookup(p string) (Known, bool) {
	f, ok, err := x.db.File(context.Background(), p)
	if err != nil || !ok || f.Deleted {
		return Known{}, false
	}
	return Known{Dir: f.Dir, Size: f.Size, MTime: f.MTime, Inode: f.Inode, Mode: f.Mode, Hash: f.Hash}, true
}

func (x dbIndex) Under(dir string) []string {
	var out []string
	x.db.FilesUnder(context.Background(), dir, func(f state.File) error {
		out = append(out, f.Path)
		return nil
	})
	return out
}

func (x dbIndex) Children(dir string) (map[string]Known, error) {
	out := map[string]Known{}
	err := x.db.Children(context.Background(), dir, func(c state.Child) error {
		out[c.Name] = Known{Dir: c.Dir, Size: c.Size, MTime: c.MTime, Inode: c.Inode, Mode: c.Mode, Hash: c.Hash, Implied: c.Implied}
		return nil
	})
	return out, err
}

// cpuTime is the CPU time, user and system, the process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkRescanForLostEvents measures a rescan after an overflow of a
// folder of 50,000 files in 2,000 directories that the database records
// and in which nothing changed since the previous scan: as a full scan
// ("whole", as before) and as lostScan does it ("lost"). It reports the
// CPU time of one rescan.
//
//	go test ./watcher/ -run '^$' -bench RescanForLostEvents -benchtime 5x
func BenchmarkRescanForLostEvents(b *testing.B) {
	root := b.TempDir()
	const tops, subs, perDir = 100, 20, 25
	for t := range tops {
		for s := range subs {
			for f := range perDir {
				writeOld(b, filepath.Join(root, fmt.Sprintf("t%03d/s%02d/f%02d", t, s, f)), "x")
			}
		}
	}
	if !keepsCTime(root) {
		b.Skip("the folder's file system keeps no trustworthy ctime")
	}
	ctx := context.Background()
	db, err := state.Open(ctx, filepath.Join(b.TempDir(), "state.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	// A clock that reads, for the scans, past the ctimes of what was just
	// made (see startAfterSetup).
	probe := filepath.Join(b.TempDir(), "probe")
	writeAt(b, probe, "")
	st, _ := os.Lstat(probe)
	made, _, _, _ := changeOf(st)
	w, err := New(Options{Root: root, Index: dbIndex{db}, Logger: quietLogger(),
		Clock: clock.NewFake(time.Unix(0, made).Add(ctimeSlack + time.Nanosecond))})
	if err != nil {
		b.Fatal(err)
	}
	fsw, err := fsnotify.NewBufferedWatcher(eventBuffer)
	if err != nil {
		b.Fatal(err)
	}
	defer fsw.Close()
	ws := newWatchSet(w, fsw)

	// The first scan reports everything, recorded as the node would.
	out := make(chan []Observation)
	recorded := make(chan error)
	go func() {
		var seq uint64
		var err error
		for batch := range out {
			var files []state.File
			for _, o := range batch {
				seq++
				files = append(files, state.File{Path: o.Path, Dir: o.Dir, Size: o.Size, Mode: o.Mode, MTime: o.MTime,
					Inode: o.Inode, Hash: o.Hash, Origin: certs.DeviceID{1}, Seq: seq})
			}
			if err == nil {
				err = db.Apply(ctx, state.Batch{Files: files})
			}
		}
		recorded <- err
	}()
	if _, _, err := w.scan(ctx, out, ws, 0, nil, slog.LevelInfo); err != nil {
		b.Fatal(err)
	}
	close(out)
	if err := <-recorded; err != nil {
		b.Fatal(err)
	}
	// The scan whose start the rescans count from.
	idle := make(chan []Observation)
	_, base, err := w.scan(ctx, idle, ws, 0, nil, slog.LevelInfo)
	if err != nil || base == nil {
		b.Fatal(base, err)
	}
	for _, c := range []struct {
		name string
		base *scanBase
	}{{"whole", nil}, {"lost", base}} {
		b.Run(c.name, func(b *testing.B) {
			cpu := cpuTime()
			for b.Loop() {
				if _, _, err := w.scan(ctx, idle, ws, 0, c.base, slog.LevelInfo); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N)/1e6, "cpu-ms/op")
		})
	}
}
