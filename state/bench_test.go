package state

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/drive-node/drive-node/certs"
	"github.com/drive-node/drive-node/content"
	"github.com/drive-node/drive-node/vclock"
)

// benchFile returns the i'th file of a folder walked in order, as an
// initial scan produces them: paths ascend, hashes are random.
func benchFile(i int) File {
	p := fmt.Sprintf("dir%03d/sub/file%07d.dat", i/2000, i)
	return File{
		Path: p, Hash: content.Sum([]byte(p)), Size: int64(i), Mode: 0o644, MTime: int64(i) * 1e9, Inode: uint64(i),
		Version: vclock.Vector{}.With(dev(1), uint64(i)).With(dev(2), 3), Lamport: uint64(i), Origin: dev(1), Seq: uint64(i),
	}
}

// TestApplyTenThousand applies the hot path's typical large batch.
func TestApplyTenThousand(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	const n = 10000
	b := Batch{Files: make([]File, n), Applied: map[certs.DeviceID]uint64{dev(1): n}}
	for i := range b.Files {
		b.Files[i] = benchFile(i + 1)
	}
	start := time.Now()
	if err := db.Apply(ctx, b); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d rows in one Apply: %v", n, time.Since(start))
	st, err := db.Stats(ctx)
	if err != nil || st.Files != n || st.Ops != n {
		t.Fatalf("Stats = %+v, %v", st, err)
	}
}

