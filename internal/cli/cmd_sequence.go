package cli

import (
	"context"
	"fmt"
	"runtime"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/pgmove/pgmove/internal/carry"
	"github.com/pgmove/pgmove/internal/check"
	"github.com/pgmove/pgmove/internal/sequence"
)

type copySeqOptions struct {
	offset        int64
	dryRun        bool
	sequencesOnly bool
	jobs          int
	json          bool
}

func newCopySeqCmd(g *globals) *cobra.Command {
	o := &copySeqOptions{}
	cmd := &cobra.Command{
		Use:   "copy-seq",
		Short: "At the switch: carry sequences, large objects, unlogged tables and materialized views to the target",
		Long: `copy-seq is the switch moment's step: it carries to the target everything
logical replication does not.

  sequences          last_value and is_called of every sequence on the source —
                     all of them, owned by a column or not, identity columns
                     included — set on the target in one transaction; a target
                     sequence already past the source's is left alone.
                     --offset N moves each N values further in its direction
                     (clamped to its bounds), a margin for writes that may
                     still land on the source.
  large objects      created, rewritten or deleted so the target's are the
                     source's, by OID and content.
  unlogged tables    their rows copied again (replication skips them).
  materialized views refreshed on the target (those the source has populated).

Run it after writes on the source stopped and the lag reached zero
(pgmove progress --wait). Rerunning does only what still differs.
--sequences-only restricts it to the seed's copy-seq.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := newSession(g, "copy-seq")
			if err != nil {
				return err
			}
			defer s.close()
			return s.withJSON(o.json, o.dryRun, func() error { return runCopySeq(cmd.Context(), s, o) })
		},
	}
	cmd.Flags().Int64Var(&o.offset, "offset", 0, "move every sequence N values past the source's")
	cmd.Flags().BoolVar(&o.dryRun, "dry-run", false, "print the statements, change nothing")
	cmd.Flags().BoolVar(&o.sequencesOnly, "sequences-only", false, "carry only the sequences")
	cmd.Flags().BoolVar(&o.json, "json", false, "print what was done (or, with --dry-run, would be) as one JSON object")
	cmd.Flags().IntVarP(&o.jobs, "jobs", "j", runtime.NumCPU(), "unlogged tables copied at once")
	return cmd
}

func runCopySeq(ctx context.Context, s *session, o *copySeqOptions) error {
	if o.offset < 0 {
		return &usageError{fmt.Errorf("--offset %d: the offset must not be negative; sequences must end at or past the source", o.offset)}
	}
	if err := atLeastOne("--jobs", o.jobs); err != nil {
		return err
	}
	if err := s.connectBoth(ctx); err != nil {
		return err
	}
	if !o.dryRun {
		if err := s.begin(ctx); err != nil {
			return err
		}
	}
	return s.step("copy-seq", func() (string, map[string]string, error) {
		res, err := sequence.Copy(ctx, s.runner(o.dryRun), s.src, s.dst, o.offset)
		if err != nil {
			return "", nil, err
		}
		msg := fmt.Sprintf("sequences copied to the target: %d (offset %d)", res.Set, o.offset)
		s.note("sequences", res.Set)
		s.note("sequences_ahead", res.Ahead)
		s.note("sequences_clamped", orEmpty(res.Clamped))
		s.note("offset", o.offset)
		if !o.dryRun {
			res.Fprint(s.g.stdout, "sequences copied to the target")
		}
		if o.sequencesOnly {
			return msg, nil, nil
		}
		more, err := carryRest(ctx, s, o.dryRun, o.jobs)
		return msg + "; " + more, nil, err
	})
}

// carryRest carries large objects, unlogged tables and materialized views.
func carryRest(ctx context.Context, s *session, dryRun bool, jobs int) (string, error) {
	r := s.runner(dryRun)
	out := func(msg string) string {
		if !dryRun {
			fmt.Fprintln(s.g.stdout, msg)
		}
		return msg
	}
	lo, err := carry.LargeObjects(ctx, r, s.src, s.dst)
	if err != nil {
		return "", err
	}
	s.note("large_objects", map[string]any{"created": lo.Created, "rewritten": lo.Replaced, "deleted": lo.Deleted, "unchanged": lo.Unchanged, "bytes": lo.Bytes})
	msgs := []string{out(fmt.Sprintf("large objects: %d created, %d rewritten, %d deleted, %d unchanged (%s copied)",
		lo.Created, lo.Replaced, lo.Deleted, lo.Unchanged, check.PrettyBytes(lo.Bytes)))}
	ul, err := carry.UnloggedTables(ctx, r, s.src, s.dst, s.m, jobs)
	if err != nil {
		return "", err
	}
	s.note("unlogged_tables", map[string]any{"tables": ul.Tables, "rows": ul.Rows})
	msgs = append(msgs, out(fmt.Sprintf("unlogged tables: %d copied again (%d rows)", ul.Tables, ul.Rows)))
	mv, err := carry.RefreshMaterializedViews(ctx, r, s.src, s.dst, s.m)
	if err != nil {
		return "", err
	}
	s.note("materialized_views", map[string]any{"refreshed": mv.Refreshed, "names": orEmpty(mv.Names)})
	msgs = append(msgs, out(fmt.Sprintf("materialized views: %d refreshed on the target", mv.Refreshed)))
	return strings.Join(msgs, "; "), nil
}

type nextSeqOptions struct {
	dryRun bool
	json   bool
}

func newNextSeqCmd(g *globals) *cobra.Command {
	o := &nextSeqOptions{}
	cmd := &cobra.Command{
		Use:   "next-seq [N]",
		Short: "Advance every target sequence N values (default 10000)",
		Long: `next-seq moves every sequence on the target N values ahead (default 10000, as
in the seed), in its direction and clamped to its bounds, in one
transaction: a margin against keys the source handed out after the last
copy-seq. Each run moves them further; gaps in sequences are harmless.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			n := int64(10000)
			if len(args) == 1 {
				v, err := strconv.ParseInt(args[0], 10, 64)
				if err != nil || v < 0 {
					return &usageError{fmt.Errorf("next-seq %q: N must be a non-negative integer", args[0])}
				}
				n = v
			}
			s, err := newSession(g, "next-seq")
			if err != nil {
				return err
			}
			defer s.close()
			return s.withJSON(o.json, o.dryRun, func() error { return runNextSeq(cmd.Context(), s, o, n) })
		},
	}
	cmd.Flags().BoolVar(&o.dryRun, "dry-run", false, "print the statements, change nothing")
	cmd.Flags().BoolVar(&o.json, "json", false, "print what was done (or, with --dry-run, would be) as one JSON object")
	return cmd
}

func runNextSeq(ctx context.Context, s *session, o *nextSeqOptions, n int64) error {
	if _, err := s.connect(ctx, false, true); err != nil {
		return err
	}
	// The source, when reachable, binds the journal to both servers like
	// every other step; the sequences moved are the target's only.
	if _, err := s.connect(ctx, true, false); isUsage(err) {
		return err
	}
	if !o.dryRun {
		if err := s.begin(ctx); err != nil {
			return err
		}
	}
	return s.step("next-seq", func() (string, map[string]string, error) {
		res, err := sequence.Advance(ctx, s.runner(o.dryRun), s.dst, n)
		if err != nil {
			return "", nil, err
		}
		s.note("sequences", res.Set)
		s.note("advanced_by", n)
		if o.dryRun {
			return fmt.Sprintf("%d sequence(s) would be advanced by %d", res.Set, n), nil, nil
		}
		res.Fprint(s.g.stdout, fmt.Sprintf("target sequences advanced by %d", n))
		return fmt.Sprintf("%d sequence(s) advanced by %d", res.Set, n), nil, nil
	})
}
