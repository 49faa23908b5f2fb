// Package bench holds the LAN benchmark that compares drive-node with
// Syncthing (run it with bench/lan.sh).
package bench

import (
	"bytes"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"encoding/json"

	"github.com/drive-node/drive-node/internal/netlab"
)

// tool is a sync program under test: how to set it up and start it on a
// host.
type tool struct {
	name  string
	setup func(b *testing.B, lab *netlab.Lab, dirA, dirB string)
	start func(b *testing.B, h *netlab.Host, dir string) *netlab.Process
	// settled waits until the daemon on h has taken in its folder's
	// changes, files regular files in all (used before a peer comes back for
	// the catch-up figure).
	settled func(b *testing.B, h *netlab.Host, dir string, files int)
	// restore, when set, measures the restore figure (drive-node only).
	restore func(b *testing.B, stage, dirA, dirB string, a, h *netlab.Host) restoreFigures
	// logDir is where the daemon of dir keeps its history of changes
	// (drive-node's op log, Syncthing's index database), measured by
	// the scale figures.
	logDir func(dir string) string
	// logSettled, when set, waits until the daemon on h has done what it
	// does to its log after a burst of changes (drive-node folds it),
	// before the log is measured.
	logSettled func(b *testing.B, h *netlab.Host, dir string)
}

// figures are one tool's results.
type figures struct {
	editLatency  time.Duration // median of 7
	bigMiBps     float64
	smallPerSec  float64
	catchUp      time.Duration
	rssBothBytes int64 // VmRSS summed: the binary's pages counted twice
	pssBothBytes int64 // PSS summed: memory the two use together
	// The many-files figure: files/s and seconds until B has them all,
	// and the larger of the two hosts' peak RSS (VmHWM summed over each
	// host's processes).
	manyPerSec  float64
	manyTook    time.Duration
	manyPeakRSS int64
	restore     restoreFigures
	delta       deltaFigures
	scale       []scaleFigures // one per -lan.scale size
}

const (
	lanRate     = "1gbit" // the links' rate, as tc takes it
	editSamples = 7
	bigSize     = 512 << 20
	smallCount  = 10000
	smallSize   = 4 << 10
	catchFiles  = 1000
	catchSize   = 2 << 10
)

// Flags for working on one figure (bench/lan.sh passes its arguments on):
// the table is only complete when every tool and figure runs.
var (
	lanTools    = flag.String("lan.tools", "drive-node,Syncthing", "comma-separated tools to run")
	lanOnly     = flag.String("lan.only", "", "comma-separated figures to measure (edit,big,small,catchup,many,restore,delta; scale only when named); all when empty")
	lanVersions = flag.String("lan.versions", "", "drive-node's --versions (on when empty; off to compare)")
	lanMany     = flag.Int("lan.many", 100_000, "files of 1 KiB (100 to a directory) the many-files figure moves in")
	lanProfile  = flag.String("lan.profile", "", "directory for drive-node's CPU and heap profiles and debug logs (A-….cpu, A-….mem, A-….log, B-…)")
	lanExfat    = flag.Bool("lan.exfat", false, "put host B's folder, for every tool, on a real exFAT disk (a loop file mounted with exfat-fuse); B's state stays off it")
	lanEvents   = flag.Bool("lan.events", false, "follow each drive-node daemon with a `drive-node events` client, to measure what one costs")
)

// measures reports whether figure is among -lan.only.
func measures(figure string) bool {
	return *lanOnly == "" || inList(*lanOnly, figure)
}

// inList reports whether item is one of the comma-separated list.
func inList(list, item string) bool {
	return strings.Contains(","+list+",", ","+item+",")
}

// makeProfileDir creates the -lan.profile directory, if one is given:
// the daemons write their profiles and logs into it, and do not start
// when it is missing.
func makeProfileDir(b *testing.B) {
	if *lanProfile != "" {
		if err := os.MkdirAll(*lanProfile, 0o755); err != nil {
			b.Fatalf("-lan.profile: %v", err)
		}
	}
}

