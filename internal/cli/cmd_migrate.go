package cli

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/spf13/cobra"

	"github.com/pgmove/pgmove/internal/carry"
	"github.com/pgmove/pgmove/internal/catalog"
	"github.com/pgmove/pgmove/internal/check"
	"github.com/pgmove/pgmove/internal/cluster"
	"github.com/pgmove/pgmove/internal/config"
	"github.com/pgmove/pgmove/internal/copy"
	"github.com/pgmove/pgmove/internal/phase"
	"github.com/pgmove/pgmove/internal/progress"
	"github.com/pgmove/pgmove/internal/replication"
	"github.com/pgmove/pgmove/internal/schema"
	"github.com/pgmove/pgmove/internal/state"
)

type migrateOptions struct {
	copy       copyFlags
	maxLag     string
	timeout    time.Duration
	retained   maxRetainedFlag
	withOwners bool
	withGrants bool
	roles      rolesFlags
	dryRun     bool
	json       bool
}

func newMigrateCmd(g *globals) *cobra.Command {
	o := &migrateOptions{}
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "check, copy-schema, create-pub, create-sub, then wait until the target has caught up",
		Long: `migrate runs the whole stock migration: check (and stops on anything
blocking), copy-schema, create-pub, create-sub, then follows the progress
until every table is replicating and the lag is below --max-lag. That is the
state in which a switchover can begin: migrate then exits 0 and leaves the
replication running in the servers.

With --copy snapshot (the default), copy-schema restores the tables without
their indexes, the data is copied in parallel under the slot's snapshot,
then indexes and constraints are built in parallel and the rest of the
schema restored while changes stream. --copy native is the seed's path:
the whole schema, then PostgreSQL's own table sync.

Each step is safe to rerun, so after an interruption migrate picks up where
it stopped (a snapshot copy cut short restarts from a new slot; it says so).
A second pgmove on the same migration is refused.

--dry-run connects and reads both catalogues, runs check, then prints every
statement of every step in order (or, for the copy, what it would do) and
changes nothing. --json prints what was done as one JSON object.

` + maxRetainedHelp + ` migrate's wait for the catch-up stops at once
(exit 3) on a lost slot.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			began := time.Now()
			s, err := newSession(g, "migrate")
			if err != nil {
				return err
			}
			defer s.close()
			err = s.withJSON(o.json, o.dryRun, func() error { return runMigrate(cmd.Context(), s, o) })
			if err == nil && !o.dryRun {
				phase.Done(phase.Migrate, began)
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.maxLag, "max-lag", "", "lag below which the target counts as caught up (default max_lag from the config, or 16MB)")
	f.DurationVar(&o.timeout, "timeout", 0, "give up waiting for the catch-up after this long (0: wait until interrupted)")
	f.BoolVar(&o.withOwners, "with-owners", false, "restore object owners (the roles must exist on the target)")
	f.BoolVar(&o.withGrants, "with-grants", false, "restore GRANTs and owners (the roles must exist on the target)")
	f.BoolVar(&o.dryRun, "dry-run", false, "print every step's statements in order, change nothing")
	f.BoolVar(&o.json, "json", false, "print what was done (or, with --dry-run, would be) as one JSON object")
	o.copy.register(cmd)
	o.roles.register(cmd)
	o.retained.register(cmd)
	return cmd
}

func runMigrate(ctx context.Context, s *session, o *migrateOptions) error {
	maxLag := s.m.MaxLag
	if o.maxLag != "" {
		v, err := parseSizeFlag("--max-lag", o.maxLag)
		if err != nil {
			return err
		}
		maxLag = v
	}
	maxRetained, err := o.retained.bytes()
	if err != nil {
		return err
	}
	out := s.g.stdout
	copyOpts, err := o.copy.resolve(s)
	if err != nil {
		return err
	}
	snapshot := o.copy.method == "snapshot"
	// The schema dump only reads the source: it runs while the checks do,
	// and is dropped if they block or the migration is under way already.
	var dump *schema.Prefetch
	defer func() { dump.Discard() }()
	co := carryFlags{withOwners: o.withOwners, withGrants: o.withGrants, roles: o.roles}.options()
	co.Probe = true
	began := time.Now()
	r, err := doCheckAnd(ctx, s, o.copy.method, co, func() { dump = schema.StartDump(ctx, s.m, s.src.Major()) })
	if err != nil {
		return err
	}
	s.note("ready", r.Ready)
	s.note("blocking", r.Errors())
	s.note("warnings", r.Warnings())
	if !r.Ready {
		var blocking []check.Finding
		for _, f := range r.Findings {
			if f.Severity == check.Error {
				blocking = append(blocking, f)
			}
		}
		s.note("findings", blocking)
		r.WriteText(out)
		err := withCode(ExitProblems, blockedError(r))
		s.addStep("check", "failed", cluster.OneLine(err.Error()), nil)
		return err
	}
	msg := fmt.Sprintf("check: ready (%d warning(s); pgmove check shows them)", r.Warnings())
	s.addStep("check", "done", msg, nil)
	phase.Done(phase.Check, began)
	fmt.Fprintln(out, msg)
	dry := o.dryRun
	if dry {
		fmt.Fprintln(out, "-- dry run: the statements of each step, in order; nothing is changed")
	} else if err := s.begin(ctx); err != nil {
		return err
	}

	sub, err := replication.Find(ctx, s.dst, s.m.SubName)
	if err != nil {
		return err
	}
	var archive *schema.Archive
	defer func() { archive.Remove() }()
	if sub != nil {
		fmt.Fprintf(out, "subscription %q exists: the migration is under way; resuming at the catch-up\n", s.m.SubName)
	} else {
		if err := o.roles.copy(ctx, s, dry); err != nil {
			return err
		}
		err := s.step("copy-schema", func() (string, map[string]string, error) {
			co := schema.CopyOptions{WithOwners: o.withOwners || o.withGrants, WithACL: o.withGrants}
			what := "schema"
			if snapshot {
				// Tables without indexes or constraints: the copy loads
				// faster into bare tables, and indexes are built after.
				co.Only = func(e schema.Entry) bool { return e.Section() == "pre-data" }
				what = "schema (tables without indexes; those come after the copy)"
				// A copy interrupted earlier left rows; the handoff deals with them.
				if s.journal != nil {
					if last, _ := s.journal.Last("copy"); last != nil {
						co.Force = true
					}
				}
			}
			co.Keep = snapshot // the post-data part is restored from it after the copy
			if dump != nil {
				a, err := dump.Take()
				if err != nil {
					return "", nil, err
				}
				archive, co.Reuse = a, a
			}
			if snapshot {
				co.Jobs = copyOpts.Jobs
			}
			co.DryRun, co.Out, co.SQL = dry, out, dry
			t0 := time.Now()
			res, err := schema.Copy(ctx, s.m, s.src, s.dst, co)
			if err != nil {
				return "", nil, err
			}
			if !dry {
				name := phase.Schema
				if snapshot {
					name = phase.PreData
				}
				phase.Done(name, t0, "objects", res.Restored)
			}
			archive = res.Archive
			noteSchema(s, res)
			msg := fmt.Sprintf("copy-schema: %s: %d object(s) restored, %d already on the target", what, res.Restored, res.Skipped)
			if dry {
				msg = fmt.Sprintf("copy-schema: %s: would restore %d object(s), %d already on the target", what, res.Restored, res.Skipped)
			}
			fmt.Fprintln(out, msg)
			return msg, nil, nil
		})
		if err != nil {
			return err
		}
	}
	if err := s.step("create-pub", func() (string, map[string]string, error) {
		t0 := time.Now()
		res, err := ensurePublication(ctx, s, dry, false)
		if err != nil {
			return "", nil, err
		}
		if !dry {
			phase.Done(phase.Publication, t0)
		}
		notePublication(s, res)
		msg := res.Summary(s.m.PubName)
		if dry {
			return "dry run, nothing changed; would be: " + msg, nil, nil
		}
		fmt.Fprintln(out, "create-pub: "+msg)
		return msg, nil, nil
	}); err != nil {
		return err
	}
	if dry {
		return migrateDryRest(ctx, s, o, snapshot, sub != nil, copyOpts, maxLag)
	}
	if snapshot && sub == nil {
		if err := s.step("create-sub", func() (string, map[string]string, error) {
			res, err := handoff(ctx, s, &o.copy, copyOpts, o.withOwners || o.withGrants, o.withGrants, archive)
			if err != nil {
				return "", nil, err
			}
			msg := fmt.Sprintf("create-sub: subscription %q streams changes after the snapshot copy", s.m.SubName)
			noteHandoff(s, res)
			if res.Resumed != "" {
				msg += " (" + res.Resumed + ")"
			}
			fmt.Fprintln(out, msg)
			return msg, nil, nil
		}); err != nil {
			return err
		}
	} else if snapshot {
		// A run that stopped after the subscription started may have left
		// foreign keys, triggers or policies to restore.
		if err := copy.RestoreRest(ctx, s.m, s.src, s.dst, copy.HandoffOptions{Copy: copyOpts, WithOwners: o.withOwners || o.withGrants, WithACL: o.withGrants, Out: out}); err != nil {
			return err
		}
		if err := finishAttach(ctx, s, sub); err != nil {
			return err
		}
	} else if err := s.step("create-sub", func() (string, map[string]string, error) {
		t0 := time.Now()
		res, err := ensureSubscription(ctx, s, false, false)
		if err != nil {
			return "", nil, err
		}
		phase.Done(phase.Subscription, t0)
		noteSubscription(s, res)
		msg := "create-sub: " + subscriptionMessage(s.m.SubName, res, false)
		fmt.Fprintln(out, msg)
		return msg, map[string]string{"oid": fmt.Sprint(res.OID)}, nil
	}); err != nil {
		return err
	}
	return s.step("catch-up", func() (string, map[string]string, error) {
		t0 := time.Now()
		r, err := waitCaughtUp(ctx, s, maxLag, maxRetained, o.timeout)
		if err != nil {
			return "", nil, err
		}
		// Large objects are not replicated: copy them now, so that the
		// switch only has to carry those that change meanwhile.
		lo, err := carry.LargeObjects(ctx, s.runner(false), s.src, s.dst)
		if err != nil {
			return "", nil, err
		}
		if lo.Created+lo.Replaced+lo.Deleted > 0 {
			fmt.Fprintf(out, "large objects: %d copied ahead of the switch (copy-seq carries later changes)\n", lo.Created+lo.Replaced)
		}
		s.note("large_objects_copied", lo.Created+lo.Replaced)
		phase.Done(phase.CatchUp, t0)
		msg := "caught up: " + r.Summary()
		fmt.Fprintln(out, msg)
		fmt.Fprintln(out, "next: stop writes on the source, pgmove progress --wait, pgmove copy-seq (sequences, large objects, unlogged tables, materialized views), pgmove compare --checksum, then switch traffic to the target")
		return msg, nil, nil
	})
}

// finishAttach completes a handoff that stopped between CREATE SUBSCRIPTION
// (made disabled) and its ENABLE, as a killed pgmove leaves it: the
// journal's create-sub started and never ended, and its copy is done at a
// consistent point. Without it the catch-up would wait for ever on a
// subscription nothing enables. A subscription disabled after create-sub
// ended (by a user, say) is left as it is.
func finishAttach(ctx context.Context, s *session, sub *catalog.Subscription) error {
	if sub.Enabled || s.journal == nil {
		return nil
	}
	last, err := s.journal.Last("create-sub")
	if err != nil || last == nil || last.Status != state.Started {
		return err
	}
	cp, err := s.journal.Last("copy")
	if err != nil || cp == nil || cp.Status != state.Done || cp.Data["slot"] != s.m.SlotName {
		return err
	}
	lsn, err := pglogrepl.ParseLSN(cp.Data["consistent_point"])
	if err != nil {
		return fmt.Errorf("journal: the copy's consistent point: %w", err)
	}
	return s.step("create-sub", func() (string, map[string]string, error) {
		published, err := catalog.PublicationTables(ctx, s.src, s.m.PubName)
		if err != nil {
			return "", nil, err
		}
		spec, err := subscriptionSpec(ctx, s, published)
		if err != nil {
			return "", nil, err
		}
		res, err := replication.AttachSubscription(ctx, s.runner(false), s.src, s.dst, spec, lsn)
		if err != nil {
			return "", nil, err
		}
		noteSubscription(s, res)
		msg := fmt.Sprintf("create-sub: subscription %q, created by an interrupted run, streams changes from the copy's consistent point %s", s.m.SubName, lsn)
		fmt.Fprintln(s.g.stdout, msg)
		return msg, nil, nil
	})
}

// migrateDryRest prints, for --dry-run, the steps after create-pub: the
// copy and subscription (as create-sub --dry-run does), the wait, and the
// large objects carried after it.
func migrateDryRest(ctx context.Context, s *session, o *migrateOptions, snapshot, subscribed bool, copyOpts copy.Options, maxLag int64) error {
	out := s.g.stdout
	if err := s.step("create-sub", func() (string, map[string]string, error) {
		switch {
		case snapshot && !subscribed:
			if err := describeHandoff(ctx, s, copyOpts); err != nil {
				return "", nil, err
			}
			return fmt.Sprintf("create-sub: would copy the data under a new slot's snapshot and create subscription %q on it", s.m.SubName), nil, nil
		case snapshot:
			fmt.Fprintln(out, "-- target: restore what an earlier run left of the schema's rest (foreign keys, triggers, policies), if anything")
		}
		res, err := ensureSubscription(ctx, s, true, false)
		if err != nil {
			return "", nil, err
		}
		noteSubscription(s, res)
		msg := subscriptionMessage(s.m.SubName, res, true)
		fmt.Fprintln(out, "-- "+msg)
		return "create-sub: " + msg, nil, nil
	}); err != nil {
		return err
	}
	return s.step("catch-up", func() (string, map[string]string, error) {
		msg := fmt.Sprintf("catch-up: would wait until every table replicates and the lag is below %s, then copy the large objects", check.PrettyBytes(maxLag))
		fmt.Fprintln(out, "-- "+msg)
		lo, err := carry.LargeObjects(ctx, s.runner(true), s.src, s.dst)
		if err != nil {
			return "", nil, err
		}
		s.note("large_objects_to_copy", lo.Created+lo.Replaced)
		return msg, nil, nil
	})
}

// waitCaughtUp follows the progress until every table replicates and the lag
// is below maxLag, printing a line every few seconds on stderr.
func waitCaughtUp(ctx context.Context, s *session, maxLag, maxRetained int64, timeout time.Duration) (*progress.Report, error) {
	sm := &progress.Sampler{M: s.m, Src: s.src, Dst: s.dst, DriftAfter: 10 * time.Second, MaxRetained: maxRetained}
	fence, err := progress.Fence(ctx, s.src)
	if err != nil {
		return nil, err
	}
	var deadline <-chan time.Time
	if timeout > 0 {
		deadline = time.After(timeout)
	}
	lastLine := time.Time{}
	for {
		r, err := sm.Sample(ctx)
		if err != nil {
			return nil, err
		}
		if r.Done(maxLag) && r.Confirmed(fence) {
			return r, nil
		}
		if r.SlotLost {
			// The source removed WAL the target needs: no wait ends it.
			return nil, withCode(ExitProblems, fmt.Errorf("%s", r.Problems[0]))
		}
		if !r.Subscribed() && (r.Copy == nil || r.Copy.Stale) {
			// Nothing will ever catch up: fail now rather than wait.
			return nil, withCode(ExitProblems, fmt.Errorf("%s", r.Summary()))
		}
		if time.Since(lastLine) >= 5*time.Second && len(r.Warnings) > 0 {
			slog.Warn("progress: " + r.Summary())
			lastLine = time.Now()
		} else if time.Since(lastLine) >= 5*time.Second {
			slog.Info("progress: " + r.Summary())
			lastLine = time.Now()
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("interrupted while waiting for the catch-up; the replication keeps running in the servers: pgmove progress --watch follows it, pgmove migrate resumes")
		case <-deadline:
			return nil, fmt.Errorf("not caught up after %s: %s", timeout, r.Summary())
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func parseSizeFlag(name, v string) (int64, error) {
	n, err := config.ParseSize(v)
	if err != nil {
		return 0, &usageError{fmt.Errorf("%s: %w", name, err)}
	}
	return n, nil
}
