package web

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/pgmove/pgmove/internal/progress"
	"github.com/pgmove/pgmove/internal/state"
)

//go:embed assets/index.html
var assets embed.FS

// Snapshot is the latest look, as the page reads it from /api/page: the
// progress report (nil while no sample succeeded) and what the page shows
// beside it.
type Snapshot struct {
	Report *progress.Report `json:"report"`
	Phase  string           `json:"phase"`
	// Error is why the last sample failed, when it did; the figures are
	// then unknown (absent from /metrics) until a sample succeeds.
	Error     string     `json:"error,omitempty"`
	SampledAt time.Time  `json:"sampled_at"`
	Pause     *Pause     `json:"last_pause"`
	Log       []LogEntry `json:"log"`
	Lag       []LagPoint `json:"lag_history"`
	// PerTableLimit is the table count up to which /metrics labels the
	// copied bytes and rows by table.
	PerTableLimit int `json:"per_table_limit"`
}

// Pause is the last switchover's (or rollback's) pause, from the journal.
type Pause struct {
	Step    string    `json:"step"`
	Seconds float64   `json:"seconds"`
	Time    time.Time `json:"time"`
}

// LogEntry is one journal event as the page shows it (without its data,
// which is pgmove's own bookkeeping).
type LogEntry struct {
	Time    time.Time `json:"time"`
	Step    string    `json:"step"`
	Status  string    `json:"status"`
	Message string    `json:"message,omitempty"`
}

// LagPoint is the lag at one sample; nil where it was unknown.
type LagPoint struct {
	Time    time.Time `json:"t"`
	Bytes   *int64    `json:"bytes"`
	Seconds *float64  `json:"seconds"`
}

// Server samples a migration on a ticker and serves the latest sample.
type Server struct {
	// Sample takes one look at the migration (it reconnects a side that
	// went away). Events reads the journal; nil reads none.
	Sample func(context.Context) (*progress.Report, error)
	Events func() ([]state.Event, error)
	// Interval between samples (default 2s); History, how far back the
	// lag chart goes (default 10 minutes); PerTableLimit, above how many
	// tables the copied bytes and rows are one summed series (default 100).
	Interval      time.Duration
	History       time.Duration
	PerTableLimit int

	mu   sync.RWMutex
	snap *Snapshot
	lag  []LagPoint
}

// ListenAddr is the address --serve listens on: loopback when only a port
// is given (":9187" or "9187" is 127.0.0.1:9187), the address as given
// otherwise.
func ListenAddr(addr string) (string, error) {
	if _, err := strconv.ParseUint(addr, 10, 16); err == nil {
		addr = ":" + addr
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("--serve %q: want HOST:PORT or :PORT (loopback), e.g. 127.0.0.1:9187", addr)
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || (n == 0 && port != "0") {
		return "", fmt.Errorf("--serve %q: the port must be a number from 0 to 65535, e.g. 127.0.0.1:9187", addr)
	}
	if host == "" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port), nil
}

// Listen opens addr, with a one-line error that says what to do when it
// cannot.
func Listen(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		return nil, fmt.Errorf("--serve %s: address already in use; stop what listens there or give another port", addr)
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return nil, fmt.Errorf("--serve %s: no interface of this host has that address; give one of its addresses, or :PORT for loopback", addr)
	case errors.Is(err, syscall.EACCES):
		return nil, fmt.Errorf("--serve %s: permission denied; give a port above 1023", addr)
	case err != nil:
		var op *net.OpError
		if errors.As(err, &op) && op.Err != nil {
			err = op.Err
		}
		return nil, fmt.Errorf("--serve %s: %v; give another address", addr, err)
	}
	return ln, nil
}

func (s *Server) interval() time.Duration {
	if s.Interval <= 0 {
		return 2 * time.Second
	}
	return s.Interval
}

