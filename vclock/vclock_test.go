package vclock

import (
	"errors"
	"strings"
	"testing"

	"github.com/drive-node/drive-node/certs"
)

func dev(b byte) certs.DeviceID { var d certs.DeviceID; d[0] = b; return d }

func TestCompare(t *testing.T) {
	a, b, c := dev(1), dev(2), dev(3)
	var empty Vector
	v1 := empty.With(a, 1)
	v2 := v1.With(b, 1)
	v3 := v1.With(c, 4)
	for _, tc := range []struct {
		x, y Vector
		want Ordering
	}{
		{empty, empty, Equal},
		{empty, v1, Before},
		{v1, empty, After},
		{v1, v2, Before},
		{v2, v3, Concurrent},
		{v2.Merge(v3), v3, After},
		{v2.Merge(v3), v3.Merge(v2), Equal},
	} {
		if got := tc.x.Compare(tc.y); got != tc.want {
			t.Errorf("%v vs %v: got %v want %v", tc.x, tc.y, got, tc.want)
		}
	}
}

func TestWithKeepsSortedAndDropsZero(t *testing.T) {
	v := Vector{}.With(dev(3), 1).With(dev(1), 2).With(dev(2), 5)
	for i := 1; i < len(v); i++ {
		if v[i-1].Device[0] >= v[i].Device[0] {
			t.Fatalf("not sorted: %v", v)
		}
	}
	v = v.With(dev(2), 0)
	if len(v) != 2 || v.Get(dev(2)) != 0 || v.Get(dev(1)) != 2 {
		t.Fatalf("remove failed: %v", v)
	}
	orig := Vector{}.With(dev(1), 1)
	_ = orig.With(dev(1), 9)
	if orig.Get(dev(1)) != 1 {
		t.Fatal("With modified its receiver")
	}
}

func TestOrderingString(t *testing.T) {
	for o, want := range map[Ordering]string{Equal: "equal", Before: "before", After: "after", Concurrent: "concurrent", 7: "Ordering(7)", -1: "Ordering(-1)"} {
		if got := o.String(); got != want {
			t.Errorf("Ordering(%d).String() = %q, want %q", int(o), got, want)
		}
	}
}

// TestCheck: what the methods make passes; a vector out of order, with a
// device twice, a zero counter or the zero device does not, and the error
// says which entry.
func TestCheck(t *testing.T) {
	a, b := dev(1), dev(2)
	made := Vector{}.With(b, 3).With(a, 1).Merge(Vector{}.With(a, 7))
	if err := made.Check(); err != nil {
		t.Fatalf("%v: %v", made, err)
	}
	if err := (Vector{}).Check(); err != nil {
		t.Fatalf("empty vector: %v", err)
	}
	for name, c := range map[string]struct {
		v    Vector
		want string
	}{
		"unsorted":    {Vector{{b, 1}, {a, 1}}, "entry 1"},
		"twice":       {Vector{{a, 1}, {a, 2}}, "entry 1"},
		"zero count":  {Vector{{a, 1}, {b, 0}}, "entry 1"},
		"zero device": {Vector{{certs.DeviceID{}, 1}}, "zero device"},
	} {
		err := c.v.Check()
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Check(%v) = %v, want ErrInvalid naming %q", name, c.v, err, c.want)
		}
	}
}