func BenchmarkApply(b *testing.B) {
	ctx := context.Background()
	db := newDB(b)
	const batch = 1000
	rows := 0
	for b.Loop() {
		bt := Batch{Files: make([]File, batch), Applied: map[certs.DeviceID]uint64{}}
		for i := range bt.Files {
			rows++
			bt.Files[i] = benchFile(rows)
		}
		bt.Applied[dev(1)] = uint64(rows)
		if err := db.Apply(ctx, bt); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
}

func BenchmarkApplySingle(b *testing.B) {
	ctx := context.Background()
	db := newDB(b)
	rows := 0
	for b.Loop() {
		rows++
		if err := db.Apply(ctx, Batch{Files: []File{benchFile(rows)}, Applied: map[certs.DeviceID]uint64{dev(1): uint64(rows)}}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
}

// recordedDB returns a database holding the first n benchFiles, and
// them.
func recordedDB(b *testing.B, n int) (*DB, []File) {
	b.Helper()
	db := newDB(b)
	bt := Batch{Files: make([]File, n)}
	for i := range bt.Files {
		bt.Files[i] = benchFile(i + 1)
	}
	if err := db.Apply(context.Background(), bt); err != nil {
		b.Fatal(err)
	}
	return db, bt.Files
}

// BenchmarkLookUpContent finds the file holding one content among
// 10,000 records, as a daemon does for every content a peer asks for:
// with every column (FilesByHash) and with the three it needs
// (ContentFiles).
func BenchmarkLookUpContent(b *testing.B) {
	ctx := context.Background()
	const n = 10000
	db, files := recordedDB(b, n)
	b.Run("FilesByHash", func(b *testing.B) {
		i := 0
		for b.Loop() {
			if fs, err := db.FilesByHash(ctx, files[i%n].Hash); err != nil || len(fs) != 1 {
				b.Fatal(len(fs), err)
			}
			i++
		}
	})
	b.Run("ContentFiles", func(b *testing.B) {
		i := 0
		for b.Loop() {
			if fs, err := db.ContentFiles(ctx, files[i%n].Hash); err != nil || len(fs) != 1 {
				b.Fatal(len(fs), err)
			}
			i++
		}
	})
	// A peer's batch of small contents, looked up at once: one op of
	// the benchmark is one content.
	b.Run("ContentFilesOf", func(b *testing.B) {
		const batch = 256
		hs := make([]content.Hash, 0, batch)
		i := 0
		for b.Loop() {
			hs = append(hs, files[i%n].Hash)
			i++
			if len(hs) == batch {
				if got, err := db.ContentFilesOf(ctx, hs); err != nil || len(got) != batch {
					b.Fatal(len(got), err)
				}
				hs = hs[:0]
			}
		}
	})
}

// BenchmarkLookUpNewPaths looks up paths nobody recorded among 10,000
// records, as a daemon does for each file of a directory moved into its
// folder: one by one (File) and a directory's worth at once (FilesAt).
// One op of the benchmark is one path.
func BenchmarkLookUpNewPaths(b *testing.B) {
	ctx := context.Background()
	db, _ := recordedDB(b, 10000)
	path := func(i int) string { return fmt.Sprintf("moved-in/%07d", i) }
	b.Run("File", func(b *testing.B) {
		i := 0
		for b.Loop() {
			if _, ok, err := db.File(ctx, path(i)); err != nil || ok {
				b.Fatal(ok, err)
			}
			i++
		}
	})
	b.Run("FilesAt", func(b *testing.B) {
		const batch = 1000
		paths := make([]string, 0, batch)
		i := 0
		for b.Loop() {
			paths = append(paths, path(i))
			i++
			if len(paths) == batch {
				if got, err := db.FilesAt(ctx, paths); err != nil || len(got) != 0 {
					b.Fatal(len(got), err)
				}
				paths = paths[:0]
			}
		}
	})
}

// BenchmarkChildrenOfRoot lists the folder's children among 100,000
// records in 50 directories of 2,000 (benchFile's layout, each holding
// one subdirectory), as a walk of the digest or a scan does for every
// directory: one query per subdirectory.
func BenchmarkChildrenOfRoot(b *testing.B) {
	db, _ := recordedDB(b, 100_000)
	ctx := context.Background()
	for b.Loop() {
		n := 0
		if err := db.Children(ctx, "", func(Child) error { n++; return nil }); err != nil || n != 51 {
			b.Fatalf("%d children, %v", n, err)
		}
	}
}

// BenchmarkRecordLibrary records a library of 100,000 files in batches
// of 1,000, as an apply does ("first"), then records every file again
// with new content ("rewrite"). Each iteration is the whole library. It
// reports the bytes the process wrote and read per record (the WAL's
// frames, the checkpoint's pages, and pages read back), where the system
// counts them (Linux's /proc/self/io). Most of both go to the files_by_hash
// index: content hashes are random, so every record dirties a page of it
// that the commit writes whole (with the index dropped, an experiment
// wrote and read over 90 % less).
//
//	go test ./state -run '^$' -bench RecordLibrary -benchtime 2x
func BenchmarkRecordLibrary(b *testing.B) {
	const n, batch = 100_000, 1000
	ctx := context.Background()
	// record records every file of the library, as version round, into db
	// and returns the bytes the process wrote and read meanwhile.
	record := func(b *testing.B, db *DB, round int) (written, read int64) {
		w0, r0 := processIO("wchar"), processIO("rchar")
		for lo := 0; lo < n; lo += batch {
			bt := Batch{Files: make([]File, batch), Applied: map[certs.DeviceID]uint64{}}
			for i := range bt.Files {
				f := benchFile(lo + i + 1)
				f.Hash = content.Sum(fmt.Appendf(nil, "%s, version %d", f.Path, round))
				f.Seq = uint64(round*n + lo + i + 1)
				bt.Files[i] = f
			}
			bt.Applied[dev(1)] = bt.Files[batch-1].Seq
			if err := db.Apply(ctx, bt); err != nil {
				b.Fatal(err)
			}
		}
		return processIO("wchar") - w0, processIO("rchar") - r0
	}
	report := func(b *testing.B, written, read int64) {
		rows := float64(b.N * n)
		b.ReportMetric(rows/b.Elapsed().Seconds(), "rows/s")
		if processIO("wchar") >= 0 {
			b.ReportMetric(float64(written)/rows, "written-B/row")
			b.ReportMetric(float64(read)/rows, "read-B/row")
		}
	}
	b.Run("first", func(b *testing.B) {
		var written, read int64
		for b.Loop() {
			b.StopTimer()
			db := newDB(b) // each pass records into an empty database
			b.StartTimer()
			w, r := record(b, db, 0)
			written, read = written+w, read+r
		}
		report(b, written, read)
	})
	b.Run("rewrite", func(b *testing.B) {
		db := newDB(b)
		record(b, db, 0)
		var written, read int64
		round := 0
		for b.Loop() {
			round++
			w, r := record(b, db, round)
			written, read = written+w, read+r
		}
		report(b, written, read)
	})
}

// processIO returns the counter field of /proc/self/io, or -1 where the
// system keeps none.
func processIO(field string) int64 {
	raw, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return -1
	}
	for line := range strings.Lines(string(raw)) {
		if v, ok := strings.CutPrefix(line, field+": "); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				return -1
			}
			return n
		}
	}
	return -1
}
