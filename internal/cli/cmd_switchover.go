package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/pgmove/pgmove/internal/check"
	"github.com/pgmove/pgmove/internal/config"
	"github.com/pgmove/pgmove/internal/state"
	"github.com/pgmove/pgmove/internal/switchover"
)

type switchoverOptions struct {
	fence      string
	bouncers   []string
	bouncerINI string
	bouncerDB  string
	appRoles   []string
	maxPause   time.Duration
	maxLag     string
	switchHook string
	dryRun     bool
	json       bool
}

const switchoverHelp = `The switch, in order:

  preflight   every table replicating, the lag under --max-lag, long write
              transactions on the source reported; the way back prepared
              while the target takes no writes yet (a publication and a slot
              on the target, the source's subscription to them, disabled),
              a first pass of the sequences; the apply commits synchronously
              from now on, so the proof below comes at once.
  fence       --fence pgbouncer: PAUSE <db> on every --pgbouncer console
              (running transactions finish first); --fence database: the
              --app-role roles lose LOGIN and their sessions are terminated
              (default_transaction_read_only is no fence: any session can
              turn it off); --fence none: the application stopped writing.
  catch up    the source's WAL position after the fence is the fence LSN;
              the slot's confirmed position reaching it proves the target
              applied every commit before the fence.
  carry       the sequences (never moved back).
  switch      the forward subscription stopped; the reverse one started at
              the target's WAL position (origin = none on 16+), so every
              write on the target from now on reaches the source.
  route       the --pgbouncer-ini entry (named --pgbouncer-db, default the
              source database's name) pointed at the other side, RELOAD;
              and/or --switch-hook run (PGMOVE_DIRECTION, PGMOVE_HOST,
              PGMOVE_PORT, PGMOVE_DBNAME in its environment).
  resume      RESUME on every console. A database fence stays on the old
              side, which must take no writes now.

A failure before the switch, or a target that does not reach the fence
within --max-pause (default 2s), lifts the fence and exits 1: the
application goes on writing where it did, nothing lost, nothing switched.
Each stage is journaled: a rerun after a killed pgmove lifts a fence held
before the switch, or finishes a switch made (--switch-hook run again), and
says which; --dry-run then says which it would do.

While it runs, a live bar on stderr (when it is a terminal) shows the step,
its time, the pause so far and, in the catch-up, the WAL left to the fence;
elsewhere a line is logged as each step begins.`

func newSwitchoverCmd(g *globals) *cobra.Command {
	o := &switchoverOptions{}
	cmd := &cobra.Command{
		Use:   "switchover",
		Short: "Move the application from the source to the target in one pause, with replication back for a rollback",
		Long:  "switchover moves the application from the live source to the live target.\n\n" + switchoverHelp,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := newSession(g, "switchover")
			if err != nil {
				return err
			}
			defer s.close()
			return runSwitch(cmd.Context(), s, o, false)
		},
	}
	o.register(cmd)
	return cmd
}

func newRollbackCmd(g *globals) *cobra.Command {
	o := &switchoverOptions{}
	cmd := &cobra.Command{
		Use:   "rollback",
		Short: "After a switchover: move the application back to the source, through the reverse replication",
		Long:  "rollback is the switchover's mirror image: the target is fenced, the source\ncatches up to the fence through the reverse replication, sequences go back,\nthe traffic returns to the source and the forward replication starts again,\nso a second switchover is possible. It refuses when the reverse replication\nis not streaming.\n\n" + switchoverHelp,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := newSession(g, "rollback")
			if err != nil {
				return err
			}
			defer s.close()
			return runSwitch(cmd.Context(), s, o, true)
		},
	}
	o.register(cmd)
	return cmd
}

func (o *switchoverOptions) register(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&o.fence, "fence", "", "how writes stop: pgbouncer (default when --pgbouncer is given), database, none")
	f.StringArrayVar(&o.bouncers, "pgbouncer", nil, "pgbouncer admin console URL, e.g. postgres://admin@h:6432/pgbouncer (repeatable)")
	f.StringVar(&o.bouncerINI, "pgbouncer-ini", "", "pgbouncer.ini whose database entry is pointed at the other side")
	f.StringVar(&o.bouncerDB, "pgbouncer-db", "", "name of that entry and of the PAUSEd database (default: the source database's name)")
	f.StringArrayVar(&o.appRoles, "app-role", nil, "--fence database: an application role to fence (repeatable)")
	f.DurationVar(&o.maxPause, "max-pause", 0, "abandon the switch and lift the fence past this (default 2s)")
	f.StringVar(&o.maxLag, "max-lag", "1MB", "preflight: the lag at most")
	f.StringVar(&o.switchHook, "switch-hook", "", "shell command run between fence and resume to switch traffic (DNS, VIP)")
	f.BoolVar(&o.dryRun, "dry-run", false, "print every statement and command in order, change nothing")
	f.BoolVar(&o.json, "json", false, "print the result as JSON")
}

