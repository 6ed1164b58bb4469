package schema

import "testing"

func TestNeedsScript(t *testing.T) {
	for _, c := range []struct {
		tool, target int
		want         bool
	}{{18, 15, true}, {17, 16, true}, {18, 17, false}, {16, 15, false}, {18, 0, false}} {
		if got := needsScript(c.tool, c.target); got != c.want {
			t.Errorf("needsScript(%d, %d) = %v", c.tool, c.target, got)
		}
	}
}
