package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/pgmove/pgmove/internal/check"
	"github.com/pgmove/pgmove/internal/compare"
	"github.com/pgmove/pgmove/internal/config"
	"github.com/pgmove/pgmove/internal/schema"
)

type compareOptions struct {
	json     bool
	checksum bool
	schema   bool
	jobs     int
	tables   []string
	throttle int64
	retries  int
	repair   string
	apply    bool
	every    time.Duration
}

func newCompareCmd(g *globals) *cobra.Command {
	o := &compareOptions{}
	cmd := &cobra.Command{
		Use:   "compare",
		Short: "Compare row counts (and with --checksum full content) and sequences on both sides",
		Long: `compare counts the rows of every migrated table on both sides and
compares every sequence (the target passes when its next value is at or past
the source's).

With --checksum it compares every row's full content. A table is split into
ranges of its primary key (or of a unique index whose columns are all NOT
NULL; a unique index on NULL-able columns is refused as key); each range is
hashed on both sides at once, --jobs ranges at a time, biggest tables first,
on sessions that share one snapshot per side (an exported snapshot, REPEATABLE
READ). A range's hash is the row count and the sum of 64-bit row hashes, so
row order does not matter; a row's hash folds one hash per column, taken from
the binary value for integers, booleans, text, char, uuid, time and timestamps
and from the text (with output settings pinned, equal on every major 13-18)
for the rest. A range that differs is split again down to 10,000 rows, whose
rows are then matched by key: each difference is named as missing on the
target, extra on the target, or changed with the columns that differ. A table
without such a key is hashed whole: it is said to differ, its rows are not
named.

What is guaranteed: "equal" means every range's count and hash matched, on
one snapshot per side; two different contents of a range match only by a
64-bit hash collision (odds about 1 in 1.8e19 for a range), not under
adversarial input (the hash is not cryptographic). While a subscription
applies (the migration's slot exists), the target's snapshot is taken once it
has applied everything the source's holds (a fence LSN), and every row that
differs is read again on the source, the source's WAL flushed (a new fence),
and read on the target once it applied that fence, up to --retries rounds: a
row equal then was in flight and is not reported; a row that differs with the
same source content twice is reported; a row whose source kept changing in
every round is reported as "not settled", which is never equal (exit 3). Rows
written more often than a round trip (a hot counter row) are not settled
while the writes last. Without a subscription, the snapshots are the answer:
run it once writes stopped.

--repair FILE writes the SQL that makes the reported rows of the target equal
to the source's (INSERT ... ON CONFLICT DO UPDATE, UPDATE of the differing
columns, DELETE, each by key, values as quoted literals) in one transaction;
--apply runs it on the target. --tables narrows the selection, --throttle caps
the source rows read per second.

While it runs, a live bar on stderr shows, when stderr is a terminal, the
tables and key ranges done, the rows and bytes compared, the rate and the
ETA; elsewhere a line says the same every --progress-every.

With --schema it compares the schemas instead: tables, columns and types,
constraints, indexes, sequences, views, functions, triggers, policies,
types and extensions, each difference with the statement that brings the
target in line. DDL run on the source during a migration is not
replicated, and a column the target lacks stops the apply: this finds it.

Exit status 0 when equal, 3 when not, listing what differs.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := newSession(g, "compare")
			if err != nil {
				return err
			}
			defer s.close()
			return runCompare(cmd.Context(), s, o)
		},
	}
	cmd.Flags().BoolVar(&o.json, "json", false, "print as JSON")
	cmd.Flags().BoolVar(&o.checksum, "checksum", false, "hash the full content of every table")
	cmd.Flags().BoolVar(&o.schema, "schema", false, "compare the schemas instead of the data")
	cmd.Flags().IntVarP(&o.jobs, "jobs", "j", 2, "sessions per side: tables counted, or key ranges hashed, at once")
	cmd.Flags().StringSliceVar(&o.tables, "tables", nil, "compare only these tables of the selection (patterns as in include, comma-separated)")
	cmd.Flags().Int64Var(&o.throttle, "throttle", 0, "read at most this many source rows per second (0: no limit)")
	cmd.Flags().StringVar(&o.repair, "repair", "", "write to `FILE` the SQL that makes the target's differing rows equal to the source's (with --checksum)")
	cmd.Flags().BoolVar(&o.apply, "apply", false, "with --repair, run that SQL on the target in one transaction")
	cmd.Flags().DurationVar(&o.every, "progress-every", 5*time.Second, "when stderr is not a terminal, log a progress line this often (on a terminal a live bar shows it)")
	cmd.Flags().IntVar(&o.retries, "retries", 5, "while replication runs, how often a differing range is read again before it is called not settled")
	return cmd
}

func runCompare(ctx context.Context, s *session, o *compareOptions) error {
	var err error
	if err := atLeastOne("--jobs", o.jobs); err != nil {
		return err
	}
	var srcErr, dstErr error
	s.src, srcErr = compare.Connect(ctx, s.m.Src)
	s.dst, dstErr = compare.Connect(ctx, s.m.Dst)
	if err = errors.Join(srcErr, dstErr); err != nil {
		return err
	}
	if err := s.refuseSameDatabase(); err != nil {
		return err
	}
	if o.schema {
		return runCompareSchema(ctx, s, o)
	}
	co := compare.Options{Checksum: o.checksum, Jobs: o.jobs, Throttle: o.throttle, Retries: o.retries}
	for _, t := range o.tables {
		p, err := config.ParsePattern(t)
		if err != nil {
			return withCode(ExitUsage, fmt.Errorf("--tables %q: %w", t, err))
		}
		co.Tables = append(co.Tables, p)
	}
	if o.repair != "" && !o.checksum || o.apply && o.repair == "" {
		return withCode(ExitUsage, fmt.Errorf("--repair FILE needs --checksum, and --apply needs --repair FILE"))
	}
	if o.throttle < 0 || o.retries < 1 {
		return withCode(ExitUsage, fmt.Errorf("--throttle must be 0 or more and --retries 1 or more"))
	}
	if o.every <= 0 {
		return withCode(ExitUsage, fmt.Errorf("--progress-every %s: want a positive duration", o.every))
	}
	co.Progress = &compare.Progress{}
	line := func(bar bool) func(time.Time) string {
		return func(time.Time) string { return compareLine(co.Progress.Snapshot(), bar) }
	}
	var stop func()
	if s.g.bar != nil {
		stop = s.g.bar.follow(line(true), 250*time.Millisecond)
	} else {
		stop = plainLines(line(false), o.every)
	}
	r, err := compare.Run(ctx, s.m, s.src, s.dst, co)
	stop()
	if err != nil {
		return err
	}
	if o.repair != "" {
		sql, n := r.Repair()
		// 0600: the file holds the source's row values.
		if err := os.WriteFile(o.repair, []byte(sql), 0o600); err != nil {
			return fmt.Errorf("repair: %w", err)
		}
		r.Repaired = &compare.Repaired{File: o.repair, Statements: n}
		if o.apply && n > 0 {
			if err := compare.ApplyRepair(ctx, s.dst, sql); err != nil {
				return err
			}
			r.Repaired.Applied = true
		}
	}
	if o.json {
		if err := r.WriteJSON(s.g.stdout); err != nil {
			return err
		}
	} else {
		r.WriteText(s.g.stdout)
	}
	if !r.Equal {
		return withCode(ExitProblems, fmt.Errorf("source and target differ; see the FAIL lines"))
	}
	return nil
}

func runCompareSchema(ctx context.Context, s *session, o *compareOptions) error {
	ds, err := schema.Diff(ctx, s.src, s.dst)
	if err != nil {
		return err
	}
	if o.json {
		type diff struct {
			Kind    string `json:"kind"`
			Object  string `json:"object"`
			Source  string `json:"source,omitempty"`
			Target  string `json:"target,omitempty"`
			Fix     string `json:"fix,omitempty"`
			Warning bool   `json:"warning,omitempty"`
		}
		out := []diff{}
		for _, d := range ds {
			out = append(out, diff{d.Kind, d.Object, d.Source, d.Target, d.Fix, d.Warning})
		}
		enc := json.NewEncoder(s.g.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			return err
		}
	} else {
		schema.WriteDiff(s.g.stdout, ds)
	}
	if n := len(schema.Blocking(ds)); n > 0 {
		return withCode(ExitProblems, fmt.Errorf("target: its schema differs from the source's in %d place(s); the fixes are listed above", n))
	}
	return nil
}

// compareLine is the comparison's progress: the bar's line on a terminal
// (bar), else a plain line; "" before there is anything to say.
func compareLine(p compare.ProgressSnapshot, bar bool) string {
	switch p.Stage {
	case "":
		return ""
	case compare.StagePrepare:
		return fmt.Sprintf("compare: reading the columns, keys and key ranges of %d table(s)", p.Tables)
	case compare.StageRecheck:
		return "compare: reading the rows that differed again, while replication applies"
	case compare.StageSequences:
		return "compare: sequences"
	}
	plural := "(s)"
	if bar {
		plural = "s" // the bar's line is short
	}
	var parts []string
	parts = append(parts, fmt.Sprintf("%d/%d table%s", p.TablesDone, p.Tables, plural))
	if p.Stage == compare.StageChecksum {
		parts = append(parts, fmt.Sprintf("%d/%d range%s", p.RangesDone, p.Ranges, plural))
	}
	parts = append(parts, fmt.Sprintf("%d row%s", p.Rows, plural))
	if p.Bytes > 0 {
		parts = append(parts, fmt.Sprintf("%s of %s", check.PrettyBytes(p.BytesDone), check.PrettyBytes(p.Bytes)))
	}
	if r, ok := p.RowsPerSecond(); ok {
		parts = append(parts, fmt.Sprintf("%.0f rows/s", r))
	} else {
		parts = append(parts, "rate unknown")
	}
	if eta, ok := p.ETA(); ok {
		parts = append(parts, "ETA "+eta.Round(time.Second).String())
	} else {
		parts = append(parts, "ETA unknown")
	}
	what := "counted"
	if p.Stage == compare.StageChecksum {
		what = "hashed"
	}
	if !bar {
		return "compare: " + what + " " + strings.Join(parts, ", ")
	}
	f := p.Fraction()
	pct := "  ?%"
	if f >= 0 {
		pct = fmt.Sprintf("%3.0f%%", 100*f)
	}
	return fitLine(fmt.Sprintf("compare %s %s  %s", meter(max(f, 0), 20), pct, strings.Join(parts, "  ")))
}
