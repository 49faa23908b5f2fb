package retention

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// now is the fixed "current" time of the tests: not on an hour, day or
// week boundary, so the tiers' edges cut through periods.
var now = time.Date(2024, time.March, 15, 12, 34, 56, 789, time.UTC)

func TestDefaultString(t *testing.T) {
	const want = "1h:all,1d:1h,30d:1d,1y:1w"
	if got := Default().String(); got != want {
		t.Fatalf("Default().String() = %q, want %q", got, want)
	}
	s, err := Parse(want)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(s, Default()) {
		t.Fatalf("Parse(%q) = %v, want %v", want, s, Default())
	}
}

func TestParseStringRoundTrip(t *testing.T) {
	for _, c := range []struct {
		in   string
		want Schedule
		str  string // String of the parsed schedule
	}{
		{"1h:all", Schedule{{time.Hour, 0}}, "1h:all"},
		{"1d:all", Schedule{{Day, 0}}, "1d:all"},
		{" 2h:all , 7d:1d ", Schedule{{2 * time.Hour, 0}, {Week, Day}}, "2h:all,1w:1d"},
		{"24h:1h,2w:12h,2y:4w", Schedule{{Day, time.Hour}, {2 * Week, 12 * time.Hour}, {2 * Year, 4 * Week}}, "1d:1h,2w:12h,2y:4w"},
		{"90s:all,1.5d:5m", Schedule{{90 * time.Second, 0}, {36 * time.Hour, 5 * time.Minute}}, "90s:all,36h:5m"},
		{"365d:1w", Schedule{{Year, Week}}, "1y:1w"},
		{"3w:2d", Schedule{{3 * Week, 2 * Day}}, "3w:2d"},
		// Lengths whose Go spelling has a zero digit before its unit.
		{"10m:all", Schedule{{10 * time.Minute, 0}}, "10m:all"},
		{"30m:all,1d:10m", Schedule{{30 * time.Minute, 0}, {Day, 10 * time.Minute}}, "30m:all,1d:10m"},
		{"1h30m:all,2d:1h10m", Schedule{{90 * time.Minute, 0}, {2 * Day, 70 * time.Minute}}, "90m:all,2d:70m"},
		{"20s:all,1m50s:10s", Schedule{{20 * time.Second, 0}, {110 * time.Second, 10 * time.Second}}, "20s:all,110s:10s"},
		{"500ms:all", Schedule{{500 * time.Millisecond, 0}}, "500ms:all"},
	} {
		t.Run(c.in, func(t *testing.T) {
			s, err := Parse(c.in)
			if err != nil {
				t.Fatalf("Parse(%q): %v", c.in, err)
			}
			if !slices.Equal(s, c.want) {
				t.Fatalf("Parse(%q) = %v, want %v", c.in, s, c.want)
			}
			str := s.String()
			if str != c.str {
				t.Errorf("String() = %q, want %q", str, c.str)
			}
			back, err := Parse(str)
			if err != nil {
				t.Fatalf("Parse(String()) = Parse(%q): %v", str, err)
			}
			if !slices.Equal(back, s) {
				t.Fatalf("Parse(%q) = %v, want %v", str, back, s)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	for _, c := range []struct {
		in, names string // names: what the error must quote
	}{
		{"", `""`},
		{"1h", `"1h"`},
		{"1h:all,1d", `"1d"`},
		{"1h:all,,1d:1h", `""`},
		{"0h:all", `"0h"`},
		{"0d:all", `"0d"`},
		{"-1h:all", `"-1h"`},
		{"-2d:1h", `"-2d"`},
		{"1h:all,1h:1m", "1h"},
		{"1d:all,2h:1m", "2h"},
		{"1x:all", `"1x"`},
		{"1h:all,1d:5q", `"5q"`},
		{"1dd:all", `"1dd"`},
		{"h:all", `"h"`},
		{"1d:0", `"0"`},
		{"1d:0h", `"0h"`},
		{"1d:0d", `"0d"`},
		{"1d:-1h", `"-1h"`},
		{"1d:", `""`},
	} {
		t.Run(c.in, func(t *testing.T) {
			s, err := Parse(c.in)
			if err == nil {
				t.Fatalf("Parse(%q) = %v, want an error", c.in, s)
			}
			if s != nil {
				t.Errorf("Parse(%q) returned %v with its error", c.in, s)
			}
			if !strings.Contains(err.Error(), c.names) {
				t.Errorf("Parse(%q) error %q does not name %s", c.in, err, c.names)
			}
		})
	}
}

// idSet returns ids as a set.
func idSet(ids []int64) map[int64]bool {
	set := make(map[int64]bool, len(ids))
	for _, id := range ids {
		set[id] = true
	}
	return set
}

// kept returns the IDs of the items Drop does not drop, checking that
// Drop names only items it was given, each once.
func kept(t *testing.T, s Schedule, at time.Time, items []Item, maxBytes int64) map[int64]bool {
	t.Helper()
	drop := Drop(s, at, items, maxBytes)
	dropped := idSet(drop)
	if len(dropped) != len(drop) {
		t.Fatalf("Drop returned an ID twice: %v", drop)
	}
	out := map[int64]bool{}
	for _, it := range items {
		if !dropped[it.ID] {
			out[it.ID] = true
		}
		delete(dropped, it.ID)
	}
	if len(dropped) > 0 {
		t.Fatalf("Drop returned IDs of no item: %v", dropped)
	}
	return out
}

func sameSet(t *testing.T, what string, got, want map[int64]bool) {
	t.Helper()
	var missing, extra []int64
	for id := range want {
		if !got[id] {
			missing = append(missing, id)
		}
	}
	for id := range got {
		if !want[id] {
			extra = append(extra, id)
		}
	}
	slices.Sort(missing)
	slices.Sort(extra)
	if len(missing) > 0 || len(extra) > 0 {
		t.Fatalf("%s: %d kept, want %d; missing %v; unexpected %v", what, len(got), len(want), missing, extra)
	}
}

func TestDefaultKeepsWhatItPromises(t *testing.T) {
	const step = 10 * time.Minute
	var items []Item
	for k := 0; time.Duration(k)*step <= 400*Day; k++ {
		items = append(items, Item{
			ID:      int64(k + 1),
			Path:    "dir/file",
			Kept:    now.Add(-time.Duration(k) * step),
			Content: fmt.Sprint("c", k),
			Size:    100,
		})
	}
	// Shuffle deterministically: Drop must not rely on its input's order.
	for i := range items {
		j := (i * 7919) % len(items)
		items[i], items[j] = items[j], items[i]
	}

	want := map[int64]bool{}
	// Younger than an hour: everything.
	for _, it := range items {
		if now.Sub(it.Kept) < time.Hour {
			want[it.ID] = true
		}
	}
	// Older tiers: walk their periods; in each, keep the newest version of
	// the tier whose Kept falls in the period.
	for _, tier := range []struct{ from, to, every time.Duration }{
		{time.Hour, Day, time.Hour},
		{Day, 30 * Day, Day},
		{30 * Day, Year, Week},
	} {
		oldest, youngest := now.Add(-tier.to), now.Add(-tier.from)
		start := oldest.UnixNano() / int64(tier.every) * int64(tier.every)
		periods := 0
		for p := start; p <= youngest.UnixNano(); p += int64(tier.every) {
			lo, hi := time.Unix(0, p).UTC(), time.Unix(0, p+int64(tier.every)).UTC()
			var best *Item
			for i := range items {
				it := &items[i]
				age := now.Sub(it.Kept)
				if age < tier.from || age >= tier.to || it.Kept.Before(lo) || !it.Kept.Before(hi) {
					continue
				}
				if best == nil || it.Kept.After(best.Kept) {
					best = it
				}
			}
			if best != nil {
				want[best.ID] = true
				periods++
			}
		}
		// Sanity of the expectation itself: about one per period of the tier.
		if n := int((tier.to - tier.from) / tier.every); periods < n || periods > n+2 {
			t.Fatalf("expectation for tier %v..%v: %d periods, want %d to %d", tier.from, tier.to, periods, n, n+2)
		}
	}
	got := kept(t, Default(), now, items, 0)
	sameSet(t, "default schedule", got, want)

	// Spot checks written out by hand.
	byAge := map[time.Duration]int64{}
	for _, it := range items {
		byAge[now.Sub(it.Kept)] = it.ID
	}
	for _, c := range []struct {
		age  time.Duration
		kept bool
	}{
		{0, true},
		{50 * time.Minute, true},
		// 12:34:56 - 1h = 11:34:56 (tier 1): newest in 11:00-12:00 that is
		// at least an hour old.
		{60 * time.Minute, true},
		{70 * time.Minute, false},
		// 10:54:56 is the newest of 10:00-11:00.
		{100 * time.Minute, true},
		{110 * time.Minute, false},
		// 23h40m ago is 12:54:56 the day before, the newest of its hour.
		{23*time.Hour + 40*time.Minute, true},
		{23*time.Hour + 50*time.Minute, false},
		// A day ago, 12:34:56 the day before: tier 2; the newest of
		// March 14 is 23:54:56, 12h40m ago, in tier 1, so the newest of
		// March 14 in tier 2 is 12:34:56.
		{Day, true},
		{Day + 10*time.Minute, false},
		// 30 days ago is Wednesday February 14 12:34:56, the newest of its
		// tier in the week (Thursday to Thursday, as weeks count from the
		// Unix epoch) from February 8 to 15.
		{30 * Day, true},
		{30*Day + 10*time.Minute, false},
		{365*Day - 10*time.Minute, false},
		{365 * Day, false},
		{400 * Day, false},
	} {
		if got := got[byAge[c.age]]; got != c.kept {
			t.Errorf("version %v old: kept %v, want %v", c.age, got, c.kept)
		}
	}
	for _, it := range items {
		age := now.Sub(it.Kept)
		if age < time.Hour && !got[it.ID] {
			t.Errorf("version %v old dropped", age)
		}
		if age >= Year && got[it.ID] {
			t.Errorf("version %v old kept", age)
		}
	}
	// Per UTC day, in the day tier: at most one.
	perDay := map[string]int{}
	for _, it := range items {
		if age := now.Sub(it.Kept); got[it.ID] && age >= Day && age < 30*Day {
			perDay[it.Kept.Format(time.DateOnly)]++
		}
	}
	for day, n := range perDay {
		if n != 1 {
			t.Errorf("%s: %d versions kept in the day tier, want 1", day, n)
		}
	}
}

func TestDropUsesUTCWhateverTheLocation(t *testing.T) {
	loc := time.FixedZone("UTC+5:30", 5*3600+1800)
	// 00:10 and 23:50 UTC of one UTC day are 05:40 that day and 05:20 the
	// next in loc; 23:50 UTC the day before is 05:20 the same local day
	// as 00:10 UTC. Periods are UTC days: 2 and 3 are kept.
	day := time.Date(2024, time.March, 10, 0, 0, 0, 0, time.UTC)
	items := []Item{
		{ID: 1, Path: "f", Kept: day.Add(10 * time.Minute).In(loc)},
		{ID: 2, Path: "f", Kept: day.Add(23*time.Hour + 50*time.Minute).In(loc)},
		{ID: 3, Path: "f", Kept: day.Add(-10 * time.Minute).In(loc)}, // the day before
	}
	got := kept(t, Default(), now.In(loc), items, 0)
	sameSet(t, "days in UTC", got, idSet([]int64{2, 3}))
}

func TestPathsAreIndependent(t *testing.T) {
	hour := time.Date(2024, time.March, 15, 3, 0, 0, 0, time.UTC) // tier 1 at now
	day := time.Date(2024, time.March, 1, 0, 0, 0, 0, time.UTC)   // tier 2
	week := time.Unix(0, now.Add(-100*Day).UnixNano()/int64(Week)*int64(Week)).UTC()
	items := []Item{
		{ID: 1, Path: "a", Kept: hour.Add(5 * time.Minute)},
		{ID: 2, Path: "a", Kept: hour.Add(45 * time.Minute)},
		{ID: 3, Path: "b", Kept: hour.Add(50 * time.Minute)},
		{ID: 4, Path: "b", Kept: hour.Add(10 * time.Minute)},
		{ID: 5, Path: "a/b", Kept: hour.Add(1 * time.Minute)},

		{ID: 11, Path: "a", Kept: day.Add(3 * time.Hour)},
		{ID: 12, Path: "b", Kept: day.Add(2 * time.Hour)},
		{ID: 13, Path: "b", Kept: day.Add(20 * time.Hour)},
		{ID: 14, Path: "a", Kept: day.Add(1 * time.Hour)},

		{ID: 21, Path: "a", Kept: week.Add(Day)},
		{ID: 22, Path: "b", Kept: week.Add(6 * Day)},
		{ID: 23, Path: "a", Kept: week.Add(5 * Day)},
		{ID: 24, Path: "b", Kept: week},
	}
	for i := range items {
		items[i].Content = fmt.Sprint("c", items[i].ID)
	}
	got := kept(t, Default(), now, items, 0)
	sameSet(t, "two paths", got, idSet([]int64{2, 3, 5, 11, 13, 23, 22}))
}

func TestSameKeptTimeKeepsOne(t *testing.T) {
	at := time.Date(2024, time.March, 15, 3, 30, 0, 0, time.UTC)
	items := []Item{{ID: 1, Path: "f", Kept: at}, {ID: 2, Path: "f", Kept: at}, {ID: 3, Path: "f", Kept: at}}
	got := kept(t, Default(), now, items, 0)
	if len(got) != 1 {
		t.Fatalf("kept %v of three versions kept at one time in one hour, want one", got)
	}
}

// A period cut by a tier's edge is a period of each tier: the newest
// version on each side of the edge is kept, even when both tiers keep one
// an hour.
func TestPeriodCutByTierEdge(t *testing.T) {
	s, err := Parse("1d:1h,2d:1h")
	if err != nil {
		t.Fatal(err)
	}
	edge := now.Add(-Day) // March 14 12:34:56
	items := []Item{
		{ID: 1, Path: "f", Kept: edge.Add(20 * time.Minute)},  // 12:54:56, tier 0
		{ID: 2, Path: "f", Kept: edge.Add(10 * time.Minute)},  // 12:44:56, tier 0
		{ID: 3, Path: "f", Kept: edge},                        // 12:34:56, tier 1
		{ID: 4, Path: "f", Kept: edge.Add(-10 * time.Minute)}, // 12:24:56, tier 1
	}
	sameSet(t, "hour cut by the 1d edge", kept(t, s, now, items, 0), idSet([]int64{1, 3}))
}

func TestSizeCap(t *testing.T) {
	// All young: the schedule keeps them all; the cap alone decides.
	at := func(minutes int) time.Time { return now.Add(-time.Duration(minutes) * time.Minute) }
	distinct := []Item{
		{ID: 1, Path: "a", Kept: at(50), Content: "x", Size: 10},
		{ID: 2, Path: "b", Kept: at(40), Content: "y", Size: 10},
		{ID: 3, Path: "a", Kept: at(30), Content: "z", Size: 10},
		{ID: 4, Path: "c", Kept: at(20), Content: "w", Size: 10},
	}
	for _, c := range []struct {
		max  int64
		keep []int64
	}{
		{0, []int64{1, 2, 3, 4}},
		{-1, []int64{1, 2, 3, 4}},
		{40, []int64{1, 2, 3, 4}},
		{1 << 40, []int64{1, 2, 3, 4}},
		{39, []int64{2, 3, 4}},
		{30, []int64{2, 3, 4}},
		{29, []int64{3, 4}},
		{10, []int64{4}},
		{9, nil},
		{1, nil},
	} {
		t.Run(fmt.Sprint("distinct/", c.max), func(t *testing.T) {
			sameSet(t, "cap", kept(t, Default(), now, distinct, c.max), idSet(c.keep))
		})
	}

	// x is named by the oldest and the newest version: dropping the
	// oldest frees nothing.
	shared := []Item{
		{ID: 1, Path: "a", Kept: at(50), Content: "x", Size: 100},
		{ID: 2, Path: "b", Kept: at(40), Content: "y", Size: 10},
		{ID: 3, Path: "c", Kept: at(30), Content: "z", Size: 10},
		{ID: 4, Path: "d", Kept: at(20), Content: "x", Size: 100},
	}
	for _, c := range []struct {
		max  int64
		keep []int64
	}{
		{120, []int64{1, 2, 3, 4}},
		// 1 goes (x still held: 120), then 2 (110).
		{119, []int64{3, 4}},
		{110, []int64{3, 4}},
		// then 3 (100).
		{109, []int64{4}},
		{100, []int64{4}},
		{99, nil},
	} {
		t.Run(fmt.Sprint("shared/", c.max), func(t *testing.T) {
			sameSet(t, "cap", kept(t, Default(), now, shared, c.max), idSet(c.keep))
		})
	}

	// Two versions of x are the oldest: both go before x's bytes are free.
	oldPair := []Item{
		{ID: 1, Path: "a", Kept: at(50), Content: "x", Size: 100},
		{ID: 2, Path: "b", Kept: at(40), Content: "x", Size: 100},
		{ID: 3, Path: "c", Kept: at(30), Content: "y", Size: 10},
	}
	sameSet(t, "cap over a shared content", kept(t, Default(), now, oldPair, 50), idSet([]int64{3}))
	sameSet(t, "cap over a shared content", kept(t, Default(), now, oldPair, 110), idSet([]int64{1, 2, 3}))

	// What the schedule drops takes no room: a huge expired version does
	// not push the cap onto the survivors.
	withExpired := append(slices.Clone(distinct), Item{ID: 9, Path: "a", Kept: now.Add(-2 * Year), Content: "big", Size: 1 << 30})
	sameSet(t, "cap after the schedule", kept(t, Default(), now, withExpired, 40), idSet([]int64{1, 2, 3, 4}))
	// ... nor does a version the schedule thins out.
	hour := time.Date(2024, time.March, 15, 3, 0, 0, 0, time.UTC)
	thinned := append(slices.Clone(distinct),
		Item{ID: 7, Path: "a", Kept: hour.Add(10 * time.Minute), Content: "old", Size: 1000},
		Item{ID: 8, Path: "a", Kept: hour.Add(20 * time.Minute), Content: "w", Size: 10},
	)
	sameSet(t, "cap after thinning", kept(t, Default(), now, thinned, 40), idSet([]int64{1, 2, 3, 4, 8}))
	// The cap drops the oldest survivor first, whatever its tier: 8 goes,
	// but w (also named by 4) stays, so 1 goes too.
	sameSet(t, "cap after thinning", kept(t, Default(), now, thinned, 39), idSet([]int64{2, 3, 4}))
}

func TestFutureCountsAsNew(t *testing.T) {
	items := []Item{
		{ID: 1, Path: "f", Kept: now.Add(time.Minute), Content: "a", Size: 1},
		{ID: 2, Path: "f", Kept: now.Add(48 * time.Hour), Content: "b", Size: 1},
		{ID: 3, Path: "f", Kept: now.Add(400 * Day), Content: "c", Size: 1},
		{ID: 4, Path: "f", Kept: now.Add(-40 * time.Minute), Content: "d", Size: 1}, // 11:54:56
	}
	sameSet(t, "future versions", kept(t, Default(), now, items, 0), idSet([]int64{1, 2, 3, 4}))

	// Under a schedule thinning from the start, a future version is of the
	// first tier: kept as the newest of its period.
	s, err := Parse("1d:1h,1y:1d")
	if err != nil {
		t.Fatal(err)
	}
	sameSet(t, "future versions, thinned", kept(t, s, now, items, 0), idSet([]int64{1, 2, 3, 4}))

	// Under a size cap, they are the newest: the last to go.
	sameSet(t, "future versions, capped", kept(t, Default(), now, items, 2), idSet([]int64{2, 3}))
}

func TestEmptySchedulesAndItems(t *testing.T) {
	if d := Drop(Default(), now, nil, 10); len(d) != 0 {
		t.Errorf("Drop of no items = %v", d)
	}
	items := []Item{{ID: 1, Path: "f", Kept: now}, {ID: 2, Path: "f", Kept: now.Add(time.Hour)}}
	sameSet(t, "empty schedule", kept(t, nil, now, items, 0), map[int64]bool{})
}

func TestDropDoesNotChangeItsInput(t *testing.T) {
	items := []Item{
		{ID: 1, Path: "b", Kept: now.Add(-time.Minute), Content: "x", Size: 5},
		{ID: 2, Path: "a", Kept: now.Add(-2 * time.Minute), Content: "y", Size: 5},
		{ID: 3, Path: "a", Kept: now.Add(-3 * Year), Content: "z", Size: 5},
	}
	before := slices.Clone(items)
	Drop(Default(), now, items, 5)
	if !slices.Equal(items, before) {
		t.Fatalf("Drop changed its input:\n got %v\nwant %v", items, before)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"1h:all,1d:1h,30d:1d,1y:1w",
		"1h:all", "90s:all,1.5d:5m", "10m:all", "1h30m:all,2d:1h10m", "1m50s:10s",
		"0.1d:all", "2w:1d,52w:1w", "1y:1w,2y:4w", "500ms:all", "1ns:all",
		"1h", "0h:all", "1d:all,1h:1m", "1x:all", "1d:0", "Infd:all", "1e300y:all",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, x string) {
		s, err := Parse(x)
		if err != nil {
			return
		}
		str := s.String()
		back, err := Parse(str)
		if err != nil {
			t.Fatalf("Parse(%q) = %v; its String %q does not parse: %v", x, s, str, err)
		}
		if !slices.Equal(back, s) {
			t.Fatalf("Parse(%q) = %v; Parse(String() = %q) = %v", x, s, str, back)
		}
	})
}
