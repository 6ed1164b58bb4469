package cli

import (
	"fmt"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pgmove/pgmove/internal/compare"
	"github.com/pgmove/pgmove/internal/switchover"
)

// The comparison's line, on the bar and plain, from one snapshot: what is
// not known yet (the rate before a row, the ETA before any progress) says
// unknown, never 0.
func TestCompareLine(t *testing.T) {
	for _, c := range []struct {
		p          compare.ProgressSnapshot
		bar, plain string
	}{
		{compare.ProgressSnapshot{}, "", ""},
		{compare.ProgressSnapshot{Stage: compare.StagePrepare, Tables: 3},
			"compare: reading the columns, keys and key ranges of 3 table(s)", "compare: reading the columns, keys and key ranges of 3 table(s)"},
		{compare.ProgressSnapshot{Stage: compare.StageChecksum, Tables: 2, Ranges: 40, Bytes: 100 << 20, Elapsed: time.Second},
			"compare [--------------------]   0%  0/2 tables  0/40 ranges  0 rows  0 bytes of 100 MB  rate unknown  ETA unknown",
			"compare: hashed 0/2 table(s), 0/40 range(s), 0 row(s), 0 bytes of 100 MB, rate unknown, ETA unknown"},
		{compare.ProgressSnapshot{Stage: compare.StageChecksum, Tables: 2, TablesDone: 1, Ranges: 40, RangesDone: 10, Rows: 500000, Bytes: 100 << 20, BytesDone: 25 << 20, Elapsed: 10 * time.Second},
			"compare [#####---------------]  25%  1/2 tables  10/40 ranges  500000 rows  25 MB of 100 MB  50000 rows/s  ETA 30s",
			"compare: hashed 1/2 table(s), 10/40 range(s), 500000 row(s), 25 MB of 100 MB, 50000 rows/s, ETA 30s"},
		// Counting: tables, no ranges; sizes unknown (0): the fraction is the tables'.
		{compare.ProgressSnapshot{Stage: compare.StageCount, Tables: 4, TablesDone: 1, Rows: 100, Elapsed: 2 * time.Second},
			"compare [#####---------------]  25%  1/4 tables  100 rows  50 rows/s  ETA 6s",
			"compare: counted 1/4 table(s), 100 row(s), 50 rows/s, ETA 6s"},
		{compare.ProgressSnapshot{Stage: compare.StageRecheck}, "compare: reading the rows that differed again, while replication applies", "compare: reading the rows that differed again, while replication applies"},
	} {
		if got := compareLine(c.p, true); got != c.bar {
			t.Errorf("bar:\n got %q\nwant %q", got, c.bar)
		}
		if got := compareLine(c.p, false); got != c.plain {
			t.Errorf("plain:\n got %q\nwant %q", got, c.plain)
		}
	}
}

func TestSwitchLine(t *testing.T) {
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	catchUp := switchover.ProgressSnapshot{Step: "catch-up", Elapsed: ms(3200), StepElapsed: ms(4), Paused: ms(6), Pausing: true, MaxPause: 2 * time.Second,
		LagLeft: 2048, FenceLag: 4096, Done: []switchover.Step{{Name: "preflight", Took: ms(3190)}, {Name: "fence", Took: ms(2)}}}
	seq := catchUp
	seq.Step, seq.LagLeft, seq.Done = "sequences", -1, append(append([]switchover.Step{}, catchUp.Done...), switchover.Step{Name: "catch-up", Took: ms(5)})
	done := seq
	done.Step, done.Pausing, done.Paused = switchover.StepDone, false, ms(20)
	for _, c := range []struct {
		p          switchover.ProgressSnapshot
		bar, plain string
	}{
		{switchover.ProgressSnapshot{LagLeft: -1, FenceLag: -1}, "", ""},
		{switchover.ProgressSnapshot{Step: "preflight", Elapsed: ms(1500), StepElapsed: ms(1500), LagLeft: -1, FenceLag: -1},
			"switchover: preflight 1.5s; elapsed 1.5s", "switchover: preflight; elapsed 1.5s"},
		{catchUp,
			"switchover: catch-up 4 ms, lag left 2048 bytes; elapsed 3.2s, paused 6 ms of at most 2s [preflight 3.2s, fence 2 ms]",
			"switchover: catch-up, lag left 2048 bytes; elapsed 3.2s, paused 6 ms of at most 2s; fence took 2 ms"},
		{seq, "switchover: sequences 4 ms; elapsed 3.2s, paused 6 ms of at most 2s [preflight 3.2s, fence 2 ms, catch-up 5 ms]",
			"switchover: sequences; elapsed 3.2s, paused 6 ms of at most 2s; catch-up took 5 ms from 4096 bytes behind the fence"},
		{done, "switchover: done; elapsed 3.2s, the pause took 20 ms [preflight 3.2s, fence 2 ms, catch-up 5 ms]",
			"switchover: done; elapsed 3.2s, the pause took 20 ms; catch-up took 5 ms from 4096 bytes behind the fence"},
	} {
		if got := switchLine("switchover", c.p, true); got != c.bar {
			t.Errorf("bar:\n got %q\nwant %q", got, c.bar)
		}
		if got := switchLine("switchover", c.p, false); got != c.plain {
			t.Errorf("plain:\n got %q\nwant %q", got, c.plain)
		}
		if strings.ContainsAny(switchLine("switchover", c.p, true), "\r\n") {
			t.Errorf("a bar line with a line break")
		}
	}
}

// lockedBuffer is a terminal for a bar: its writes come from the bar's
// goroutine and the test's.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// The bar redraws its line as it changes, clears it before each log line
// (which stays whole) and draws it again after, and draws nothing once
// stopped; a poke redraws at once, whatever the tick.
func TestBarRedrawsAndClears(t *testing.T) {
	var term lockedBuffer
	b := newBar(&term)
	g := &globals{bar: b}
	defer g.stopBar()
	var n atomic.Int64
	stop := b.follow(func(time.Time) string { return fmt.Sprintf("line %d", n.Load()) }, time.Hour)
	waitFor := func(want string) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); !strings.Contains(term.String(), want); time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("the bar never drew %q:\n%q", want, term.String())
			}
		}
	}
	waitFor("line 0") // follow pokes: no hour's wait for the tick
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 25 {
				fmt.Fprintf(b, "log %d.%d\n", i, j)
				n.Add(1)
				b.poke()
			}
		}()
	}
	wg.Wait()
	b.poke()
	waitFor("line 100")
	stop()
	fmt.Fprint(b, "after\n")
	out := term.String()
	for _, l := range strings.Split(out, "\n") {
		// Each log line begins on a cleared line, after the bar's line.
		if i := strings.LastIndex(l, "\r\x1b[K"); i >= 0 {
			l = l[i+4:]
		}
		if l != "" && !regexp.MustCompile(`^(log \d\.\d+|after|line \d+)$`).MatchString(l) {
			t.Errorf("a broken line %q in:\n%q", l, out)
		}
	}
	if !strings.HasSuffix(out, "line 100\r\x1b[Kafter\n") {
		t.Errorf("after stop the bar was not cleared, or drew again:\n%q", out)
	}
}
