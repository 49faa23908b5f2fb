package bench

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/drive-node/drive-node/internal/netlab"
)

// idleFiles is how many files the idle daemons track: an idle cost that
// grows with the folder (a periodic walk, a digest over every file) only
// shows with many.
var idleFiles = flag.Int("idle.files", 2000, "files of 1 KiB (100 to a directory) both tools track while idle")

// idleSyncthing runs Syncthing beside drive-node. At a million files
// Syncthing would take hours to sync; drive-node's figure is then taken
// alone.
var idleSyncthing = flag.Bool("idle.syncthing", true, "measure Syncthing in the same run (false: drive-node alone)")

// idleSeeded gives Syncthing the library in both its folders before it
// starts, so that it only scans them and exchanges its indexes instead of
// sending every file: the way to have Syncthing idle at a million files
// within a run. drive-node syncs the library from A to B as usual. What is
// measured is the same: two connected daemons with nothing left to do.
var idleSeeded = flag.Bool("idle.seeded", false, "start Syncthing with the library already in both folders (drive-node still syncs it)")

// idleWindow is how long the idle daemons are measured, the span the
// issue compares the two tools over.
const idleWindow = 120 * time.Second

// The window opens once both tools have been quiet for idleQuiet: each
// used at most idleQuietCPU CPU-seconds, all its processes together, over
// the last idleQuiet. The tail of a sync (a digest summed, a fold pass,
// an index exchange, a database checkpoint) is not idleness, and at a
// million files it takes minutes after the last file arrives; idleQuiet
// is longer than the minute drive-node's fold waits for the log to
// settle. A wait longer than idleQuietLimit fails the benchmark.
const (
	idleQuiet      = 90 * time.Second
	idleQuietCPU   = 0.3
	idleQuietLimit = 30 * time.Minute
)

// waitToolsQuiet waits until every tool's processes (by tool name, the hosts
// they run on) have used at most idleQuietCPU CPU-seconds over the last
// idleQuiet, reading their CPU time every 10 s.
func waitToolsQuiet(b *testing.B, tools map[string][]*netlab.Host) {
	b.Helper()
	const every = 10 * time.Second
	type reading struct {
		at  time.Time
		cpu map[string]map[int]float64
	}
	read := func() reading {
		r := reading{at: time.Now(), cpu: map[string]map[int]float64{}}
		for name, hosts := range tools {
			r.cpu[name] = hostsCPU(b, hosts...)
		}
		return r
	}
	var past []reading
	start := time.Now()
	for {
		now := read()
		past = append(past, now)
		for len(past) > 1 && now.at.Sub(past[1].at) >= idleQuiet {
			past = past[1:]
		}
		if then := past[0]; now.at.Sub(then.at) >= idleQuiet {
			quiet, why := true, ""
			for name := range tools {
				used := 0.0
				for pid, c := range now.cpu[name] {
					used += c - then.cpu[name][pid] // a process started since counts whole
				}
				if used > idleQuietCPU {
					quiet, why = false, fmt.Sprintf("%s used %.2f CPU-s in the last %v", name, used, now.at.Sub(then.at).Round(time.Second))
				}
			}
			if quiet {
				b.Logf("both tools quiet %v after they were in sync", time.Since(start).Round(time.Second))
				return
			}
			if time.Since(start) > idleQuietLimit {
				b.Fatalf("not quiet after %v: %s", idleQuietLimit, why)
			}
		}
		time.Sleep(every) // the reading interval of a wait for quiet, itself the condition
	}
}

// cpuSeconds returns the user+system CPU time pid has used.
func cpuSeconds(b *testing.B, pid int) float64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// Fields after the command name, which is in parentheses.
	f := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+2:]))
	ut, err1 := strconv.ParseFloat(f[11], 64)
	st, err2 := strconv.ParseFloat(f[12], 64)
	if err1 != nil || err2 != nil {
		b.Fatalf("/proc/%d/stat: utime %q, stime %q", pid, f[11], f[12])
	}
	return (ut + st) / 100 // clock ticks; USER_HZ is 100 on Linux
}

// hostsCPU returns the CPU time of every process in the hosts'
// namespaces, by pid: Syncthing runs a monitor and a child, and both
// count.
func hostsCPU(b *testing.B, hosts ...*netlab.Host) map[int]float64 {
	out := map[int]float64{}
	for _, h := range hosts {
		for _, pid := range h.Pids() {
			out[pid] = cpuSeconds(b, pid)
		}
	}
	return out
}

