package switchover

import (
	"testing"
	"time"
)

// A Progress through a switch: each step's time is kept as the next
// begins, the pause runs from the fence to its lift, the lag is known only
// in the catch-up, and a nil Progress takes every call.
func TestProgress(t *testing.T) {
	var none *Progress
	none.begin("fence", "")
	none.fenced(time.Now(), time.Second)
	none.lag(5)
	none.lifted()

	var steps []string
	p := &Progress{OnStep: func(s ProgressSnapshot) { steps = append(steps, s.Step) }}
	if s := p.Snapshot(); s.Step != "" || s.LagLeft != -1 || s.FenceLag != -1 || s.Paused != 0 {
		t.Errorf("before the start: %+v", s)
	}
	p.begin(StepPreflight, "")
	time.Sleep(2 * time.Millisecond)
	p.fenced(time.Now(), 2*time.Second)
	p.begin("fence", "none")
	p.begin("catch-up", "")
	if s := p.Snapshot(); s.LagLeft != -1 || !s.Pausing || s.MaxPause != 2*time.Second || len(s.Done) != 2 || s.Done[0].Name != StepPreflight || s.Done[0].Took < 2*time.Millisecond {
		t.Errorf("catch-up begun: %+v", s)
	}
	p.lag(300)
	p.lag(-4) // confirmed past the fence
	if s := p.Snapshot(); s.LagLeft != 0 || s.FenceLag != 300 {
		t.Errorf("caught up: lag left %d, at the fence %d", s.LagLeft, s.FenceLag)
	}
	p.begin("sequences", "")
	if s := p.Snapshot(); s.LagLeft != -1 || s.FenceLag != 300 {
		t.Errorf("after the catch-up: lag left %d, at the fence %d", s.LagLeft, s.FenceLag)
	}
	p.lifted()
	paused := p.Snapshot().Paused
	time.Sleep(2 * time.Millisecond)
	p.begin(StepDone, "")
	s := p.Snapshot()
	if s.Pausing || s.Paused != paused || s.Paused <= 0 || s.Step != StepDone || len(s.Done) != 4 || s.Elapsed < s.Paused {
		t.Errorf("done: %+v (paused %s when lifted)", s, paused)
	}
	if want := "preflight fence catch-up sequences done"; join(steps) != want {
		t.Errorf("OnStep saw %q, want %q", join(steps), want)
	}
}

func join(s []string) string {
	out := ""
	for i, x := range s {
		if i > 0 {
			out += " "
		}
		out += x
	}
	return out
}
