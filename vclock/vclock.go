// Package vclock implements version vectors: for each device, the highest
// counter of that device's that a version has seen. Comparing two vectors
// tells whether one version was made after seeing the other or whether the
// two were made concurrently.
//
// A Vector is kept sorted by device ID with no zero counters, so equal
// versions have equal encodings. The zero value is the empty vector, which
// every other vector dominates.
package vclock

import (
	"bytes"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/drive-node/drive-node/certs"
)

// Entry is one device's counter within a Vector.
type Entry struct {
	Device  certs.DeviceID
	Counter uint64
}

// Vector is a version vector. Methods never modify the receiver; they
// return new vectors, so vectors can be shared freely.
type Vector []Entry

// Ordering is the result of Compare.
type Ordering int

// Orderings of two vectors a and b.
const (
	Equal      Ordering = iota // a == b
	Before                     // a happened before b: b dominates a
	After                      // a happened after b: a dominates b
	Concurrent                 // neither saw the other
)

// String returns the ordering's name, or "Ordering(N)" for a value that
// is none of the four.
func (o Ordering) String() string {
	names := [...]string{"equal", "before", "after", "concurrent"}
	if int(o) < 0 || int(o) >= len(names) {
		return fmt.Sprintf("Ordering(%d)", int(o))
	}
	return names[o]
}

// ErrInvalid is wrapped by Check's errors.
var ErrInvalid = errors.New("vclock: not a canonical version vector")

// Check returns an error saying what is wrong when v is not in the form
// the methods keep: devices in increasing order, each once, none the zero
// ID, no zero counter. Get and Merge rely on the order, and equal
// versions must encode equally, so a vector read from outside is checked
// before it is used.
func (v Vector) Check() error {
	for i, e := range v {
		switch {
		case e.Device.IsZero():
			return fmt.Errorf("%w: entry %d names the zero device", ErrInvalid, i)
		case e.Counter == 0:
			return fmt.Errorf("%w: entry %d (%s) has counter 0", ErrInvalid, i, e.Device.Short())
		case i > 0 && bytes.Compare(v[i-1].Device[:], e.Device[:]) >= 0:
			return fmt.Errorf("%w: entry %d (%s) not after entry %d (%s)", ErrInvalid, i, e.Device.Short(), i-1, v[i-1].Device.Short())
		}
	}
	return nil
}

// Get returns the counter of device d, zero if absent.
func (v Vector) Get(d certs.DeviceID) uint64 {
	i := v.find(d)
	if i < len(v) && v[i].Device == d {
		return v[i].Counter
	}
	return 0
}

func (v Vector) find(d certs.DeviceID) int {
	return sort.Search(len(v), func(i int) bool { return bytes.Compare(v[i].Device[:], d[:]) >= 0 })
}

// With returns a copy of v in which device d's counter is c (removed when
// c is zero).
func (v Vector) With(d certs.DeviceID, c uint64) Vector {
	i := v.find(d)
	out := make(Vector, 0, len(v)+1)
	out = append(out, v[:i]...)
	if c != 0 {
		out = append(out, Entry{d, c})
	}
	if i < len(v) && v[i].Device == d {
		i++
	}
	return append(out, v[i:]...)
}

// Merge returns the element-wise maximum of v and w: a version that has
// seen everything either has seen.
func (v Vector) Merge(w Vector) Vector {
	out := make(Vector, 0, len(v)+len(w))
	i, j := 0, 0
	for i < len(v) || j < len(w) {
		switch {
		case j == len(w) || (i < len(v) && bytes.Compare(v[i].Device[:], w[j].Device[:]) < 0):
			out = append(out, v[i])
			i++
		case i == len(v) || bytes.Compare(v[i].Device[:], w[j].Device[:]) > 0:
			out = append(out, w[j])
			j++
		default:
			e := v[i]
			if w[j].Counter > e.Counter {
				e = w[j]
			}
			out = append(out, e)
			i++
			j++
		}
	}
	return out
}

// Compare tells how v relates to w.
func (v Vector) Compare(w Vector) Ordering {
	vBigger, wBigger := false, false
	for _, e := range v.Merge(w) {
		a, b := v.Get(e.Device), w.Get(e.Device)
		if a > b {
			vBigger = true
		} else if b > a {
			wBigger = true
		}
	}
	switch {
	case vBigger && wBigger:
		return Concurrent
	case vBigger:
		return After
	case wBigger:
		return Before
	}
	return Equal
}

// Dominates reports whether v has seen everything w has (v >= w).
func (v Vector) Dominates(w Vector) bool {
	o := v.Compare(w)
	return o == Equal || o == After
}

// String returns a compact form for logs: short device IDs and counters.
func (v Vector) String() string {
	parts := make([]string, len(v))
	for i, e := range v {
		parts[i] = e.Device.Short() + ":" + uitoa(e.Counter)
	}
	return "{" + strings.Join(parts, ",") + "}"
}

func uitoa(u uint64) string {
	if u == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	for u > 0 {
		i--
		b[i] = byte('0' + u%10)
		u /= 10
	}
	return string(b[i:])
}