// cpuUsed is the CPU time used between two readings of hostsCPU. A
// process gone by the second reading took its time with it, so the
// figure would be too low: that fails the benchmark.
func cpuUsed(b *testing.B, tool string, before, after map[int]float64) float64 {
	used := 0.0
	for pid, s := range before {
		a, ok := after[pid]
		if !ok {
			b.Fatalf("%s: process %d ended during the idle window", tool, pid)
		}
		used += a - s
	}
	for pid, a := range after {
		if _, ok := before[pid]; !ok {
			used += a // started during the window: all of its time is in it
		}
	}
	return used
}

// peersConnected reports whether the daemon of dir on h is running and
// connected to every peer it has paired, as its status says.
func peersConnected(b *testing.B, h *netlab.Host, bin, dir string) (bool, string) {
	out, err := h.Command(b.Context(), bin, "status", "--folder", dir, "--json").Output()
	if err != nil {
		return false, fmt.Sprintf("status: %v", err)
	}
	var st struct {
		Running bool
		Peers   []struct{ Connected bool }
	}
	if err := json.Unmarshal(out, &st); err != nil {
		return false, fmt.Sprintf("status: %v", err)
	}
	connected := 0
	for _, p := range st.Peers {
		if p.Connected {
			connected++
		}
	}
	return st.Running && len(st.Peers) > 0 && connected == len(st.Peers),
		fmt.Sprintf("running %v, %d of %d peers connected", st.Running, connected, len(st.Peers))
}