func (s *Server) perTableLimit() int {
	if s.PerTableLimit <= 0 {
		return 100
	}
	return s.PerTableLimit
}

// Run samples now and then every interval until ctx ends.
func (s *Server) Run(ctx context.Context) {
	t := time.NewTicker(s.interval())
	defer t.Stop()
	for {
		s.tick(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *Server) tick(ctx context.Context) {
	// A sample must not outlive a few intervals: a server that stopped
	// answering makes it fail, and the next tick tries again.
	sctx, cancel := context.WithTimeout(ctx, max(5*s.interval(), 10*time.Second))
	defer cancel()
	r, err := s.Sample(sctx)
	if ctx.Err() != nil {
		return
	}
	var events []state.Event
	if s.Events != nil {
		events, _ = s.Events() // a journal not there yet is no event
	}
	s.observe(r, err, events, time.Now())
}

// observe makes a sample the latest one.
func (s *Server) observe(r *progress.Report, err error, events []state.Event, now time.Time) {
	snap := &Snapshot{SampledAt: now, PerTableLimit: s.perTableLimit(), Log: []LogEntry{}}
	if err != nil {
		snap.Error = err.Error()
		r = nil
	}
	snap.Report = r
	snap.Phase = phaseOf(r, events)
	for _, e := range events {
		if (e.Step == "switchover" || e.Step == "rollback") && e.Status == state.Done {
			if ms, err := strconv.ParseFloat(e.Data["pause_ms"], 64); err == nil {
				snap.Pause = &Pause{Step: e.Step, Seconds: ms / 1000, Time: e.Time}
			}
		}
	}
	from := max(0, len(events)-30)
	for i := len(events) - 1; i >= from; i-- { // newest first
		e := events[i]
		snap.Log = append(snap.Log, LogEntry{Time: e.Time, Step: e.Step, Status: e.Status, Message: e.Message})
	}
	p := LagPoint{Time: now}
	if r != nil {
		p.Bytes, p.Seconds = r.LagBytes, r.LagSeconds
	}
	history := s.History
	if history <= 0 {
		history = 10 * time.Minute
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lag = append(s.lag, p)
	i := 0
	for i < len(s.lag) && now.Sub(s.lag[i].Time) > history {
		i++
	}
	s.lag = append([]LagPoint{}, s.lag[i:]...)
	snap.Lag = s.lag
	s.snap = snap
}

func (s *Server) latest() *Snapshot {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.snap
}

// Handler serves /, /api/progress, /api/page and /metrics from the latest
// sample.
func (s *Server) Handler() http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(&collector{s: s}, &copyCollector{s: s})
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.HTTPErrorOnError}))
	mux.HandleFunc("GET /api/progress", func(w http.ResponseWriter, _ *http.Request) {
		snap := s.latest()
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		if snap == nil || snap.Report == nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			msg := "no sample yet"
			if snap != nil {
				msg = snap.Error
			}
			_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
			return
		}
		// The same encoding as progress --json.
		_ = snap.Report.WriteJSON(w)
	})
	mux.HandleFunc("GET /api/page", func(w http.ResponseWriter, _ *http.Request) {
		snap := s.latest()
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		if snap == nil {
			snap = &Snapshot{Phase: "unknown", Error: "no sample yet", Log: []LogEntry{}, Lag: []LagPoint{}}
		}
		_ = json.NewEncoder(w).Encode(snap)
	})
	page, _ := assets.ReadFile("assets/index.html")
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Content-Security-Policy", "default-src 'self'; style-src 'self' 'unsafe-inline'; script-src 'self' 'unsafe-inline'")
		_, _ = w.Write(page)
	})
	return mux
}

// Serve runs the sampler and the HTTP server on ln until ctx ends, then
// stops both: requests under way get a few seconds to finish.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan struct{})
	go func() { defer close(done); s.Run(ctx) }()
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer scancel()
	_ = srv.Shutdown(sctx)
	cancel()
	<-done
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}
