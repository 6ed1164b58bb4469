package cli

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/pgmove/pgmove/internal/check"
	"github.com/pgmove/pgmove/internal/copy"
)

// copyBar draws the snapshot copy's progress as one live line on stderr
// when stderr is a terminal (migrate, create-sub): bytes and rows copied,
// tables, rate and ETA, then the index builds. It reads the copy's status
// file, which the copy of this process rewrites every 250 ms, so the copy
// engine knows nothing of it. Log lines go through it: the bar is cleared
// before each and drawn again after, so they stay whole. When stderr is not
// a terminal (CI, logs, pipes) there is no bar and the lines are as ever.
type copyBar struct {
	mu    sync.Mutex
	w     io.Writer
	dir   string
	line  string // what is drawn now, "" for nothing
	stop  chan struct{}
	done  chan struct{}
	prev  int64
	prevT time.Time
	rate  float64
}

// startCopyBar wraps g.stderr (and g.stdout, when it is a terminal too)
// with a bar, when stderr is a terminal and the logs are text. It draws
// nothing until setDir names the migration's context directory.
func (g *globals) startCopyBar() {
	if g.bar != nil || g.logFormat != "text" || !isTerminal(g.stderr) {
		return
	}
	b := &copyBar{w: g.stderr, stop: make(chan struct{}), done: make(chan struct{})}
	g.bar, g.stderr = b, b
	if isTerminal(g.stdout) {
		g.stdout = &barred{b: b, w: g.stdout}
	}
	go b.run()
}

// setDir names the context directory whose copy status the bar reads.
func (b *copyBar) setDir(dir string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.dir = dir
}

// barred is stdout on the bar's terminal: the bar is cleared before a
// result is written, and drawn again after.
type barred struct {
	b *copyBar
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

func (b *copyBar) run() {
	defer close(b.done)
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-t.C:
		}
		b.mu.Lock()
		dir := b.dir
		b.mu.Unlock()
		line := ""
		if dir != "" {
			line = b.render(dir, time.Now())
		}
		b.mu.Lock()
		if line != b.line {
			b.clear()
			b.line = line
			b.draw()
		}
		b.mu.Unlock()
	}
}

// Write writes a log line with the bar out of its way.
func (b *copyBar) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.clear()
	n, err := b.w.Write(p)
	b.draw()
	return n, err
}

func (b *copyBar) clear() {
	if b.line != "" {
		_, _ = io.WriteString(b.w, "\r\033[K")
	}
}

func (b *copyBar) draw() {
	if b.line != "" {
		_, _ = io.WriteString(b.w, b.line)
	}
}

// render is the bar for the copy this process runs, "" when none runs.
func (b *copyBar) render(dir string, now time.Time) string {
	st, err := copy.ReadStatus(dir)
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
		const width = 24
		full := int(frac * width)
		eta := "ETA unknown"
		if b.rate > 0 && total >= bytes {
			eta = "ETA " + (time.Duration(float64(total-bytes) / b.rate * float64(time.Second))).Round(time.Second).String()
		}
		return fmt.Sprintf("copy [%s%s] %3.0f%%  %s of %s  %d rows  %d/%d tables  %s/s  %s",
			strings.Repeat("#", full), strings.Repeat("-", width-full), 100*frac, check.PrettyBytes(bytes), check.PrettyBytes(total),
			rows, copied, len(st.Tables), check.PrettyBytes(int64(b.rate)), eta)
	case "index":
		line := fmt.Sprintf("index %d/%d indexes and constraints built", st.Indexes.Done, st.Indexes.Total)
		if len(st.Indexes.Running) > 0 {
			line += "; now: " + strings.Join(st.Indexes.Running, ", ")
		}
		if r := []rune(line); len(r) > 120 {
			line = string(r[:117]) + "..."
		}
		return line
	}
	return ""
}
