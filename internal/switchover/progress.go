package switchover

import (
	"sync"
	"time"
)

// Progress is where a running switchover or rollback is: the step running,
// the time taken, the pause so far and, while the replica catches up to the
// fence, the WAL it has left to confirm. The caller reads it with Snapshot
// while the switch runs (pgmove's progress bar); a nil Progress is not kept.
type Progress struct {
	// OnStep, when set, is called as each step begins, in the switch's own
	// goroutine and maybe inside the pause: it must be quick.
	OnStep func(ProgressSnapshot)

	mu         sync.Mutex
	start      time.Time
	step       string
	detail     string
	stepStart  time.Time
	pauseStart time.Time
	pauseEnd   time.Time
	maxPause   time.Duration
	lagLeft    int64
	lagKnown   bool
	fenceLag   int64 // the first lag read in the catch-up, -1 before
	done       []Step
}

// Steps a Progress names beside the pause's (fence, catch-up, sequences,
// switch replication, route traffic, resume).
const (
	StepPreflight = "preflight"
	StepLift      = "lift the fence"
	StepAftercare = "aftercare"
	StepDone      = "done"
	StepAbandoned = "abandoned"
)

// ProgressSnapshot is one reading of a Progress.
type ProgressSnapshot struct {
	Step   string // the step running; "" before the start, StepDone or StepAbandoned at the end
	Detail string // what the step does, when it says more than its name
	// Elapsed is the time since the switch began, StepElapsed since its
	// step did.
	Elapsed, StepElapsed time.Duration
	// Paused is the pause so far (the fence held), or the whole pause once
	// lifted; 0 before the fence. Pausing says the fence is held now.
	Paused   time.Duration
	Pausing  bool
	MaxPause time.Duration
	// LagLeft is, in the catch-up, the WAL in bytes the replica has still
	// to confirm up to the fence LSN; -1 when unknown (not read yet, or
	// another step).
	LagLeft int64
	// FenceLag is the WAL in bytes the replica had to confirm when the
	// catch-up began (its first reading); -1 before.
	FenceLag int64
	// Done are the steps finished, with their time.
	Done []Step
}

func (p *Progress) begin(step, detail string) {
	if p == nil {
		return
	}
	p.mu.Lock()
	now := time.Now()
	if p.start.IsZero() {
		p.start, p.fenceLag = now, -1
	}
	if p.step != "" && p.step != StepDone && p.step != StepAbandoned {
		took := now.Sub(p.stepStart)
		p.done = append(p.done, Step{Name: p.step, Took: took, MS: float64(took.Microseconds()) / 1000})
	}
	p.step, p.detail, p.stepStart, p.lagKnown = step, detail, now, false
	if step == StepDone || step == StepAbandoned {
		p.lift(now)
	}
	on := p.OnStep
	p.mu.Unlock()
	if on != nil {
		on(p.Snapshot())
	}
}

// fenced marks the pause's start.
func (p *Progress) fenced(at time.Time, maxPause time.Duration) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pauseStart, p.maxPause = at, maxPause
}

// lifted marks the pause's end.
func (p *Progress) lifted() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.lift(time.Now())
}

func (p *Progress) lift(now time.Time) {
	if !p.pauseStart.IsZero() && p.pauseEnd.IsZero() {
		p.pauseEnd = now
	}
}

// lag notes the WAL the replica has left to confirm up to the fence.
func (p *Progress) lag(bytes int64) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.lagLeft, p.lagKnown = max(0, bytes), true
	if p.fenceLag < 0 {
		p.fenceLag = p.lagLeft
	}
}

// Snapshot reads the progress now.
func (p *Progress) Snapshot() ProgressSnapshot {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	s := ProgressSnapshot{Step: p.step, Detail: p.detail, MaxPause: p.maxPause, LagLeft: -1, FenceLag: -1, Done: append([]Step(nil), p.done...)}
	if p.start.IsZero() {
		return s
	}
	s.Elapsed, s.StepElapsed = now.Sub(p.start), now.Sub(p.stepStart)
	if p.lagKnown {
		s.LagLeft = p.lagLeft
	}
	s.FenceLag = p.fenceLag
	switch {
	case p.pauseStart.IsZero():
	case p.pauseEnd.IsZero():
		s.Paused, s.Pausing = now.Sub(p.pauseStart), true
	default:
		s.Paused = p.pauseEnd.Sub(p.pauseStart)
	}
	return s
}
