package cli

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	"github.com/pgmove/pgmove/internal/progress"
	"github.com/pgmove/pgmove/internal/state"
	"github.com/pgmove/pgmove/internal/web"
)

// serveProgress is progress --serve: one sampler, on a ticker, behind
// /metrics, / and /api/progress, until ctx ends (SIGINT, SIGTERM). A side
// that cannot be reached is reported as such and tried again at every
// sample; the server starts whether or not a migration runs.
func serveProgress(ctx context.Context, s *session, o *progressOptions) error {
	addr, err := web.ListenAddr(o.serve)
	if err != nil {
		return &usageError{err}
	}
	// The address first: a port in use fails at once, before any connection.
	ln, err := web.Listen(addr)
	if err != nil {
		return err
	}
	defer ln.Close()
	srcErr, dstErr := s.connect(ctx, true, true)
	if isUsage(srcErr) {
		return srcErr // the target is the source itself
	}
	j, err := s.openJournal()
	if err != nil {
		return err
	}
	sm := &progress.Sampler{M: s.m}
	var mu sync.Mutex // one sample at a time owns the session's connections
	sample := func(ctx context.Context) (*progress.Report, error) {
		mu.Lock()
		defer mu.Unlock()
		if s.src == nil || s.dst == nil {
			se, de := s.connect(ctx, s.src == nil, s.dst == nil)
			if isUsage(se) {
				return nil, se
			}
			if s.src == nil {
				srcErr = se
			}
			if s.dst == nil {
				dstErr = de
			}
		}
		sm.Src, sm.Dst, sm.SrcErr, sm.DstErr = s.src, s.dst, srcErr, dstErr
		r, err := sm.Sample(ctx)
		if err != nil {
			// A connection that broke is reopened at the next sample.
			se, de := s.dropClosed()
			if se != nil {
				srcErr = se
			}
			if de != nil {
				dstErr = de
			}
		}
		return r, err
	}
	srv := &web.Server{Sample: sample, Interval: o.interval, Events: func() ([]state.Event, error) { return j.Events() }}
	slog.Info(fmt.Sprintf("progress: serving http://%s/ (metrics at /metrics, the --json report at /api/progress) every %s; Ctrl-C stops", ln.Addr(), o.interval))
	if err := srv.Serve(ctx, ln); err != nil {
		return err
	}
	slog.Info("progress: stopped serving")
	return nil
}