func BenchmarkLAN(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("the LAN benchmark needs root for network namespaces (run bench/lan.sh as root)")
	}
	makeProfileDir(b)
	dn := netlab.BuildBinary(b, "github.com/drive-node/drive-node/cmd/drive-node")
	var tools []tool
	for _, tl := range []tool{driveNode(dn), syncthing()} {
		if inList(*lanTools, tl.name) {
			tools = append(tools, tl)
		}
	}
	results := map[string]figures{}
	var iperf, quic float64
	for _, tl := range tools {
		lab := netlab.New(b, 2)
		lab.Shape(b, lanRate)
		if iperf == 0 {
			iperf = iperfMbps(b, lab)
			quic = quicMiBps(b, lab)
		}
		results[tl.name] = run(b, lab, tl)
		b.Logf("%s: %+v", tl.name, results[tl.name])
	}
	printTable(b, iperf, quic, results["drive-node"], results["Syncthing"])
	if inList(*lanOnly, "scale") {
		t := formatScale(results["drive-node"].scale, results["Syncthing"].scale)
		b.Log(t)
		fmt.Printf("\n%s", t)
	}
}

func run(b *testing.B, lab *netlab.Lab, tl tool) figures {
	var f figures
	a, h := lab.Host(0), lab.Host(1)
	root := b.TempDir()
	dirA, dirB, stage := filepath.Join(root, "A"), filepath.Join(root, "B"), filepath.Join(root, "stage")
	for _, d := range []string{dirA, dirB, stage} {
		os.MkdirAll(d, 0o755)
	}
	if *lanExfat {
		// Deferred before the daemons start, so it runs after they are
		// killed.
		defer mountExfat(b, dirB)()
		b.Logf("%s: B's folder %s is on an exFAT disk (exfat-fuse)", tl.name, dirB)
	}
	tl.setup(b, lab, dirA, dirB)
	var started []*netlab.Process
	start := func(b *testing.B, h *netlab.Host, dir string) *netlab.Process {
		p := tl.start(b, h, dir)
		started = append(started, p)
		return p
	}
	start(b, a, dirA)
	pb := start(b, h, dirB)
	defer func() { a.KillAll(); h.KillAll() }()
	if *lanProfile != "" {
		// A stop signal makes drive-node write its profile.
		defer func() {
			for i, p := range started {
				p.Signal(syscall.SIGTERM)
				p.Wait(10 * time.Second)
				os.WriteFile(filepath.Join(*lanProfile, fmt.Sprintf("%s-process-%d.log", tl.name, i)), []byte(p.Log()), 0o644)
			}
		}()
	}

	// Warm up: the two must be connected before anything is timed.
	moveIn(b, stage, dirA, "warmup.txt", []byte("warm"))
	waitFiles(b, dirB, "warmup.txt", 1, 2*time.Minute)

	if measures("edit") {
		f.editLatency = editLatency(b, tl.name, stage, dirA, dirB, "edit")
	}
	if measures("big") {
		report := func() {}
		if *lanProfile != "" {
			report = wireReport(b, tl.name, a, h)
		}
		f.bigMiBps = bigFile(b, tl.name, stage, dirA, dirB)
		report()
	}
	if measures("small") {
		f.smallPerSec, f.rssBothBytes, f.pssBothBytes = smallFiles(b, stage, dirA, dirB, a, h)
	}
	if measures("catchup") {
		f.catchUp = catchUp(b, tl, start, stage, dirA, dirB, a, h, pb)
	}
	if measures("restore") && tl.restore != nil {
		f.restore = tl.restore(b, stage, dirA, dirB, a, h)
	}
	if measures("delta") {
		f.delta = deltaTransfer(b, tl.name, lab, stage, dirA, dirB)
	}
	if measures("many") {
		f.manyPerSec, f.manyTook, f.manyPeakRSS = manyFiles(b, tl.name, *lanMany, stage, dirA, dirB, a, h)
	}
	if inList(*lanOnly, "scale") {
		for _, n := range scaleSizes(b) {
			f.scale = append(f.scale, scaleRun(b, tl, start, n, stage, dirA, dirB, a, h, &pb))
		}
	}
	return f
}

