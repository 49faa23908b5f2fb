package bench

import (
	"bytes"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/drive-node/drive-node/internal/netlab"
)

// The scale figures (-lan.only=scale; not part of the default run, which
// they would make an hour longer): a library of small files moved into
// A's folder, then what living with it costs.
var (
	lanScale    = flag.String("lan.scale", "100000", "comma-separated library sizes (files of 1 KiB, 1,000 to a directory) for -lan.only=scale")
	lanRewrites = flag.Int("lan.rewrites", 3, "full rewrites of the library the scale figures measure the log after (0: none)")
)

const (
	scalePerDir   = 1000
	scaleFileSize = 1024
	// scaleLimit bounds every wait of the scale figures; a tool that
	// takes longer gets no figure for the rest of the size.
	scaleLimit = 60 * time.Minute
)

// scaleFigures are one tool's figures at one library size.
type scaleFigures struct {
	files        int
	took         time.Duration // from the move into A until B holds every file
	rssA, rssB   int64         // VmRSS of each host's processes once synced
	peakA, peakB int64         // their VmHWM then: the most either held during the sync
	editLatency  time.Duration // median, with the library tracked
	restartReady time.Duration // from B's restart until a change made on A right after is on B
	rescanCPU    float64       // CPU-seconds B's processes use from that restart until idle
	logAfter     []int64       // the log's (or index's) bytes on A after the first sync and each rewrite
}

func (f scaleFigures) perSec() float64 {
	if f.took == 0 {
		return 0
	}
	return float64(f.files) / f.took.Seconds()
}

// scaleSizes parses -lan.scale.
func scaleSizes(b *testing.B) []int {
	var out []int
	for _, s := range strings.Split(*lanScale, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(strings.ReplaceAll(s, "_", "")))
		if err != nil || n < scalePerDir {
			b.Fatalf("-lan.scale %q: sizes are numbers of files, at least %d", *lanScale, scalePerDir)
		}
		out = append(out, n)
	}
	return out
}

// scaleLibrary writes n files of scaleFileSize under root, scalePerDir
// to a directory; round k gives every file different content.
func scaleLibrary(b *testing.B, root string, n, round int) {
	buf := bytes.Repeat([]byte{'.'}, scaleFileSize)
	for i := range n {
		p := scalePath(root, i)
		if round == 0 && i%scalePerDir == 0 {
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				b.Fatal(err)
			}
		}
		copy(buf, scaleContent(i, round))
		if err := os.WriteFile(p, buf, 0o644); err != nil {
			b.Fatal(err)
		}
	}
}

func scalePath(root string, i int) string {
	return filepath.Join(root, fmt.Sprintf("d%04d", i/scalePerDir), fmt.Sprintf("f%07d.txt", i))
}

func scaleContent(i, round int) string { return fmt.Sprintf("file %07d, version %d\n", i, round) }

// waitLibrary waits until every file of the library under root holds
// round's content: a sample is polled, then every file is read once.
func waitLibrary(b *testing.B, name, root string, n, round int, start time.Time) bool {
	holds := func(i int) bool {
		got, err := os.ReadFile(scalePath(root, i))
		return err == nil && len(got) == scaleFileSize && bytes.HasPrefix(got, []byte(scaleContent(i, round)))
	}
	for i := 0; i < n; {
		if time.Since(start) > scaleLimit {
			b.Logf("%s: file %d of %d not at version %d on B after %v; no figure", name, i, n, round, scaleLimit)
			return false
		}
		// A sample first, every 997th file and the last: a full pass
		// per poll would cost more than the sync.
		sampled := true
		for j := i; j < n; j += 997 {
			if !holds(j) {
				sampled = false
				break
			}
		}
		if !sampled || !holds(n-1) {
			time.Sleep(200 * time.Millisecond)
			continue
		}
		for i < n && holds(i) {
			i++
		}
	}
	return true
}

