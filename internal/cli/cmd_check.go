package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/pgmove/pgmove/internal/check"
	"github.com/pgmove/pgmove/internal/cluster"
)

type checkOptions struct {
	json    bool
	copy    string
	noProbe bool
	carry   carryFlags
}

// carryFlags say what the schema restore carries besides the objects:
// check needs them to know which roles must exist on the target.
type carryFlags struct {
	withOwners, withGrants bool
	roles                  rolesFlags
}

func (f carryFlags) options() check.Options {
	return check.Options{WithOwners: f.withOwners || f.withGrants, WithACL: f.withGrants, WithRoles: f.roles.with}
}

func newCheckCmd(g *globals) *cobra.Command {
	o := &checkOptions{}
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Report everything that blocks or endangers the migration, with the fix for each",
		Long: `check connects to both sides and reports, each with a severity and the
statement or setting that fixes it: reachability and versions, wal_level,
free slots, senders and workers, the roles' privileges (REPLICATION, SELECT,
BYPASSRLS, CREATE), a real replication connection to the source (also from
the target server, as the subscription will make it), every table's replica
identity, objects logical replication does not carry, extensions missing on
the target, roles the restored objects name that the target lacks (policy
roles always; owners with --with-owners, privileges with --with-grants; none
with --with-roles, which creates them), and leftovers of an earlier run.

Exit status 0 when ready, 3 when something blocks.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := newSession(g, "check")
			if err != nil {
				return err
			}
			defer s.close()
			return runCheck(cmd.Context(), s, o)
		},
	}
	cmd.Flags().BoolVar(&o.json, "json", false, "print the report as JSON")
	cmd.Flags().StringVar(&o.copy, "copy", "snapshot", "initial copy the migration will use: snapshot (pgmove's parallel COPY) or native (PostgreSQL's table sync)")
	cmd.Flags().BoolVar(&o.noProbe, "no-probe", false, "skip the replication connection tests")
	cmd.Flags().BoolVar(&o.carry.withOwners, "with-owners", false, "the migration will restore object owners: check their roles exist on the target")
	cmd.Flags().BoolVar(&o.carry.withGrants, "with-grants", false, "the migration will restore GRANTs and owners: check their roles exist on the target")
	cmd.Flags().BoolVar(&o.carry.roles.with, "with-roles", false, "the migration will create the source's roles on the target first")
	return cmd
}

func runCheck(ctx context.Context, s *session, o *checkOptions) error {
	co := o.carry.options()
	co.Probe = !o.noProbe
	r, err := doCheckAnd(ctx, s, o.copy, co, nil)
	if err != nil {
		return err
	}
	return writeCheck(s, r, o.json)
}

// writeCheck prints a check's report, text or JSON, and is exit 3 when it
// found a blocking problem.
func writeCheck(s *session, r *check.Report, asJSON bool) error {
	if asJSON {
		if err := r.WriteJSON(s.g.stdout); err != nil {
			return err
		}
	} else {
		r.WriteText(s.g.stdout)
	}
	if !r.Ready {
		return withCode(ExitProblems, blockedError(r))
	}
	return nil
}

func doCheck(ctx context.Context, s *session, copyMode string, probe bool) (*check.Report, error) {
	return doCheckAnd(ctx, s, copyMode, check.Options{Probe: probe}, nil)
}

// doCheckAnd is doCheck that calls connected, when both sides answered,
// before the checks start: for work that only reads, done meanwhile.
func doCheckAnd(ctx context.Context, s *session, copyMode string, o check.Options, connected func()) (*check.Report, error) {
	if err := validCopy(copyMode); err != nil {
		return nil, err
	}
	srcErr, dstErr := s.connect(ctx, true, true)
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if isUsage(srcErr) {
		return nil, srcErr
	}
	if srcErr == nil && dstErr == nil && connected != nil {
		connected()
	}
	o.Native = copyMode == "native"
	// The journal, once set aside if it is another migration's, says
	// whether a copy of this one was interrupted.
	j, err := s.openJournal()
	if err != nil {
		return nil, err
	}
	if o.LastCopy, err = j.Last("copy"); err != nil {
		return nil, err
	}
	return check.Run(ctx, s.m, s.src, s.dst, srcErr, dstErr, o), nil
}

// blockedError is the one line that says why a migration cannot go on:
// the first blocking finding with its fix.
func blockedError(r *check.Report) error {
	f := r.First()
	if f == nil {
		return fmt.Errorf("check found problems")
	}
	msg := f.Side + ": "
	if f.Object != "" {
		msg += f.Object + ": "
	}
	msg += f.Message
	if f.Fix != "" {
		msg += "; fix: " + cluster.OneLine(f.Fix)
	}
	if n := r.Errors(); n > 1 {
		msg += fmt.Sprintf(" (and %d more blocking problem(s): pgmove check lists them)", n-1)
	}
	return fmt.Errorf("%s", msg)
}

func validCopy(mode string) error {
	switch mode {
	case "snapshot", "native":
		return nil
	}
	return &usageError{fmt.Errorf("--copy %q: use snapshot (pgmove's parallel COPY, the default) or native (PostgreSQL's table sync)", mode)}
}