// editLatency returns the median of editSamples edits: a small file
// named prefix-N.txt moved into folder from until it is identical in
// folder to.
func editLatency(b *testing.B, name, stage, from, to, prefix string) time.Duration {
	var lat []time.Duration
	for i := range editSamples {
		file := fmt.Sprintf("%s-%d.txt", prefix, i)
		data := []byte(fmt.Sprintf("edit number %d at %s\n", i, time.Now()))
		moved := moveIn(b, stage, from, file, data)
		for {
			got, err := os.ReadFile(filepath.Join(to, file))
			if err == nil && bytes.Equal(got, data) {
				break
			}
			if time.Since(moved) > time.Minute {
				b.Fatalf("%s: edit %s never arrived", name, file)
			}
			time.Sleep(time.Millisecond)
		}
		lat = append(lat, time.Since(moved))
		time.Sleep(300 * time.Millisecond)
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	return lat[len(lat)/2]
}

// manyFiles moves a library of n files of 1 KiB, 100 to a directory, into
// A's folder at once and returns files/s and seconds until B has them
// all, and the larger of the hosts' peak RSS. A tool that has not
// finished after half an hour gets no figure (the log says how far it
// got) rather than ending the run.
func manyFiles(b *testing.B, name string, n int, stage, dirA, dirB string, hosts ...*netlab.Host) (perSec float64, took time.Duration, peak int64) {
	root := filepath.Join(stage, "many")
	buf := make([]byte, 1024)
	for i := range n {
		p := filepath.Join(root, fmt.Sprintf("d%04d", i/100), fmt.Sprintf("f%06d.txt", i))
		if i%100 == 0 {
			os.MkdirAll(filepath.Dir(p), 0o755)
		}
		copy(buf, fmt.Sprintf("file %07d of the library\n", i))
		if err := os.WriteFile(p, buf, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	syscall.Sync()
	start := time.Now()
	if err := os.Rename(root, filepath.Join(dirA, "many")); err != nil {
		b.Fatal(err)
	}
	const limit = 30 * time.Minute
	for have := 0; have < n; have = countFiles(filepath.Join(dirB, "many")) {
		if time.Since(start) > limit {
			b.Logf("%s: %d of %d files on B after %v; no figure", name, have, n, limit)
			return 0, 0, 0
		}
		time.Sleep(500 * time.Millisecond)
	}
	took = time.Since(start)
	for _, host := range hosts {
		peak = max(peak, hostMem(b, host, "VmHWM"))
	}
	b.Logf("%s: %d files in %.1f s, peak RSS of the larger host %d MiB", name, n, took.Seconds(), peak>>20)
	return float64(n) / took.Seconds(), took, peak
}

// bigFile moves one big file into A's folder and returns MiB/s until B's
// copy is complete and verified.
func bigFile(b *testing.B, name, stage, dirA, dirB string) float64 {
	big := filepath.Join(stage, "big.bin")
	writeRandom(b, big, bigSize)
	syscall.Sync() // the test's own writes are on disk before the clock starts
	start := time.Now()
	if err := os.Rename(big, filepath.Join(dirA, "big.bin")); err != nil {
		b.Fatal(err)
	}
	if *lanProfile != "" {
		b.Logf("%s: big file moved in at %s (to compare with the daemons' logs)", name, start.UTC().Format("15:04:05.000"))
	}
	waitSize(b, filepath.Join(dirB, "big.bin"), bigSize, 10*time.Minute)
	mibps := float64(bigSize>>20) / time.Since(start).Seconds()
	if sum(b, filepath.Join(dirA, "big.bin")) != sum(b, filepath.Join(dirB, "big.bin")) {
		b.Fatalf("%s: big file differs", name)
	}
	return mibps
}

// smallFiles moves a tree of many small files in 100 folders into A's
// folder at once and returns files/s until B has them all, then the
// memory of both hosts' processes (VmRSS and PSS summed).
func smallFiles(b *testing.B, stage, dirA, dirB string, hosts ...*netlab.Host) (perSec float64, rss, pss int64) {
	makeTree(b, filepath.Join(stage, "small"), smallCount, smallSize)
	syscall.Sync()
	start := time.Now()
	if err := os.Rename(filepath.Join(stage, "small"), filepath.Join(dirA, "small")); err != nil {
		b.Fatal(err)
	}
	waitFiles(b, filepath.Join(dirB, "small"), "", smallCount, 20*time.Minute)
	perSec = smallCount / time.Since(start).Seconds()
	time.Sleep(2 * time.Second)
	// Every process of each host counts (Syncthing runs a monitor and a
	// worker process).
	for _, host := range hosts {
		for _, pid := range host.Pids() {
			rss += mem(b, pid, "VmRSS")
			pss += mem(b, pid, "Pss")
			if *lanProfile != "" {
				// Where the memory is: mappings, heap, stacks, binary.
				smaps, _ := os.ReadFile(fmt.Sprintf("/proc/%d/smaps", pid))
				os.WriteFile(filepath.Join(*lanProfile, fmt.Sprintf("smaps-%d", pid)), smaps, 0o644)
			}
		}
	}
	return perSec, rss, pss
}

// catchUp kills B (every process on its host), adds files on A, restarts
// B and returns the time until B has them all.
func catchUp(b *testing.B, tl tool, start func(*testing.B, *netlab.Host, string) *netlab.Process,
	stage, dirA, dirB string, a, h *netlab.Host, pb *netlab.Process) time.Duration {
	h.KillAll()
	pb.Kill()
	makeTree(b, filepath.Join(stage, "catch"), catchFiles, catchSize)
	syscall.Sync()
	if err := os.Rename(filepath.Join(stage, "catch"), filepath.Join(dirA, "catch")); err != nil {
		b.Fatal(err)
	}
	tl.settled(b, a, dirA, countFiles(dirA))
	began := time.Now()
	start(b, h, dirB)
	waitFiles(b, filepath.Join(dirB, "catch"), "", catchFiles, 10*time.Minute)
	return time.Since(began)
}

// moveIn writes data outside the folder, then renames it in: the file
// appears complete at once. It returns the moment of the rename.
func moveIn(b *testing.B, stage, dir, name string, data []byte) time.Time {
	p := filepath.Join(stage, name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		b.Fatal(err)
	}
	t := time.Now()
	if err := os.Rename(p, filepath.Join(dir, name)); err != nil {
		b.Fatal(err)
	}
	return t
}

func writeRandom(b *testing.B, path string, size int) {
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	rng := rand.NewChaCha8([32]byte{7})
	buf := make([]byte, 4<<20)
	for n := 0; n < size; n += len(buf) {
		rng.Read(buf)
		if _, err := f.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
}

func makeTree(b *testing.B, root string, n, size int) {
	rng := rand.NewChaCha8([32]byte{byte(n)})
	buf := make([]byte, size)
	for i := 0; i < n; i++ {
		p := filepath.Join(root, fmt.Sprintf("d%02d", i%100), fmt.Sprintf("f%05d.bin", i))
		if i < 100 {
			os.MkdirAll(filepath.Dir(p), 0o755)
		}
		rng.Read(buf)
		if err := os.WriteFile(p, buf, 0o644); err != nil {
			b.Fatal(err)
		}
	}
}

// waitFiles waits until root holds n regular files (or the one named).
func waitFiles(b *testing.B, root, name string, n int, limit time.Duration) {
	start := time.Now()
	for time.Since(start) < limit {
		counting := time.Now()
		if name != "" {
			if _, err := os.Stat(filepath.Join(root, name)); err == nil {
				return
			}
		} else if countFiles(root) >= n {
			return
		}
		// A count of a million files takes a second of a core: polled
		// every 20 ms it would take that core from the daemons it waits
		// for. Between counts the poll rests four times as long as one.
		time.Sleep(max(20*time.Millisecond, 4*time.Since(counting)))
	}
	b.Fatalf("%s: %d files not there after %v (have %d)", root, n, limit, countFiles(root))
}

func countFiles(root string) int {
	n := 0
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		switch {
		case err != nil:
		case d.IsDir() && p != root && strings.HasPrefix(d.Name(), "."):
			return filepath.SkipDir // drive-node's state, Syncthing's .stfolder
		case d.Type().IsRegular() && !strings.HasPrefix(d.Name(), "."):
			n++
		}
		return nil
	})
	return n
}

func waitSize(b *testing.B, path string, size int64, limit time.Duration) {
	start := time.Now()
	for time.Since(start) < limit {
		if st, err := os.Stat(path); err == nil && st.Size() == size {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	b.Fatalf("%s not complete after %v", path, limit)
}

// wireReport reads what a has sent so far and returns a function that logs
// what it sent since, and where packets were dropped (the shaper's queue
// or a socket) on a and h.
func wireReport(b *testing.B, name string, a, h *netlab.Host) func() {
	sent := func() (bytes, packets int64) { return a.IfaceCounter(b, "tx_bytes"), a.IfaceCounter(b, "tx_packets") }
	b0, p0 := sent()
	return func() {
		b1, p1 := sent()
		b.Logf("%s: big file: A sent %d packets, %.0f bytes each on average, %.4f bytes per file byte",
			name, p1-p0, float64(b1-b0)/float64(max(p1-p0, 1)), float64(b1-b0)/bigSize)
		for _, host := range []*netlab.Host{a, h} {
			b.Logf("%s: %s after the big file:\n%s%s", name, host.Name,
				host.Run(b, "tc", "-s", "qdisc", "show", "dev", host.Iface), host.Run(b, "grep", "^Udp:", "/proc/net/snmp"))
		}
	}
}

func sum(b *testing.B, path string) string {
	out, err := exec.Command("sha256sum", path).Output()
	if err != nil {
		b.Fatal(err)
	}
	return strings.Fields(string(out))[0]
}

func mem(b *testing.B, pid int, field string) int64 {
	n, err := netlab.MemoryBytes(pid, field)
	if err != nil {
		b.Fatal(err)
	}
	return n
}

func iperfMbps(b *testing.B, lab *netlab.Lab) float64 {
	srv := lab.Host(1).Start(b, "iperf3", "-s", "-1")
	defer srv.Kill()
	time.Sleep(300 * time.Millisecond)
	out := lab.Host(0).Run(b, "iperf3", "-c", lab.Host(1).Addr.String(), "-t", "5", "-J")
	var r struct {
		End struct {
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		b.Fatalf("iperf3 output: %v", err)
	}
	return r.End.SumReceived.BitsPerSecond / 1e6
}

// quicMiBps measures drive-node's transport alone on the link: the median
// of three fetches of bigSize random bytes from memory on host 0 to memory
// on host 1 (bench/wireperf), the direction the big file takes. It is what
// QUIC can carry here, the ceiling of the big-file figure.
func quicMiBps(b *testing.B, lab *netlab.Lab) float64 {
	bin := netlab.BuildBinary(b, "github.com/drive-node/drive-node/bench/wireperf")
	a, h := lab.Host(0), lab.Host(1)
	addr := netip.AddrPortFrom(a.Addr, 7700).String()
	srv := a.Start(b, bin, "serve", "--state", b.TempDir(), "--listen", addr, "--size", strconv.Itoa(bigSize))
	defer srv.Kill()
	var hash string
	netlab.Eventually(b, time.Minute, "wireperf serve ready", func() (bool, string) {
		m := regexp.MustCompile(`(?m)^hash (\S+)$`).FindStringSubmatch(srv.Log())
		if m != nil {
			hash = m[1]
		}
		return m != nil, srv.Log()
	})
	state := b.TempDir()
	var rates []float64
	for range 3 {
		out := h.Run(b, bin, "fetch", "--state", state, "--from", addr, "--hash", hash)
		var n int64
		var secs float64
		if _, err := fmt.Sscanf(strings.TrimSpace(out), "%d %f", &n, &secs); err != nil || n != bigSize {
			b.Fatalf("wireperf fetch printed %q", out)
		}
		rates = append(rates, float64(n>>20)/secs)
	}
	sort.Float64s(rates)
	b.Logf("QUIC alone, %d MiB from memory to memory: %.1f MiB/s (runs %.1f)", bigSize>>20, rates[1], rates)
	return rates[1]
}

func driveNode(bin string) tool {
	// state holds the folders whose state is not in the default place,
	// FOLDER/.drive-node: with -lan.exfat B's lives beside its folder,
	// off the exFAT disk.
	state := map[string]string{}
	loc := func(dir string) []string {
		if s, ok := state[dir]; ok {
			return []string{"--folder", dir, "--state", s}
		}
		return []string{"--folder", dir}
	}
	return tool{
		name: "drive-node",
		setup: func(b *testing.B, lab *netlab.Lab, dirA, dirB string) {
			if *lanExfat {
				state[dirB] = dirB + "-state"
			}
			last := func(s string) string {
				l := strings.Split(strings.TrimSpace(s), "\n")
				return l[len(l)-1]
			}
			idA := last(lab.Host(0).Run(b, bin, append([]string{"id"}, loc(dirA)...)...))
			idB := last(lab.Host(1).Run(b, bin, append([]string{"id"}, loc(dirB)...)...))
			lab.Host(0).Run(b, bin, append(append([]string{"pair"}, loc(dirA)...), idB)...)
			lab.Host(1).Run(b, bin, append(append([]string{"pair"}, loc(dirB)...), idA)...)
		},
		start: func(b *testing.B, h *netlab.Host, dir string) *netlab.Process {
			args := append(loc(dir), "--listen", ":22000", "--log-level", "warn")
			if *lanVersions != "" {
				args = append(args, "--versions", *lanVersions)
			}
			if inList(*lanOnly, "scale") {
				// The scale figures rewrite the whole library on
				// purpose; the brake would hold that, as it should
				// when a user's program does it. The log is measured
				// folded: by default a fold waits an hour (--fold-age)
				// so that restore --at replays that hour.
				args = append(args, "--brake", "off", "--fold-age", "0")
			}
			if *lanProfile != "" {
				// Written when the process stops on SIGTERM (see run).
				prof := filepath.Join(*lanProfile, fmt.Sprintf("%s-%d", filepath.Base(dir), time.Now().UnixMilli()))
				args = append(args, "--cpu-profile", prof+".cpu", "--mem-profile", prof+".mem", "--log-level", "debug")
			}
			p := h.Start(b, bin, args...)
			if *lanEvents {
				// Tried again until the daemon's socket answers; its
				// output is read and dropped, as a client would.
				ev := strings.Join(append([]string{bin, "events"}, loc(dir)...), " ")
				h.Start(b, "sh", "-c", "until "+ev+" >/dev/null; do sleep 0.1; done")
			}
			return p
		},
		settled: func(b *testing.B, h *netlab.Host, dir string, files int) {
			// The files are recorded when status shows them tracked.
			start := time.Now()
			for time.Since(start) < time.Minute {
				out, err := h.Command(b.Context(), bin, append(append([]string{"status"}, loc(dir)...), "--json")...).Output()
				var st struct{ Files int }
				if err == nil && json.Unmarshal(out, &st) == nil && st.Files >= files {
					return
				}
				time.Sleep(50 * time.Millisecond)
			}
			b.Fatal("drive-node on A did not record the catch-up files")
		},
		restore: func(b *testing.B, stage, dirA, dirB string, a, h *netlab.Host) restoreFigures {
			return restoreFromPeer(b, bin, loc, stage, dirA, dirB, a, h)
		},
		logDir: func(dir string) string {
			if s, ok := state[dir]; ok {
				return filepath.Join(s, "oplog")
			}
			return filepath.Join(dir, ".drive-node", "oplog")
		},
		logSettled: func(b *testing.B, h *netlab.Host, dir string) {
			// Folded when status says the log was folded at the op
			// count it shows now (a rewrite is due a fold). A pass over
			// a million ops takes a minute or more: the wait is long.
			const limit = 15 * time.Minute
			var want uint64
			start := time.Now()
			for time.Since(start) < limit {
				out, err := h.Command(b.Context(), bin, append(append([]string{"status"}, loc(dir)...), "--json")...).Output()
				var st struct {
					Ops      uint64
					FoldedAt uint64 `json:"folded_at"`
				}
				if err == nil && json.Unmarshal(out, &st) == nil {
					if want == 0 {
						want = st.Ops
					}
					if want > 0 && st.FoldedAt >= want {
						b.Logf("drive-node on %s: log folded %.1f s after the rewrite was in place", dir, time.Since(start).Seconds())
						return
					}
				}
				time.Sleep(200 * time.Millisecond)
			}
			b.Logf("drive-node on %s did not fold its log within %v", dir, limit)
		},
	}
}

// daemons is two paired drive-node daemons, A on host 0 of a lab and B
// on host 1, with their folders and a staging directory beside them.
type daemons struct {
	lab               *netlab.Lab
	bin               string
	dirA, dirB, stage string
	pa, pb            *netlab.Process
}

// startDaemons builds drive-node, makes a lab of n hosts, pairs hosts 0
// and 1 and starts a daemon on each. It skips the benchmark unless run as
// root.
func startDaemons(b *testing.B, n int) daemons {
	if os.Geteuid() != 0 {
		b.Skip("needs root for network namespaces")
	}
	makeProfileDir(b)
	d := daemons{bin: netlab.BuildBinary(b, "github.com/drive-node/drive-node/cmd/drive-node"), lab: netlab.New(b, n)}
	root := b.TempDir()
	d.dirA, d.dirB, d.stage = filepath.Join(root, "A"), filepath.Join(root, "B"), filepath.Join(root, "stage")
	for _, dir := range []string{d.dirA, d.dirB, d.stage} {
		os.MkdirAll(dir, 0o755)
	}
	tl := driveNode(d.bin)
	tl.setup(b, d.lab, d.dirA, d.dirB)
	d.pa, d.pb = tl.start(b, d.lab.Host(0), d.dirA), tl.start(b, d.lab.Host(1), d.dirB)
	return d
}

func syncthing() tool {
	homes := map[string]string{}
	return tool{
		name: "Syncthing",
		setup: func(b *testing.B, lab *netlab.Lab, dirA, dirB string) {
			ids := map[string]string{}
			for _, d := range []string{dirA, dirB} {
				home := d + "-syncthing"
				homes[d] = home
				out, err := exec.Command("syncthing", "-generate="+home).CombinedOutput()
				if err != nil {
					b.Fatalf("syncthing -generate: %v\n%s", err, out)
				}
				m := regexp.MustCompile(`Device ID: ([A-Z0-9-]+)`).FindSubmatch(out)
				if m == nil {
					b.Fatalf("no device ID in %s", out)
				}
				ids[d] = string(m[1])
			}
			for _, d := range []string{dirA, dirB} {
				cfg := fmt.Sprintf(syncthingConfig, d, ids[dirA], ids[dirB],
					ids[dirA], lab.Host(0).Addr, ids[dirB], lab.Host(1).Addr)
				if err := os.WriteFile(filepath.Join(homes[d], "config.xml"), []byte(cfg), 0o600); err != nil {
					b.Fatal(err)
				}
			}
		},
		start: func(b *testing.B, h *netlab.Host, dir string) *netlab.Process {
			return h.Start(b, "env", "STNORESTART=1", "STNOUPGRADE=1", "syncthing", "-home="+homes[dir], "-no-browser", "-no-restart")
		},
		settled: func(b *testing.B, h *netlab.Host, dir string, files int) {
			time.Sleep(3 * time.Second) // watcher delay 1 s, then its scan
		},
		logDir: func(dir string) string { return filepath.Join(homes[dir], "index-v0.14.0.db") },
	}
}

// syncthingConfig: watcher delay 1 s; global discovery, local discovery
// (static addresses instead), relays, NAT traversal, usage reporting,
// crash reporting and upgrades off.
const syncthingConfig = `<configuration version="36">
    <folder id="bench" label="bench" path="%s" type="sendreceive" rescanIntervalS="3600" fsWatcherEnabled="true" fsWatcherDelayS="1" ignorePerms="false" autoNormalize="true">
        <filesystemType>basic</filesystemType>
        <device id="%s" introducedBy=""></device>
        <device id="%s" introducedBy=""></device>
    </folder>
    <device id="%s" name="A" compression="metadata" introducer="false" skipIntroductionRemovals="false" introducedBy="">
        <address>tcp://%s:22000</address>
    </device>
    <device id="%s" name="B" compression="metadata" introducer="false" skipIntroductionRemovals="false" introducedBy="">
        <address>tcp://%s:22000</address>
    </device>
    <gui enabled="true" tls="false"><address>127.0.0.1:8384</address><apikey>drive-node-bench</apikey></gui>
    <options>
        <listenAddress>tcp://0.0.0.0:22000</listenAddress>
        <globalAnnounceEnabled>false</globalAnnounceEnabled>
        <localAnnounceEnabled>false</localAnnounceEnabled>
        <relaysEnabled>false</relaysEnabled>
        <natEnabled>false</natEnabled>
        <urAccepted>-1</urAccepted>
        <startBrowser>false</startBrowser>
        <autoUpgradeIntervalH>0</autoUpgradeIntervalH>
        <crashReportingEnabled>false</crashReportingEnabled>
    </options>
</configuration>
`

func printTable(b *testing.B, iperf, quic float64, d, s figures) {
	t := formatTable(iperf, quic, d, s)
	if measures("delta") {
		t += formatDeltaTable(d.delta, s.delta)
	}
	b.Log(t)
	fmt.Print(t)
}

// formatTable is the benchmark's table: each tool's figures, their ratio,
// and whether drive-node meets each target. A figure this run did not
// measure (zero) shows as a dash and judges nothing.
func formatTable(iperf, quic float64, d, s figures) string {
	var w strings.Builder
	iperfMiBps := iperf * 1e6 / 8 / (1 << 20)
	fmt.Fprintf(&w, "\nLAN benchmark, %s, two namespace hosts on one machine, links shaped to 1 Gbit/s\n", time.Now().UTC().Format("2006-01-02"))
	fmt.Fprintf(&w, "iperf3 TCP: %.0f Mbit/s (%.1f MiB/s)\n", iperf, iperfMiBps)
	fmt.Fprintf(&w, "drive-node's QUIC transport alone, %d MiB memory to memory: %.1f MiB/s (%.1f %% of iperf3)\n\n", bigSize>>20, quic, 100*quic/iperfMiBps)
	fmt.Fprintf(&w, "| figure | drive-node | Syncthing | ratio | target |\n|---|---|---|---|---|\n")
	secs := func(t time.Duration) float64 { return t.Seconds() }
	mib := func(n int64) float64 { return float64(n >> 20) }
	type row struct {
		figure, format string
		ours, theirs   float64
		ratio          func(ours, theirs float64) string
		target         string
		met            bool
		vsSyncthing    bool // the target compares with Syncthing's figure
		ofLink         bool // also shown as a share of the iperf3 figure
		// notTheirs, when set, is what Syncthing's and the ratio's cells
		// say: Syncthing has no such feature.
		notTheirs string
	}
	rows := []row{
		{figure: fmt.Sprintf("edit latency, median of %d", editSamples), format: "%.3f s",
			ours: secs(d.editLatency), theirs: secs(s.editLatency), ratio: faster,
			target: "≤ 0.10 s", met: d.editLatency <= 100*time.Millisecond},
		{figure: "512 MiB file", format: "%.1f MiB/s", ours: d.bigMiBps, theirs: s.bigMiBps, ratio: times,
			target: "≥ 95 % of iperf3", met: d.bigMiBps >= 0.95*iperfMiBps, ofLink: true},
		{figure: "10,000 × 4 KiB files", format: "%.0f files/s", ours: d.smallPerSec, theirs: s.smallPerSec, ratio: times,
			target: "≥ 3.5× Syncthing", met: d.smallPerSec >= 3.5*s.smallPerSec, vsSyncthing: true},
		{figure: "catch-up of 1,000 files", format: "%.2f s", ours: secs(d.catchUp), theirs: secs(s.catchUp), ratio: faster,
			target: "≤ 0.8 s and ≥ 4×", met: d.catchUp <= 800*time.Millisecond && s.catchUp >= 4*d.catchUp, vsSyncthing: true},
		{figure: fmt.Sprintf("%s × 1 KiB files moved in at once", thousands(*lanMany)), format: "%.0f files/s", ours: d.manyPerSec, theirs: s.manyPerSec, ratio: times,
			target: "every file arrives", met: d.manyPerSec > 0},
		{figure: fmt.Sprintf("%s files: seconds until all are on B", thousands(*lanMany)), format: "%.0f s", ours: secs(d.manyTook), theirs: secs(s.manyTook), ratio: faster,
			target: "every file arrives", met: d.manyTook > 0},
		{figure: fmt.Sprintf("%s files: peak RSS of the larger host", thousands(*lanMany)), format: "%.0f MiB", ours: mib(d.manyPeakRSS), theirs: mib(s.manyPeakRSS), ratio: times,
			target: "≤ 80 MiB per daemon", met: d.manyPeakRSS <= 80<<20},
		{figure: fmt.Sprintf("restore %s × 4 KiB files from a peer's store", thousands(restoreFiles)), format: "%.2f s", ours: secs(d.restore.small), notTheirs: "no restore from a peer",
			target: "every file back", met: d.restore.small > 0},
		{figure: fmt.Sprintf("restore one %d MiB file from a peer's store", bigSize>>20), format: "%.2f s", ours: secs(d.restore.big), notTheirs: "no restore from a peer",
			target: "the file back", met: d.restore.big > 0},
		{figure: "memory of both daemons, PSS (shared binary pages once)", format: "%.0f MiB",
			ours: mib(d.pssBothBytes), theirs: mib(s.pssBothBytes), ratio: times,
			target: "≤ 80 MiB", met: d.pssBothBytes <= 80<<20},
		{figure: "memory of both daemons, VmRSS summed", format: "%.0f MiB",
			ours: mib(d.rssBothBytes), theirs: mib(s.rssBothBytes), ratio: times,
			target: "≤ 80 MiB", met: d.rssBothBytes <= 80<<20},
	}
	for _, r := range rows {
		ours := cell(r.format, r.ours)
		if r.ofLink && r.ours > 0 {
			ours += fmt.Sprintf(" (%.0f %% of iperf3)", 100*r.ours/iperfMiBps)
		}
		verdict := r.target
		switch {
		case r.ours == 0:
			verdict += " — not measured"
		case r.vsSyncthing && r.theirs == 0:
			verdict += " — Syncthing not measured"
		case r.met:
			verdict += " — met"
		default:
			verdict += " — not met"
		}
		theirs, ratio := r.notTheirs, "n/a"
		if theirs == "" {
			theirs, ratio = cell(r.format, r.theirs), r.ratio(r.ours, r.theirs)
		}
		fmt.Fprintf(&w, "| %s | %s | %s | %s | %s |\n", r.figure, ours, theirs, ratio, verdict)
	}
	return w.String()
}

// thousands writes n with commas between groups of three digits.
func thousands(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// cell formats a figure, or a dash for one this run did not measure.
func cell(format string, v float64) string {
	if v == 0 {
		return "—"
	}
	return fmt.Sprintf(format, v)
}

// times is the ratio of two figures, ours over theirs.
func times(ours, theirs float64) string {
	if ours == 0 || theirs == 0 {
		return "—"
	}
	return fmt.Sprintf("%.2f×", ours/theirs)
}

// faster is the ratio of two durations (in any unit), theirs over ours.
func faster(ours, theirs float64) string {
	if ours == 0 || theirs == 0 {
		return "—"
	}
	return fmt.Sprintf("%.1f× faster", theirs/ours)
}