// lastInPlace is when the last of the library's n files under root was put
// where it is: its change time, which the rename into place sets (both
// tools write a temp file and rename it), as every later change would.
func lastInPlace(b *testing.B, root string, n int) time.Time {
	var last time.Time
	for i := range n {
		var st syscall.Stat_t
		if err := syscall.Lstat(scalePath(root, i), &st); err != nil {
			b.Fatal(err)
		}
		if t := time.Unix(st.Ctim.Unix()); t.After(last) {
			last = t
		}
	}
	return last
}

// hostCPU is the CPU-seconds every process of h has used.
func hostCPU(b *testing.B, h *netlab.Host) float64 {
	var s float64
	for _, used := range hostsCPU(b, h) {
		s += used
	}
	return s
}

// hostMem is field (VmRSS, VmHWM) of every process of h, summed.
func hostMem(b *testing.B, h *netlab.Host, field string) int64 {
	var s int64
	for _, pid := range h.Pids() {
		s += mem(b, pid, field)
	}
	return s
}

// cpuUntilIdle returns the CPU-seconds h's processes use from now until a
// whole second passes in which they use less than 0.05.
func cpuUntilIdle(b *testing.B, h *netlab.Host, since float64) float64 {
	start := time.Now()
	last := hostCPU(b, h)
	for time.Since(start) < scaleLimit {
		time.Sleep(time.Second)
		now := hostCPU(b, h)
		if now-last < 0.05 {
			return now - since
		}
		last = now
	}
	return last - since
}

// dirBytes is the size of the files under dir.
func dirBytes(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}

// scaleRun measures one tool at library size n: the sync, memory and edit
// latency with it tracked, a restart of B, and the log after rewrites.
func scaleRun(b *testing.B, tl tool, start func(*testing.B, *netlab.Host, string) *netlab.Process,
	n int, stage, dirA, dirB string, a, h *netlab.Host, pb **netlab.Process) scaleFigures {
	f := scaleFigures{files: n}
	name := fmt.Sprintf("%s, %s files", tl.name, thousands(n))
	sub := fmt.Sprintf("scale-%d", n)
	scaleLibrary(b, filepath.Join(stage, sub), n, 0)
	syscall.Sync()
	began := time.Now()
	if err := os.Rename(filepath.Join(stage, sub), filepath.Join(dirA, sub)); err != nil {
		b.Fatal(err)
	}
	if !waitLibrary(b, name, filepath.Join(dirB, sub), n, 0, began) {
		return f
	}
	seen := time.Since(began)
	// The figure ends when the last file was put in place, not when the
	// check read it: reading every file once to be sure costs the check
	// a second or two at this size, which neither tool spends.
	f.took = lastInPlace(b, filepath.Join(dirB, sub), n).Sub(began)
	b.Logf("%s: synced in %.1f s (%.0f files/s); the check saw every file at %.1f s", name, f.took.Seconds(), f.perSec(), seen.Seconds())
	time.Sleep(2 * time.Second)
	f.rssA, f.rssB = hostMem(b, a, "VmRSS"), hostMem(b, h, "VmRSS")
	f.peakA, f.peakB = hostMem(b, a, "VmHWM"), hostMem(b, h, "VmHWM")
	f.editLatency = editLatency(b, name, stage, dirA, dirB, sub+"-edit")
	if tl.logDir != nil {
		// Nothing is superseded yet: nothing to wait for.
		f.logAfter = append(f.logAfter, dirBytes(tl.logDir(dirA)))
	}

	// A restart of B with the library unchanged: a change made on A
	// right after must arrive without waiting for B's look at it all.
	if *lanProfile != "" {
		// The profile of the sync is written on SIGTERM; a kill loses it.
		(*pb).Signal(syscall.SIGTERM)
		(*pb).Wait(time.Minute)
	}
	h.KillAll()
	(*pb).Kill()
	cpu0 := hostCPU(b, h) // nothing runs: 0, unless something outlived the kill
	restarted := time.Now()
	*pb = start(b, h, dirB)
	moveIn(b, stage, dirA, sub+"-after-restart.txt", []byte("made right after B restarted\n"))
	waitFiles(b, dirB, sub+"-after-restart.txt", 1, scaleLimit)
	f.restartReady = time.Since(restarted)
	f.rescanCPU = cpuUntilIdle(b, h, cpu0)
	b.Logf("%s: restart to a peer's change %.2f s, %.2f CPU-s until idle", name, f.restartReady.Seconds(), f.rescanCPU)

	if tl.logDir == nil {
		return f
	}
	for round := 1; round <= *lanRewrites; round++ {
		began := time.Now()
		scaleLibrary(b, filepath.Join(dirA, sub), n, round)
		if !waitLibrary(b, name, filepath.Join(dirB, sub), n, round, began) {
			return f
		}
		time.Sleep(2 * time.Second)
		f.logAfter = append(f.logAfter, settledLog(b, tl, a, dirA))
		b.Logf("%s: rewrite %d synced in %.1f s; log %d MiB", name, round, time.Since(began).Seconds(), f.logAfter[round]>>20)
	}
	return f
}

