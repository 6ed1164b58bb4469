package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/pgmove/pgmove/internal/catalog"
	"github.com/pgmove/pgmove/internal/check"
)

type identityOptions struct {
	json   bool
	apply  bool
	dryRun bool
}

func newCheckReplicaIdentityCmd(g *globals) *cobra.Command {
	o := &identityOptions{}
	cmd := &cobra.Command{
		Use:   "check-replica-identity",
		Short: "List every migrated table with its keys, size and replica identity",
		Long: `check-replica-identity lists every table whose rows will be replicated (the
seed's check-replica-identity): its keys, size and replica identity, and
whether UPDATE and DELETE on it can be replicated. Exit status 3 when some
cannot; check-replica-identity-solution prints the fixes.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := newSession(g, "check-replica-identity")
			if err != nil {
				return err
			}
			defer s.close()
			return runCheckReplicaIdentity(cmd.Context(), s, o)
		},
	}
	cmd.Flags().BoolVar(&o.json, "json", false, "print as JSON")
	return cmd
}

func sourceIdentities(ctx context.Context, s *session) ([]check.IdentityRow, error) {
	if _, err := s.connect(ctx, true, false); err != nil {
		return nil, err
	}
	snap, err := catalog.Tables(ctx, s.src)
	if err != nil {
		return nil, err
	}
	return check.Identities(ctx, s.src, snap, snap.Published(s.src.VersionNum, s.m.Include, s.m.Exclude))
}

func runCheckReplicaIdentity(ctx context.Context, s *session, o *identityOptions) error {
	rows, err := sourceIdentities(ctx, s)
	if err != nil {
		return err
	}
	bad := 0
	for _, r := range rows {
		if !r.OK {
			bad++
		}
	}
	if o.json {
		enc := json.NewEncoder(s.g.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rows); err != nil {
			return err
		}
	} else {
		w := s.g.stdout
		fmt.Fprintf(w, "%-48s %-28s %10s %-16s %s\n", "TABLE", "KEYS", "SIZE", "IDENTITY", "UPDATE/DELETE")
		for _, r := range rows {
			ok := "replicated"
			if !r.OK {
				ok = "FAIL on the source once published"
			}
			fmt.Fprintf(w, "%-48s %-28s %10s %-16s %s\n", r.Name, r.Keys, check.PrettyBytes(r.Bytes), r.Identity, ok)
		}
		fmt.Fprintf(w, "\n%d table(s), %d without a usable replica identity\n", len(rows), bad)
	}
	if bad > 0 {
		return withCode(ExitProblems, fmt.Errorf("source: %d table(s) have no usable replica identity; pgmove check-replica-identity-solution prints the fix", bad))
	}
	return nil
}

func newCheckReplicaIdentitySolutionCmd(g *globals) *cobra.Command {
	o := &identityOptions{}
	cmd := &cobra.Command{
		Use:   "check-replica-identity-solution",
		Short: "Print (or --apply) the statements that give every table a replica identity",
		Long: `check-replica-identity-solution prints, for each migrated table whose UPDATE
and DELETE could not be replicated, the statement that fixes it (the seed's
check-replica-identity-solution, done right): REPLICA IDENTITY USING INDEX on
a unique, valid, immediate, non-partial index over NOT NULL columns when one
exists, REPLICA IDENTITY FULL otherwise. ` + check.FullCost + `.
Adding a primary key is better still.

With --apply, pgmove runs them on the source.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := newSession(g, "check-replica-identity-solution")
			if err != nil {
				return err
			}
			defer s.close()
			return s.withJSON(o.json, !o.apply || o.dryRun, func() error { return runCheckReplicaIdentitySolution(cmd.Context(), s, o) })
		},
	}
	cmd.Flags().BoolVar(&o.apply, "apply", false, "run the statements on the source")
	cmd.Flags().BoolVar(&o.dryRun, "dry-run", false, "print the statements (the default without --apply)")
	cmd.Flags().BoolVar(&o.json, "json", false, "print what was done (or would be) as one JSON object")
	return cmd
}

func runCheckReplicaIdentitySolution(ctx context.Context, s *session, o *identityOptions) error {
	rows, err := sourceIdentities(ctx, s)
	if err != nil {
		return err
	}
	var fixes []check.IdentityRow
	tables := []string{}
	for _, r := range rows {
		if !r.OK {
			fixes = append(fixes, r)
			tables = append(tables, r.Name)
		}
	}
	s.note("tables", tables)
	if !o.apply || o.dryRun {
		s.addStep("check-replica-identity-solution", "done", fmt.Sprintf("%d table(s) need a replica identity", len(fixes)), nil)
		for _, r := range fixes {
			fmt.Fprintln(s.g.stdout, r.Fix)
		}
		if len(fixes) == 0 {
			fmt.Fprintln(s.g.stdout, "-- every table has a usable replica identity")
		}
		return nil
	}
	// The target, when reachable, binds the journal and takes the lock
	// like every other step; the fix itself is on the source only.
	if _, err := s.connect(ctx, false, true); isUsage(err) {
		return err
	}
	if err := s.begin(ctx); err != nil {
		return err
	}
	return s.step("check-replica-identity-solution", func() (string, map[string]string, error) {
		for _, r := range fixes {
			sql := strings.SplitN(r.Fix, ";", 2)[0]
			if err := s.runner(false).Exec(ctx, s.src, "set replica identity of "+r.Name, sql); err != nil {
				return "", nil, err
			}
		}
		msg := fmt.Sprintf("replica identity set on %d table(s)", len(fixes))
		fmt.Fprintln(s.g.stdout, msg)
		return msg, nil, nil
	})
}

func newCheckSpecialObjectCmd(g *globals) *cobra.Command {
	o := &checkOptions{}
	cmd := &cobra.Command{
		Use:   "check-special-object",
		Short: "List the objects logical replication does not carry, and what pgmove does with each",
		Long: `check-special-object lists what logical replication does not carry (the seed's
check-special-object, done right): materialized views, foreign tables,
unlogged tables, large objects, partitioned tables, generated columns,
extensions missing on the target, sequences (owned or not), event triggers
and tables with row-level security, and what happens to each.

Exit status 0 when nothing among them blocks the migration, 3 when something
does (a missing extension, an unreachable side).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := newSession(g, "check-special-object")
			if err != nil {
				return err
			}
			defer s.close()
			r, err := doCheck(cmd.Context(), s, "native", false)
			if err != nil {
				return err
			}
			special := map[string]bool{"materialized_view": true, "foreign_table": true, "unlogged_table": true, "partitioned_table": true,
				"generated_column": true, "large_objects": true, "event_trigger": true, "sequence": true, "extension": true, "connect": true, "replication_role": true, "row_level_security": true}
			var keep []check.Finding
			for _, f := range r.Findings {
				if special[f.Code] && (f.Code != "replication_role" || strings.Contains(f.Message, "row-level security")) {
					keep = append(keep, f)
				}
			}
			r.Findings = keep
			r.Ready = r.Errors() == 0
			return writeCheck(s, r, o.json)
		},
	}
	cmd.Flags().BoolVar(&o.json, "json", false, "print as JSON")
	return cmd
}
