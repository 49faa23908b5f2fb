package bench

import (
	"strings"
	"testing"
	"time"
)

func TestTableJudgesTargets(t *testing.T) {
	const iperf = 956.0 // Mbit/s: 114.0 MiB/s
	good := figures{editLatency: 70 * time.Millisecond, bigMiBps: 110, smallPerSec: 3500,
		catchUp: 400 * time.Millisecond, rssBothBytes: 77 << 20, pssBothBytes: 54 << 20,
		manyPerSec: 3000, manyTook: 33 * time.Second, manyPeakRSS: 60 << 20,
		restore: restoreFigures{small: 1500 * time.Millisecond, big: 6 * time.Second}}
	syncthing := figures{editLatency: 700 * time.Millisecond, bigMiBps: 78, smallPerSec: 800,
		catchUp: 3 * time.Second, rssBothBytes: 190 << 20, pssBothBytes: 140 << 20,
		manyPerSec: 330, manyTook: 303 * time.Second, manyPeakRSS: 150 << 20}
	bad := figures{editLatency: 150 * time.Millisecond, bigMiBps: 100, smallPerSec: 2000,
		catchUp: 900 * time.Millisecond, rssBothBytes: 81 << 20, pssBothBytes: 81 << 20}

	cases := []struct {
		name   string
		d, s   figures
		rows   map[string]string // figure → what its row must say
		absent []string
	}{
		{"all met", good, syncthing, map[string]string{
			"edit latency":                  "| 0.070 s | 0.700 s | 10.0× faster | ≤ 0.10 s — met |",
			"512 MiB file":                  "| 110.0 MiB/s (97 % of iperf3) | 78.0 MiB/s | 1.41× | ≥ 95 % of iperf3 — met |",
			"10,000 × 4 KiB":                "| 3500 files/s | 800 files/s | 4.38× | ≥ 3.5× Syncthing — met |",
			"catch-up":                      "| 0.40 s | 3.00 s | 7.5× faster | ≤ 0.8 s and ≥ 4× — met |",
			"memory of both daemons, PSS":   "| 54 MiB | 140 MiB | 0.39× | ≤ 80 MiB — met |",
			"memory of both daemons, VmRSS": "| 77 MiB | 190 MiB | 0.41× | ≤ 80 MiB — met |",
			"100,000 × 1 KiB files":         "| 3000 files/s | 330 files/s | 9.09× | every file arrives — met |",
			"100,000 files: seconds":        "| 33 s | 303 s | 9.2× faster | every file arrives — met |",
			"100,000 files: peak RSS":       "| 60 MiB | 150 MiB | 0.40× | ≤ 80 MiB per daemon — met |",
			"restore 1,000":                 "| 1.50 s | no restore from a peer | n/a | every file back — met |",
			"restore one 512 MiB":           "| 6.00 s | no restore from a peer | n/a | the file back — met |",
		}, []string{"not met", "| — |"}},
		{"all missed", bad, syncthing, map[string]string{
			"edit latency":                  "≤ 0.10 s — not met",
			"512 MiB file":                  "(88 % of iperf3)",
			"10,000 × 4 KiB":                "2.50× | ≥ 3.5× Syncthing — not met",
			"catch-up":                      "3.3× faster | ≤ 0.8 s and ≥ 4× — not met",
			"memory of both daemons, VmRSS": "≤ 80 MiB — not met",
			"100,000 × 1 KiB files":         "| — | 330 files/s | — | every file arrives — not measured |",
			"restore 1,000":                 "| — | no restore from a peer | n/a | every file back — not measured |",
		}, []string{"— met"}},
		{"drive-node alone", good, figures{}, map[string]string{
			"edit latency":   "| 0.070 s | — | — | ≤ 0.10 s — met |",
			"10,000 × 4 KiB": "| 3500 files/s | — | — | ≥ 3.5× Syncthing — Syncthing not measured |",
			"catch-up":       "≤ 0.8 s and ≥ 4× — Syncthing not measured",
		}, []string{"Inf", "NaN"}},
		{"one figure", figures{bigMiBps: 105}, figures{}, map[string]string{
			"512 MiB file":                  "| 105.0 MiB/s (92 % of iperf3) | — | — | ≥ 95 % of iperf3 — not met |",
			"edit latency":                  "| — | — | — | ≤ 0.10 s — not measured |",
			"memory of both daemons, VmRSS": "| — | — | — | ≤ 80 MiB — not measured |",
		}, []string{"Inf", "NaN", "— met"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			table := formatTable(iperf, 110, c.d, c.s)
			for figure, want := range c.rows {
				line := rowOf(table, figure)
				if !strings.Contains(line, want) {
					t.Errorf("row %q = %q, want it to contain %q", figure, line, want)
				}
			}
			for _, never := range c.absent {
				for _, line := range strings.Split(table, "\n") {
					if strings.HasPrefix(line, "| ") && !strings.HasPrefix(line, "| figure") && strings.Contains(line, never) {
						t.Errorf("row %q contains %q", line, never)
					}
				}
			}
		})
	}
}

// rowOf returns the table row whose figure starts with prefix.
func rowOf(table, prefix string) string {
	for _, line := range strings.Split(table, "\n") {
		if strings.HasPrefix(line, "| "+prefix) {
			return line
		}
	}
	return ""
}