// settledLog returns the bytes of the log of the daemon of dir on h, once
// it has settled.
func settledLog(b *testing.B, tl tool, h *netlab.Host, dir string) int64 {
	if tl.logSettled != nil {
		tl.logSettled(b, h, dir)
	}
	return dirBytes(tl.logDir(dir))
}

// formatScale is the table of the scale figures, one row per figure and
// size.
func formatScale(d, s []scaleFigures) string {
	var w strings.Builder
	fmt.Fprintf(&w, "| figure | files | drive-node | Syncthing | target |\n|---|---|---|---|---|\n")
	at := func(list []scaleFigures, i int) scaleFigures {
		if i < len(list) {
			return list[i]
		}
		return scaleFigures{}
	}
	mib := func(v int64) string {
		switch {
		case v == 0:
			return "–"
		case v < 10<<20:
			return fmt.Sprintf("%.0f KiB", float64(v)/1024)
		}
		return fmt.Sprintf("%d MiB", v>>20)
	}
	secs := func(v time.Duration) string {
		if v == 0 {
			return "–"
		}
		return fmt.Sprintf("%.2f s", v.Seconds())
	}
	logRatio := func(f scaleFigures) string {
		if len(f.logAfter) < 3 || f.logAfter[1] == 0 {
			return "–"
		}
		last := f.logAfter[len(f.logAfter)-1]
		return fmt.Sprintf("%.2f× (%s → %s)", float64(last)/float64(f.logAfter[1]), mib(f.logAfter[1]), mib(last))
	}
	for i := range max(len(d), len(s)) {
		x, y := at(d, i), at(s, i)
		files := thousands(max(x.files, y.files))
		rows := [][4]string{
			{"sync, files/s", cell("%.0f", x.perSec()), cell("%.0f", y.perSec()), "≥ 3,000"},
			{"sync, seconds", secs(x.took), secs(y.took), ""},
			{"RSS after, A / B", mib(x.rssA) + " / " + mib(x.rssB), mib(y.rssA) + " / " + mib(y.rssB), "≤ 80 MiB each"},
			{"peak RSS, A / B", mib(x.peakA) + " / " + mib(x.peakB), mib(y.peakA) + " / " + mib(y.peakB), "≤ 80 MiB each"},
			{"edit latency, tracked", secs(x.editLatency), secs(y.editLatency), ""},
			{"restart to a peer's change", secs(x.restartReady), secs(y.restartReady), "≤ 2 s"},
			{"CPU-s from restart until idle", cell("%.2f", x.rescanCPU), cell("%.2f", y.rescanCPU), "< 1 per 100,000 files"},
			{"log after the last rewrite vs after the first", logRatio(x), logRatio(y), "≤ 1.5× after 3 vs after 1"},
		}
		for _, r := range rows {
			fmt.Fprintf(&w, "| %s | %s | %s | %s | %s |\n", r[0], files, r[1], r[2], r[3])
		}
	}
	return w.String()
}
