// Package retention decides which kept versions of a file the version
// store lets go of: a schedule thins them out as they age, and a size cap
// drops the oldest first. It is a function of values, with no IO, so the
// promise it makes is tested with exact times.
package retention

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Tier says how densely versions are kept up to an age: a version younger
// than Age (and not younger than the previous tier's Age) is kept if it is
// the newest of its path in its Every-long period of UTC time; with Every
// 0, every version is kept.
type Tier struct {
	Age, Every time.Duration
}

// Schedule is a list of tiers in increasing Age. A version at least as old
// as the last tier's Age is dropped.
type Schedule []Tier

// Common lengths of time a schedule is written in.
const (
	Day  = 24 * time.Hour
	Week = 7 * Day
	Year = 365 * Day
)

// Default keeps every version for an hour, one per hour for a day, one
// per day for 30 days and one per week for a year.
func Default() Schedule {
	return Schedule{{time.Hour, 0}, {Day, time.Hour}, {30 * Day, Day}, {Year, Week}}
}

// Parse reads a schedule written as comma-separated AGE:EVERY pairs, as
// String writes it: "1h:all,1d:1h,30d:1d,1y:1w". Lengths take Go's units
// (s, m, h) and d, w and y (365 days); EVERY may be "all".
func Parse(s string) (Schedule, error) {
	var out Schedule
	for _, part := range strings.Split(s, ",") {
		age, every, ok := strings.Cut(strings.TrimSpace(part), ":")
		if !ok {
			return nil, fmt.Errorf("retention %q: %q is not AGE:EVERY", s, part)
		}
		var t Tier
		var err error
		if t.Age, err = parseLength(age); err != nil || t.Age <= 0 {
			return nil, fmt.Errorf("retention %q: age %q: want a positive length such as 1h, 30d or 1y", s, age)
		}
		if every != "all" {
			if t.Every, err = parseLength(every); err != nil || t.Every <= 0 {
				return nil, fmt.Errorf("retention %q: %q: want \"all\" or a positive length such as 1h or 1w", s, every)
			}
		}
		if n := len(out); n > 0 && t.Age <= out[n-1].Age {
			return nil, fmt.Errorf("retention %q: ages must grow (%s after %s)", s, age, formatLength(out[n-1].Age))
		}
		out = append(out, t)
	}
	return out, nil
}

// parseLength reads a length in Go's units or in d, w or y.
func parseLength(s string) (time.Duration, error) {
	for suffix, unit := range map[string]time.Duration{"d": Day, "w": Week, "y": Year} {
		if num, ok := strings.CutSuffix(s, suffix); ok {
			n, err := strconv.ParseFloat(num, 64)
			if err != nil {
				return 0, err
			}
			return time.Duration(n * float64(unit)), nil
		}
	}
	return time.ParseDuration(s)
}

func formatLength(d time.Duration) string {
	for _, u := range []struct {
		suffix string
		unit   time.Duration
	}{{"y", Year}, {"w", Week}, {"d", Day}, {"h", time.Hour}, {"m", time.Minute}, {"s", time.Second}} {
		if d >= u.unit && d%u.unit == 0 {
			return strconv.FormatInt(int64(d/u.unit), 10) + u.suffix
		}
	}
	return d.String()
}

// String writes s as Parse reads it.
func (s Schedule) String() string {
	parts := make([]string, len(s))
	for i, t := range s {
		every := "all"
		if t.Every > 0 {
			every = formatLength(t.Every)
		}
		parts[i] = formatLength(t.Age) + ":" + every
	}
	return strings.Join(parts, ",")
}

// Item is one kept version as the schedule sees it.
type Item struct {
	ID   int64
	Path string
	// Kept is when the version went into the store.
	Kept time.Time
	// Content names the content; versions naming one content share its
	// bytes, which only the last of them to go frees.
	Content string
	Size    int64
}

// Drop returns the IDs of the versions to let go of at now: those the
// schedule does not keep, then, while the contents of those left take
// more than maxBytes (0: no cap), the oldest. A version kept in the future
// (a clock set back) counts as new.
func Drop(s Schedule, now time.Time, items []Item, maxBytes int64) []int64 {
	items = slices.Clone(items)
	// Newest first within a path: the first of a period is the one kept.
	slices.SortFunc(items, func(a, b Item) int {
		return cmp.Or(strings.Compare(a.Path, b.Path), b.Kept.Compare(a.Kept), cmp.Compare(b.ID, a.ID))
	})
	type period struct {
		path  string
		tier  int
		start int64
	}
	taken := map[period]bool{}
	var drop []int64
	var left []Item
	for _, it := range items {
		tier, ok := s.tierOf(now.Sub(it.Kept))
		if !ok {
			drop = append(drop, it.ID)
			continue
		}
		if every := s[tier].Every; every > 0 {
			p := period{it.Path, tier, floorDiv(it.Kept.UnixNano(), int64(every))}
			if taken[p] {
				drop = append(drop, it.ID)
				continue
			}
			taken[p] = true
		}
		left = append(left, it)
	}
	if maxBytes <= 0 {
		return drop
	}
	holders, total := map[string]int{}, int64(0)
	for _, it := range left {
		if holders[it.Content] == 0 {
			total += it.Size
		}
		holders[it.Content]++
	}
	slices.SortFunc(left, func(a, b Item) int { return cmp.Or(a.Kept.Compare(b.Kept), cmp.Compare(a.ID, b.ID)) })
	for _, it := range left {
		if total <= maxBytes {
			break
		}
		drop = append(drop, it.ID)
		if holders[it.Content]--; holders[it.Content] == 0 {
			total -= it.Size
		}
	}
	return drop
}

// tierOf returns the tier a version of that age falls in.
func (s Schedule) tierOf(age time.Duration) (int, bool) {
	for i, t := range s {
		if age < t.Age {
			return i, true
		}
	}
	return 0, false
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}