// syncthingGet reads path from the REST API of the Syncthing on h (the
// GUI address and key syncthingConfig sets) into v, giving up after 60 s.
func syncthingGet(b *testing.B, h *netlab.Host, path string, v any) error {
	out, err := h.Command(b.Context(), "curl", "-sf", "--max-time", "60", "-H", "X-API-Key: drive-node-bench",
		"http://127.0.0.1:8384"+path).Output()
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := json.Unmarshal(out, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// syncthingConnected reports whether the Syncthing on h is connected to
// its one peer, as its REST API (syncthingConfig's GUI address and key)
// says.
func syncthingConnected(b *testing.B, h *netlab.Host) (bool, string) {
	var st struct {
		Connections map[string]struct{ Connected bool }
	}
	if err := syncthingGet(b, h, "/rest/system/connections", &st); err != nil {
		return false, err.Error()
	}
	connected := 0
	for _, c := range st.Connections {
		if c.Connected {
			connected++
		}
	}
	// The device's own entry is listed too, never connected.
	return connected == 1, fmt.Sprintf("%d connected of %d listed", connected, len(st.Connections))
}

// writeIdleLibrary moves n files of 1 KiB, 100 to a directory, into dir
// at once (written in stage first).
func writeIdleLibrary(b *testing.B, stage, dir string, n int) {
	root := filepath.Join(stage, "idle")
	buf := make([]byte, 1024)
	for i := range n {
		p := filepath.Join(root, fmt.Sprintf("d%04d", i/100), fmt.Sprintf("f%07d.txt", i))
		if i%100 == 0 {
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				b.Fatal(err)
			}
		}
		copy(buf, fmt.Sprintf("idle file %07d\n", i))
		if err := os.WriteFile(p, buf, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	if err := os.Rename(root, filepath.Join(dir, "idle")); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkIdleCPU measures the CPU two connected daemons that have
// nothing to do use over idleWindow, tracking -idle.files files, and
// Syncthing's two in the same window on a lab of their own: idle must
// cost no more than Syncthing. Both figures are reported, as
// drive-node-cpu-s/120s and syncthing-cpu-s/120s, counting every process
// of each tool. The benchmark fails unless every daemon was connected to
// its peer when the window began and still is when it ends, and some CPU
// time was counted: a daemon that had stopped, or a /proc that counts
// nothing, measures no idleness.
// Run: go test -run '^$' -bench IdleCPU -benchtime 1x ./bench/ (as root).
func BenchmarkIdleCPU(b *testing.B) {
	n := *idleFiles
	d := startDaemons(b, 2)
	lab, bin, dirA, dirB, pa, pb := d.lab, d.bin, d.dirA, d.dirB, d.pa, d.pb
	dnHosts := []*netlab.Host{lab.Host(0), lab.Host(1)}

	var st syncthingRun
	if *idleSyncthing {
		st = startIdleSyncthing(b, n, *idleSeeded)
		defer func() { st.hosts[0].KillAll(); st.hosts[1].KillAll() }()
	}

	writeIdleLibrary(b, d.stage, dirA, n)
	start := time.Now()
	if st.on() && !*idleSeeded {
		writeIdleLibrary(b, st.stage, st.a, n)
	}
	limit := 2*time.Minute + time.Duration(n/100)*time.Second
	waitFiles(b, filepath.Join(dirB, "idle"), "", n, limit)
	b.Logf("drive-node: %d files on B %v after they were moved into A", n, time.Since(start).Round(time.Second))
	if st.on() && !*idleSeeded {
		waitFiles(b, filepath.Join(st.b, "idle"), "", n, limit)
	}
	if st.on() && *idleSeeded {
		// Scanning and hashing a seeded folder takes Syncthing far longer
		// than a transfer of the same files takes drive-node.
		waitSyncthingInSync(b, st, n, 10*limit)
		b.Logf("Syncthing: both seeded folders in sync after %v", time.Since(st.started).Round(time.Second))
	}
	dirs := []string{dirA, dirB}
	connected := func(when string) {
		for i, dir := range dirs {
			if ok, why := peersConnected(b, dnHosts[i], bin, dir); !ok {
				b.Fatalf("%s %s: %s", dir, when, why)
			}
			if !st.on() {
				continue
			}
			if ok, why := syncthingConnected(b, st.hosts[i]); !ok {
				b.Fatalf("Syncthing %d %s: %s", i, when, why)
			}
		}
	}
	for i, dir := range dirs {
		netlab.Eventually(b, 30*time.Second, dir+" connected", func() (bool, string) {
			return peersConnected(b, dnHosts[i], bin, dir)
		})
		if st.on() {
			netlab.Eventually(b, 30*time.Second, fmt.Sprintf("Syncthing %d connected", i), func() (bool, string) {
				return syncthingConnected(b, st.hosts[i])
			})
		}
	}
	quietTools := map[string][]*netlab.Host{"drive-node": dnHosts}
	if st.on() {
		quietTools["Syncthing"] = st.hosts
	}
	waitToolsQuiet(b, quietTools)

	opened := time.Now()
	dnBefore, stBefore := hostsCPU(b, dnHosts...), st.cpu(b)
	time.Sleep(idleWindow) // the measurement itself, not a wait for an event
	dnAfter, stAfter := hostsCPU(b, dnHosts...), st.cpu(b)
	// When, and which process: a periodic task of one daemon shows as
	// one process's seconds, and its log says what ran then.
	b.Logf("idle window %s to %s (UTC); drive-node A %.2f s, B %.2f s", opened.UTC().Format(time.TimeOnly),
		time.Now().UTC().Format(time.TimeOnly), dnAfter[pa.Pid()]-dnBefore[pa.Pid()], dnAfter[pb.Pid()]-dnBefore[pb.Pid()])
	if pa.Exited() || pb.Exited() {
		b.Fatalf("a daemon stopped while idle:\nA: %s\nB: %s", pa.Log(), pb.Log())
	}
	if st.on() && (st.pa.Exited() || st.pb.Exited()) {
		b.Fatalf("a Syncthing stopped while idle:\nA: %s\nB: %s", st.pa.Log(), st.pb.Log())
	}
	dnUsed := cpuUsed(b, "drive-node", dnBefore, dnAfter)
	connected("after the window")
	if dnUsed <= 0 {
		b.Fatalf("no CPU time counted over %v: drive-node %.2f s", idleWindow, dnUsed)
	}
	if *lanProfile != "" {
		for _, p := range []*netlab.Process{pa, pb} {
			p.Signal(syscall.SIGTERM) // writes the profiles
			p.Wait(10 * time.Second)
		}
	}
	b.ReportMetric(dnUsed, "drive-node-cpu-s/120s")
	if !st.on() {
		fmt.Printf("idle CPU over %v, %d files: drive-node %.2f s (Syncthing not run)\n", idleWindow, n, dnUsed)
		return
	}
	stUsed := cpuUsed(b, "Syncthing", stBefore, stAfter)
	if stUsed <= 0 {
		b.Fatalf("no CPU time counted over %v: Syncthing %.2f s", idleWindow, stUsed)
	}
	b.ReportMetric(stUsed, "syncthing-cpu-s/120s")
	fmt.Printf("idle CPU over %v, %d files: drive-node %.2f s, Syncthing %.2f s (%.1f×)\n",
		idleWindow, n, dnUsed, stUsed, dnUsed/stUsed)
}

// syncthingRun is the two Syncthing daemons of the idle figure, on a lab
// of their own; its zero value is none.
type syncthingRun struct {
	hosts       []*netlab.Host
	a, b, stage string
	pa, pb      *netlab.Process
	started     time.Time
}

func (s syncthingRun) on() bool { return s.pa != nil }

// cpu is the CPU time of every Syncthing process, or nil when none runs.
func (s syncthingRun) cpu(b *testing.B) map[int]float64 {
	if !s.on() {
		return nil
	}
	return hostsCPU(b, s.hosts...)
}

// startIdleSyncthing starts two paired Syncthing daemons on a lab of
// their own; seeded, each folder holds the n files of the library first.
func startIdleSyncthing(b *testing.B, n int, seeded bool) syncthingRun {
	st := syncthing()
	lab := netlab.New(b, 2)
	r := syncthingRun{hosts: []*netlab.Host{lab.Host(0), lab.Host(1)}}
	root := b.TempDir()
	r.a, r.b, r.stage = filepath.Join(root, "A"), filepath.Join(root, "B"), filepath.Join(root, "stage")
	for _, dir := range []string{r.a, r.b, r.stage} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			b.Fatal(err)
		}
	}
	st.setup(b, lab, r.a, r.b)
	if seeded {
		writeIdleLibrary(b, r.stage, r.a, n)
		writeIdleLibrary(b, r.stage, r.b, n)
	}
	r.started = time.Now()
	r.pa, r.pb = st.start(b, r.hosts[0], r.a), st.start(b, r.hosts[1], r.b)
	return r
}

// waitSyncthingInSync waits, polling every few seconds (each poll costs
// Syncthing a count of its database), until both of st's daemons are
// idle, need nothing, hold exactly the n files of the library and see
// their peer complete, in one poll. It fails at once if a daemon stopped,
// its folder is in error, or it holds more than the library (a conflict
// copy).
func waitSyncthingInSync(b *testing.B, st syncthingRun, n int, limit time.Duration) {
	b.Helper()
	deadline := time.Now().Add(limit)
	for {
		if st.pa.Exited() || st.pb.Exited() {
			b.Fatalf("a Syncthing stopped before it was in sync:\nA: %s\nB: %s", st.pa.Log(), st.pb.Log())
		}
		ok, why := true, ""
		for i, h := range st.hosts {
			in, reason, err := syncthingInSync(b, h, n)
			if err != nil {
				b.Fatalf("Syncthing %d: %v", i, err)
			}
			if !in {
				ok, why = false, fmt.Sprintf("Syncthing %d: %s", i, reason)
				break
			}
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("not in sync after %v: %s", limit, why)
		}
		time.Sleep(5 * time.Second) // a poll interval; each poll is a database count
	}
}

// syncthingInSync reports whether the Syncthing on h is idle with the n
// files of the library, needs nothing, and finds its connected peer
// complete, as its REST API says, and if not, why. The error is for what
// waiting will not mend: a folder in error, more files than the library.
func syncthingInSync(b *testing.B, h *netlab.Host, n int) (bool, string, error) {
	get := func(path string, v any) error { return syncthingGet(b, h, path, v) }
	var status struct {
		State                                   string
		Error                                   string
		GlobalFiles, LocalFiles, NeedTotalItems int
	}
	if err := get("/rest/db/status?folder=bench", &status); err != nil {
		return false, err.Error(), nil // starting, or busy: asked again
	}
	switch {
	case status.State == "error":
		return false, "", fmt.Errorf("folder in error: %s", status.Error)
	case status.GlobalFiles > n:
		return false, "", fmt.Errorf("%d files, more than the library's %d (a conflict copy?)", status.GlobalFiles, n)
	case status.State != "idle" || status.NeedTotalItems != 0 || status.GlobalFiles != n || status.LocalFiles != n:
		return false, fmt.Sprintf("folder %s, %d global files, %d local, %d items needed (want %d, %d, 0)",
			status.State, status.GlobalFiles, status.LocalFiles, status.NeedTotalItems, n, n), nil
	}
	var conns struct {
		Connections map[string]struct{ Connected bool }
	}
	if err := get("/rest/system/connections", &conns); err != nil {
		return false, err.Error(), nil
	}
	for id, c := range conns.Connections {
		if !c.Connected {
			continue
		}
		var done struct {
			Completion float64
			NeedItems  int
		}
		if err := get("/rest/db/completion?folder=bench&device="+id, &done); err != nil {
			return false, err.Error(), nil
		}
		return done.Completion == 100 && done.NeedItems == 0,
			fmt.Sprintf("peer %.7s %.2f%% complete, needs %d items", id, done.Completion, done.NeedItems), nil
	}
	return false, "no peer connected", nil
}