// resolve merges the flags over migration.yml's keys.
func (o *switchoverOptions) resolve(s *session) (switchover.Options, error) {
	m := s.m
	so := switchover.Options{Fence: o.fence, Bouncers: o.bouncers, BouncerINI: o.bouncerINI, BouncerDB: o.bouncerDB,
		AppRoles: o.appRoles, MaxPause: o.maxPause, SwitchHook: o.switchHook, DryRun: o.dryRun, Out: s.g.stdout}
	if o.json {
		so.Out = s.g.stderr
	}
	if so.Fence == "" {
		so.Fence = m.Fence
	}
	for _, u := range so.Bouncers {
		if err := config.CheckBouncerConsole(u); err != nil {
			return so, &usageError{fmt.Errorf("--pgbouncer: %w", err)}
		}
	}
	if len(so.Bouncers) == 0 {
		so.Bouncers = m.PgBouncer
	}
	if so.BouncerINI == "" {
		so.BouncerINI = m.PgBouncerINI
	}
	if so.BouncerDB == "" {
		so.BouncerDB = m.PgBouncerDB
	}
	if len(so.AppRoles) == 0 {
		so.AppRoles = m.AppRoles
	}
	if so.MaxPause == 0 {
		so.MaxPause = m.MaxPause
	}
	if so.MaxPause == 0 {
		so.MaxPause = 2 * time.Second
	}
	if so.MaxPause < 0 {
		return so, &usageError{fmt.Errorf("--max-pause %s: want a positive duration", so.MaxPause)}
	}
	if so.SwitchHook == "" {
		so.SwitchHook = m.SwitchHook
	}
	if so.Fence == "" {
		so.Fence = switchover.FenceNone
		if len(so.Bouncers) > 0 {
			so.Fence = switchover.FencePgBouncer
		}
	}
	switch so.Fence {
	case switchover.FencePgBouncer, switchover.FenceDatabase, switchover.FenceNone:
	default:
		return so, &usageError{fmt.Errorf("--fence %q: use pgbouncer, database or none", so.Fence)}
	}
	lag, err := parseSizeFlag("--max-lag", o.maxLag)
	if err != nil {
		return so, err
	}
	so.MaxLag = lag
	return so, nil
}

func runSwitch(ctx context.Context, s *session, o *switchoverOptions, back bool) error {
	so, err := o.resolve(s)
	if err != nil {
		return err
	}
	if err := s.connectBoth(ctx); err != nil {
		return err
	}
	if !so.DryRun {
		if err := s.begin(ctx); err != nil {
			return err
		}
		so.Journal = s.journal
	} else if j, err := state.Open(s.m.ContextDir); err == nil && j.Exists() {
		// Read only: a dry run says what a rerun after a killed switch
		// would finish or undo, instead of refusing the state it left.
		so.Journal = j
	}
	run, name := switchover.Switchover, "switchover"
	if back {
		run, name = switchover.Rollback, "rollback"
	}
	if !so.DryRun {
		p := &switchover.Progress{}
		if b := s.g.bar; b != nil {
			// Redrawn at each step too: the pause's steps take milliseconds.
			p.OnStep = func(switchover.ProgressSnapshot) { b.poke() }
			defer b.follow(func(time.Time) string { return switchLine(name, p.Snapshot(), true) }, 100*time.Millisecond)()
		} else {
			p.OnStep = func(ps switchover.ProgressSnapshot) { slog.Info(switchLine(name, ps, false)) }
		}
		so.Progress = p
	}
	res, err := run(ctx, s.m, s.src, s.dst, so)
	if o.json && res != nil {
		enc := json.NewEncoder(s.g.stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(res)
	}
	return err
}

// switchLine is the switch's progress: the bar's line on a terminal (bar),
// else the plain line logged as each step begins; "" before the start.
func switchLine(name string, p switchover.ProgressSnapshot, bar bool) string {
	if p.Step == "" {
		return ""
	}
	var b strings.Builder
	b.WriteString(name + ": ")
	b.WriteString(p.Step)
	if p.Detail != "" {
		b.WriteString(" (" + p.Detail + ")")
	}
	if bar && p.Step != switchover.StepDone && p.Step != switchover.StepAbandoned {
		b.WriteString(" " + shortDuration(p.StepElapsed))
	}
	if p.LagLeft >= 0 {
		b.WriteString(", lag left " + check.PrettyBytes(p.LagLeft))
	}
	b.WriteString("; elapsed " + shortDuration(p.Elapsed))
	switch {
	case p.Pausing:
		fmt.Fprintf(&b, ", paused %s of at most %s", shortDuration(p.Paused), p.MaxPause)
	case p.Paused > 0:
		fmt.Fprintf(&b, ", the pause took %s", shortDuration(p.Paused))
	}
	if len(p.Done) > 0 {
		last := p.Done[len(p.Done)-1]
		if bar {
			var done []string
			for _, s := range p.Done {
				done = append(done, s.Name+" "+shortDuration(s.Took))
			}
			b.WriteString(" [" + strings.Join(done, ", ") + "]")
		} else {
			fmt.Fprintf(&b, "; %s took %s", last.Name, shortDuration(last.Took))
			if last.Name == "catch-up" && p.FenceLag >= 0 {
				fmt.Fprintf(&b, " from %s behind the fence", check.PrettyBytes(p.FenceLag))
			}
		}
	}
	if bar {
		return fitLine(b.String())
	}
	return b.String()
}

// shortDuration is "12 ms" under a second, else "3.2s".
func shortDuration(d time.Duration) string {
	if d < time.Second {
		return fmt.Sprintf("%d ms", d.Milliseconds())
	}
	return d.Round(100 * time.Millisecond).String()
}
