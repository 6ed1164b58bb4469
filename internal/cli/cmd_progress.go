package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/pgmove/pgmove/internal/cluster"
	"github.com/pgmove/pgmove/internal/progress"
)

type progressOptions struct {
	json     bool
	watch    bool
	wait     bool
	maxLag   string
	timeout  time.Duration
	interval time.Duration
	serve    string
	retained maxRetainedFlag
}

func newProgressCmd(g *globals) *cobra.Command {
	o := &progressOptions{}
	cmd := &cobra.Command{
		Use:   "progress",
		Short: "Show per-table copy state, replication lag, throughput and ETA",
		Long: `progress shows, per table, the initial copy's state (waiting, copying, copied,
catching up, ready) with rows and bytes copied; and overall the replication
lag in bytes and seconds, measured from the source's current WAL position,
the throughput, an ETA and a one-line summary. Problems are named with
their fix: a side that cannot be reached, tables of the selection the
publication, the subscription or the target lack, a disabled subscription,
an apply that is down and why (schema drift that stops it, error counts,
REPLICA IDENTITY FULL without equality), a missing slot.

What pgmove cannot know is "unknown" in the text and null in --json (the
same report): lag, ETA and readiness while a side is down. ROWS are the
rows the snapshot copy loaded, the live COPY count, or ~ a planner estimate.

--watch refreshes in place until interrupted. --wait returns once every
table replicates and the lag is at most --max-lag (default 0): after writes
on the source stopped, that is the moment to run copy-seq. Without a
subscription it fails at once; with a side down it retries until --timeout.

--serve ADDR serves the same report over HTTP until interrupted (SIGINT or
SIGTERM), sampling every --interval whether or not a migrate runs:
Prometheus metrics at /metrics, a live page at /, the --json report at
/api/progress. A port alone (":9187") listens on loopback only.

` + maxRetainedHelp + `

Exit status 0, or 3 while a problem is reported or a side is unreachable.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.serve != "" && (o.watch || o.wait || o.json) {
				return &usageError{fmt.Errorf("--serve runs on its own: leave out --watch, --wait and --json (/api/progress is the --json report)")}
			}
			s, err := newSession(g, "progress")
			if err != nil {
				return err
			}
			defer s.close()
			return runProgress(cmd.Context(), s, o)
		},
	}
	cmd.Flags().BoolVar(&o.json, "json", false, "print as JSON (one object per refresh with --watch)")
	cmd.Flags().BoolVarP(&o.watch, "watch", "w", false, "refresh until interrupted")
	cmd.Flags().DurationVar(&o.interval, "interval", 2*time.Second, "refresh interval for --watch, sampling interval for --serve")
	cmd.Flags().BoolVar(&o.wait, "wait", false, "wait until every table replicates and the lag is at most --max-lag")
	cmd.Flags().StringVar(&o.maxLag, "max-lag", "0", "lag --wait waits for, e.g. 0 or 16MB")
	cmd.Flags().DurationVar(&o.timeout, "timeout", 0, "give up --wait after this long (0: wait until interrupted)")
	cmd.Flags().StringVar(&o.serve, "serve", "", "serve /metrics, a live page at / and /api/progress on `ADDR` (\":9187\" is 127.0.0.1:9187)")
	o.retained.register(cmd)
	return cmd
}

func runProgress(ctx context.Context, s *session, o *progressOptions) error {
	if o.serve != "" {
		return serveProgress(ctx, s, o)
	}
	srcErr, dstErr := s.connect(ctx, true, true)
	if isUsage(srcErr) {
		return srcErr // the target is the source itself
	}
	// A copy.json of another migration is set aside before it is read.
	if _, err := s.openJournal(); err != nil {
		return err
	}
	maxRetained, err := o.retained.bytes()
	if err != nil {
		return err
	}
	if o.wait {
		maxLag, err := parseSizeFlag("--max-lag", o.maxLag)
		if err != nil {
			return err
		}
		return waitProgress(ctx, s, maxLag, maxRetained, o.timeout, srcErr, dstErr)
	}
	sm := &progress.Sampler{M: s.m, Src: s.src, Dst: s.dst, SrcErr: srcErr, DstErr: dstErr, MaxRetained: maxRetained}
	if !o.watch {
		r, err := sm.Sample(ctx)
		if err != nil {
			return err
		}
		// A second look a second later gives rates and an ETA, unless
		// the first already says there is nothing to measure.
		if r.Source.Reachable && r.Target.Reachable && (r.Subscribed() || r.Copy != nil) {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Second):
			}
			if r, err = sm.Sample(ctx); err != nil {
				return err
			}
		}
		if o.json {
			if err := r.WriteJSON(s.g.stdout); err != nil {
				return err
			}
		} else {
			r.WriteText(s.g.stdout)
		}
		return reportExit(r)
	}
	tty := isTerminal(s.g.stdout)
	for {
		r, err := sm.Sample(ctx)
		if err != nil {
			return err
		}
		switch {
		case o.json:
			_ = r.WriteJSON(s.g.stdout)
		case tty:
			fmt.Fprint(s.g.stdout, "\033[H\033[2J")
			fmt.Fprintf(s.g.stdout, "pgmove progress  %s → %s  %s\n\n", s.m.Src.Display(), s.m.Dst.Display(), r.Time.Format(time.TimeOnly))
			r.WriteText(s.g.stdout)
		default:
			fmt.Fprintf(s.g.stdout, "%s %s\n", r.Time.Format(time.TimeOnly), r.Summary())
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(o.interval):
		}
	}
}

// reportExit is exit 3 while the report shows something that blocks a
// switchover (a side unreachable, a problem), naming the first of them.
func reportExit(r *progress.Report) error {
	if !r.Blocking() {
		return nil
	}
	return withCode(ExitProblems, fmt.Errorf("%s", r.Problems[0]))
}

// waitProgress is progress --wait: it returns once the migration caught up.
// Without a subscription (and no copy running) it fails at once; while a side
// cannot be reached it says so on stderr and retries until the timeout.
func waitProgress(ctx context.Context, s *session, maxLag, maxRetained int64, timeout time.Duration, srcErr, dstErr error) error {
	start := time.Now()
	var deadline <-chan time.Time
	if timeout > 0 {
		deadline = time.After(timeout)
	}
	for {
		if srcErr == nil && dstErr == nil {
			remaining := time.Duration(0)
			if timeout > 0 {
				if remaining = timeout - time.Since(start); remaining <= 0 {
					remaining = time.Millisecond
				}
			}
			r, err := waitCaughtUp(ctx, s, maxLag, maxRetained, remaining)
			if err == nil {
				fmt.Fprintln(s.g.stdout, r.Summary())
				return nil
			}
			srcErr, dstErr = s.dropClosed()
			if srcErr == nil && dstErr == nil {
				return err
			}
		}
		down := errors.Join(srcErr, dstErr)
		fmt.Fprintf(s.g.stderr, "pgmove: progress --wait: %s; retrying until the timeout\n", cluster.OneLine(down.Error()))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline:
			return withCode(ExitProblems, fmt.Errorf("not caught up after %s: %s; lag and ETA unknown", timeout, cluster.OneLine(down.Error())))
		case <-time.After(2 * time.Second):
		}
		srcErr, dstErr = s.connect(ctx, true, true)
	}
}

func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
