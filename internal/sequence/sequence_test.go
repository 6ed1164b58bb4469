package sequence

import (
	"math"
	"testing"

	"github.com/pgmove/pgmove/internal/catalog"
)

func seq(last int64, called bool, inc, min, max int64, cycle bool) *catalog.Sequence {
	return &catalog.Sequence{Schema: "public", Name: "s", LastValue: last, IsCalled: called, Increment: inc, Min: min, Max: max, Cycle: cycle}
}

func TestNext(t *testing.T) {
	cases := []struct {
		s    *catalog.Sequence
		next int64
		ok   bool
	}{
		{seq(1, false, 1, 1, math.MaxInt64, false), 1, true},
		{seq(5, true, 1, 1, math.MaxInt64, false), 6, true},
		{seq(-5, true, -1, math.MinInt64, -1, false), -6, true},
		{seq(10, true, 5, 1, 12, false), 10, false},   // exhausted
		{seq(10, true, 5, 1, 12, true), 1, true},      // cycles to min
		{seq(-10, true, -5, -12, -1, true), -1, true}, // descending cycles to max
		{seq(math.MaxInt64, true, 1, 1, math.MaxInt64, false), math.MaxInt64, false},
	}
	for i, c := range cases {
		if n, ok := c.s.Next(); n != c.next || ok != c.ok {
			t.Errorf("case %d: Next() = %d, %v; want %d, %v", i, n, ok, c.next, c.ok)
		}
	}
}

func TestShiftClamps(t *testing.T) {
	if v, c := shift(10, 100, seq(0, true, 1, 1, 50, false)); v != 50 || !c {
		t.Errorf("ascending clamp: %d %v", v, c)
	}
	if v, c := shift(-10, 100, seq(0, true, -1, -50, -1, false)); v != -50 || !c {
		t.Errorf("descending moves down and clamps: %d %v", v, c)
	}
	if v, c := shift(math.MaxInt64-5, 10, seq(0, true, 1, 1, math.MaxInt64, false)); v != math.MaxInt64 || !c {
		t.Errorf("overflow: %d %v", v, c)
	}
	if v, c := shift(7, 3, seq(0, true, 2, 1, 100, false)); v != 10 || c {
		t.Errorf("plain: %d %v", v, c)
	}
}

func TestCompareAll(t *testing.T) {
	src := []*catalog.Sequence{
		{Schema: "a", Name: "up", LastValue: 100, IsCalled: true, Increment: 1, Min: 1, Max: math.MaxInt64},
		{Schema: "a", Name: "down", LastValue: -100, IsCalled: true, Increment: -1, Min: math.MinInt64, Max: -1},
		{Schema: "a", Name: "fresh", LastValue: 1, IsCalled: false, Increment: 1, Min: 1, Max: 10},
		{Schema: "a", Name: "gone", LastValue: 1, IsCalled: true, Increment: 1, Min: 1, Max: 10},
	}
	dst := []*catalog.Sequence{
		{Schema: "a", Name: "up", LastValue: 1, IsCalled: false, Increment: 1, Min: 1, Max: math.MaxInt64},
		{Schema: "a", Name: "down", LastValue: -10100, IsCalled: true, Increment: -1, Min: math.MinInt64, Max: -1},
		{Schema: "a", Name: "fresh", LastValue: 1, IsCalled: false, Increment: 1, Min: 1, Max: 10},
	}
	want := map[string]string{"a.up": "behind", "a.down": "ahead", "a.fresh": "equal", "a.gone": "missing"}
	for _, c := range CompareAll(src, dst) {
		if want[c.Name] != c.Status {
			t.Errorf("%s: %s, want %s", c.Name, c.Status, want[c.Name])
		}
	}
	// copy-seq never moves a target back.
	if !ahead(dst[1], src[1]) || ahead(dst[0], src[0]) {
		t.Error("ahead() is wrong about direction")
	}
}
