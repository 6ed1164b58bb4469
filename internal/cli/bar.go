package cli

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/pgmove/pgmove/internal/check"
	"github.com/pgmove/pgmove/internal/copy"
)

// bar draws one live line on stderr when stderr is a terminal: the copy's
// progress (migrate, create-sub), the comparison's (compare), the switch's
// (switchover, rollback). The command names the line with follow, a
// function of the time that reads its engine's progress; the bar redraws it
// every tick and whenever poked, so the engines know nothing of it. Log
// lines go through it: the bar is cleared before each and drawn again
// after, so they stay whole. When stderr is not a terminal (CI, logs,
// pipes) there is no bar and the lines are as ever.
type bar struct {
	mu     sync.Mutex
	w      io.Writer
	line   string                 // what is drawn now, "" for nothing
	source func(time.Time) string // the line to draw, nil for none
	ticks  chan time.Duration     // a new tick for run's ticker
	poked  chan struct{}
	stop   chan struct{}
	done   chan struct{}
}

// barCommands are the commands that draw a bar on a terminal.
var barCommands = map[string]bool{"migrate": true, "create-sub": true, "compare": true, "switchover": true, "rollback": true}

// startBar wraps g.stderr (and g.stdout, when it is a terminal too) with a
// bar, when stderr is a terminal and the logs are text. It draws nothing
// until follow names a line.
func (g *globals) startBar() {
	if g.bar != nil || g.logFormat != "text" || !isTerminal(g.stderr) {
		return
	}
	b := newBar(g.stderr)
	g.bar, g.stderr = b, b
	if isTerminal(g.stdout) {
		g.stdout = &barred{b: b, w: g.stdout}
	}
}

// newBar starts a bar drawing on w.
func newBar(w io.Writer) *bar {
	b := &bar{w: w, ticks: make(chan time.Duration, 1), poked: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go b.run()
	return b
}

// follow draws line on the bar, redrawn every tick and on each poke,
// until the returned stop.
func (b *bar) follow(line func(time.Time) string, tick time.Duration) (stop func()) {
	b.mu.Lock()
	b.source = line
	b.mu.Unlock()
	select {
	case <-b.ticks:
	default:
	}
	b.ticks <- tick
	b.poke()
	return func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		b.source = nil
		b.clear()
		b.line = ""
	}
}

// poke redraws the bar now, without waiting for its tick; it never blocks.
func (b *bar) poke() {
	select {
	case b.poked <- struct{}{}:
	default:
	}
}

// plainLines logs line every interval until the returned stop, when there
// is no bar: the greppable form of what the bar shows.
func plainLines(line func(time.Time) string, every time.Duration) (stop func()) {
	done := make(chan struct{})
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case now := <-t.C:
				if l := line(now); l != "" {
					slog.Info(l)
				}
			}
		}
	}()
	return func() { close(done); <-ended }
}

// barred is stdout on the bar's terminal: the bar is cleared before a
// result is written, and drawn again after.
type barred struct {
	b *bar
	w io.Writer
}

func (o *barred) Write(p []byte) (int, error) {
	o.b.mu.Lock()
	defer o.b.mu.Unlock()
	o.b.clear()
	n, err := o.w.Write(p)
	o.b.draw()
	return n, err
}

// stopBar clears the bar; the logs written after go straight to stderr.
func (g *globals) stopBar() {
	if g.bar == nil {
		return
	}
	close(g.bar.stop)
	<-g.bar.done
	g.bar.mu.Lock()
	defer g.bar.mu.Unlock()
	g.bar.clear()
	g.bar.line = ""
}

func (b *bar) run() {
	defer close(b.done)
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case d := <-b.ticks:
			t.Reset(d)
			continue
		case <-t.C:
		case <-b.poked:
		}
		b.mu.Lock()
		source := b.source
		b.mu.Unlock()
		line := ""
		if source != nil {
			line = source(time.Now())
		}
		b.mu.Lock()
		if b.source == nil {
			line = ""
		}
		if line != b.line {
			b.clear()
			b.line = line
			b.draw()
		}
		b.mu.Unlock()
	}
}

// Write writes a log line with the bar out of its way.
func (b *bar) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.clear()
	n, err := b.w.Write(p)
	b.draw()
	return n, err
}

func (b *bar) clear() {
	if b.line != "" {
		_, _ = io.WriteString(b.w, "\r\033[K")
	}
}

func (b *bar) draw() {
	if b.line != "" {
		_, _ = io.WriteString(b.w, b.line)
	}
}

// meter is a bar of width characters, frac of it full.
func meter(frac float64, width int) string {
	full := int(min(1, max(0, frac)) * float64(width))
	return "[" + strings.Repeat("#", full) + strings.Repeat("-", width-full) + "]"
}

// fitLine cuts a line to what a terminal of 120 columns shows.
func fitLine(line string) string {
	if r := []rune(line); len(r) > 120 {
		return string(r[:117]) + "..."
	}
	return line
}

// copyLine is the copy's line: the copy of this process rewrites its status
// file every 250 ms, and this reads it.
type copyLine struct {
	dir   string
	prev  int64
	prevT time.Time
	rate  float64
}

// render is the line of the copy this process runs, "" when none runs.
func (b *copyLine) render(now time.Time) string {
	st, err := copy.ReadStatus(b.dir)
	if err != nil || st == nil || st.PID != os.Getpid() || now.Sub(st.Updated) > 5*time.Second {
		return ""
	}
	var bytes, total, rows int64
	copied := 0
	for _, t := range st.Tables {
		bytes += t.Bytes
		total += max(t.TotalBytes, t.Bytes)
		rows += t.Rows
		if t.State == "copied" {
			copied++
		}
	}
	switch st.Phase {
	case "copy":
		if b.prevT.IsZero() && !st.Started.IsZero() && now.After(st.Started) {
			// The first look: the average since the copy started.
			b.rate = float64(bytes) / now.Sub(st.Started).Seconds()
		} else if now.After(b.prevT) && bytes >= b.prev {
			r := float64(bytes-b.prev) / now.Sub(b.prevT).Seconds()
			if b.rate == 0 {
				b.rate = r
			} else {
				b.rate = 0.7*b.rate + 0.3*r
			}
		}
		b.prev, b.prevT = bytes, now
		frac := 0.0
		if total > 0 {
			frac = min(1, float64(bytes)/float64(total))
		}
		eta := "ETA unknown"
		if b.rate > 0 && total >= bytes {
			eta = "ETA " + (time.Duration(float64(total-bytes) / b.rate * float64(time.Second))).Round(time.Second).String()
		}
		return fmt.Sprintf("copy %s %3.0f%%  %s of %s  %d rows  %d/%d tables  %s/s  %s",
			meter(frac, 24), 100*frac, check.PrettyBytes(bytes), check.PrettyBytes(total),
			rows, copied, len(st.Tables), check.PrettyBytes(int64(b.rate)), eta)
	case "index":
		line := fmt.Sprintf("index %d/%d indexes and constraints built", st.Indexes.Done, st.Indexes.Total)
		if len(st.Indexes.Running) > 0 {
			line += "; now: " + strings.Join(st.Indexes.Running, ", ")
		}
		return fitLine(line)
	}
	return ""
}
