package node

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/drive-node/drive-node/node/internal/ignore"
)

// BenchmarkSmallFiles moves a tree of 10,000 files of 4 KiB in 100
// folders into one node's folder and reports files/s until a second node,
// over QUIC on loopback, holds them all: the whole path of a local change
// (watch, hash, log, record, send) and of a received one (fetch, place,
// record), both nodes in this process. The LAN benchmark (bench/lan.sh)
// measures the same between two hosts.
//
// With versions=off the receiver keeps no version store; overwrite=true
// rewrites every file after the first sync, so the receiver keeps each
// replaced one (what the store costs where it works).
func BenchmarkSmallFiles(b *testing.B) {
	for _, overwrite := range []bool{false, true} {
		for _, versions := range []string{"on", "off"} {
			b.Run(fmt.Sprintf("overwrite=%v/versions=%s", overwrite, versions), func(b *testing.B) {
				benchSmallFiles(b, versions, overwrite, nil)
			})
		}
	}
}

// BenchmarkSmallFilesRules is BenchmarkSmallFiles (versions on, no
// overwrite) with no ignore rules at all, with the defaults, and with the
// defaults and a .driveignore of common rules; besides files/s it reports
// the CPU time both nodes spent per 1,000 files, which a busy machine
// disturbs less than the wall-clock rate.
func BenchmarkSmallFilesRules(b *testing.B) {
	const common = "node_modules/\n*.log\n/build/\n**/cache/\n*.o\n*.tmp\n.idea/\n__pycache__/\n*.pyc\n!keep.log\n(?i)*.bak\n"
	for _, c := range []struct {
		name string
		m    *ignore.Matcher
	}{
		{"none", ignore.New()},
		{"defaults", ignore.New(ignore.Defaults())},
		{"defaults+common", ignore.New(ignore.Defaults(), ignore.Parse(IgnoreFileName, []byte(common)))},
	} {
		b.Run("rules="+c.name, func(b *testing.B) { benchSmallFiles(b, "on", false, c.m) })
	}
}

// cpuTime is the CPU time the process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchSmallFiles runs BenchmarkSmallFiles' case; rules, if not nil, are
// the ignore rules both nodes use.
func benchSmallFiles(b *testing.B, versions string, overwrite bool, rules *ignore.Matcher) {
	const files, size = 10000, 4 << 10
	a, c := b.TempDir(), b.TempDir()
	pairFolders(b, a, c)
	addrA, addrC := freeUDPPort(b), freeUDPPort(b)
	setup := func(n *Node) {
		n.cfg.brake = nil // the overwrites are a mass change on purpose
		if versions == "off" {
			n.cfg.schedule = nil
		}
		if rules != nil {
			n.ignoreRules.Store(&ignoreRules{m: rules})
		}
	}
	startNodeWith(b, a, addrA, setup, addrC)
	startNodeWith(b, c, addrC, setup, addrA)
	rng := rand.NewChaCha8([32]byte{1})
	buf := make([]byte, size)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		stage := filepath.Join(b.TempDir(), "tree")
		for j := 0; j < files; j++ {
			p := filepath.Join(stage, fmt.Sprintf("d%02d", j%100), fmt.Sprintf("f%05d.bin", j))
			os.MkdirAll(filepath.Dir(p), 0o755)
			rng.Read(buf)
			if err := os.WriteFile(p, buf, 0o644); err != nil {
				b.Fatal(err)
			}
		}
		name := fmt.Sprintf("run%d", i)
		b.StartTimer()
		start, cpu := time.Now(), cpuTime()
		if err := os.Rename(stage, filepath.Join(a, name)); err != nil {
			b.Fatal(err)
		}
		for countRegular(filepath.Join(c, name)) < files {
			if time.Since(start) > 5*time.Minute {
				b.Fatalf("%d of %d files arrived in 5 minutes", countRegular(filepath.Join(c, name)), files)
			}
			time.Sleep(10 * time.Millisecond)
		}
		if overwrite {
			// Every file gets a new content of the same size, written in
			// place: the receiver replaces (and keeps) each.
			b.StopTimer()
			last := filepath.Join(a, name, "d99", "f09999.bin")
			rng.Read(buf)
			want := string(buf)
			b.StartTimer()
			start = time.Now()
			for j := 0; j < files; j++ {
				p := filepath.Join(a, name, fmt.Sprintf("d%02d", j%100), fmt.Sprintf("f%05d.bin", j))
				if p != last {
					rng.Read(buf)
				} else {
					copy(buf, want)
				}
				if err := os.WriteFile(p, buf, 0o644); err != nil {
					b.Fatal(err)
				}
			}
			for got, _ := os.ReadFile(filepath.Join(c, name, "d99", "f09999.bin")); string(got) != want; got, _ = os.ReadFile(filepath.Join(c, name, "d99", "f09999.bin")) {
				if time.Since(start) > 5*time.Minute {
					b.Fatal("the overwrites did not arrive in 5 minutes")
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
		b.ReportMetric(files/time.Since(start).Seconds(), "files/s")
		if !overwrite {
			b.ReportMetric(float64((cpuTime()-cpu).Milliseconds())/(files/1000), "cpu-ms/kfile")
		}
	}
}

// countRegular counts the regular files under root, drive-node's own left
// out.
func countRegular(root string) int {
	n := 0
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() && filepath.Base(p)[0] != '.' {
			n++
		}
		return nil
	})
	return n
}

// BenchmarkRetryPass measures the pass the apply loop runs every 3 s while
// ops wait: n ops of one peer wait behind its first op, whose content no
// device has. It reports the time per pending op, and B/op is what one
// pass allocates: what a peer's pending ops cost the node while they
// wait.
func BenchmarkRetryPass(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		b.Run(fmt.Sprintf("pending=%d", n), func(b *testing.B) {
			ctx := context.Background()
			r, err := newReplica(ctx, 0, simDBDir(b), newSimClock(), func() []*replica { return nil })
			if err != nil {
				b.Fatal(err)
			}
			defer r.close()
			peer := made(1)
			ops := peerOps(peer, 1, n, 1, func(i int) string { return fmt.Sprintf("d%03d/f%06d", i%1000, i) }, func(i int) string {
				if i == 0 {
					return "the content that no device has, for BenchmarkRetryPass"
				}
				return "every other file"
			})
			insert(b, r, ops)
			// The first pass finds the op blocked; the loop retries it.
			if err := r.node.applyPending(ctx); !errors.Is(err, ErrContentNowhere) {
				b.Fatalf("the pass ended with %v, want the content missing", err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if err := r.node.applyPending(ctx); !errors.Is(err, ErrContentNowhere) {
					b.Fatalf("the pass ended with %v, want the content missing", err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/pending-op")
		})
	}
}
