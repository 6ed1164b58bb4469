package cli

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/pgmove/pgmove/internal/schema"
)

type copySchemaOptions struct {
	force      bool
	withOwners bool
	withGrants bool
	dryRun     bool
	section    string
	roles      rolesFlags
	json       bool
}

func newCopySchemaCmd(g *globals) *cobra.Command {
	o := &copySchemaOptions{}
	cmd := &cobra.Command{
		Use:   "copy-schema",
		Short: "Restore the source's schema into the target (pg_dump/pg_restore)",
		Long: `copy-schema dumps the source's schema with pg_dump and restores it into the
target with pg_restore, in one transaction: either all of it lands or none.
Publications and subscriptions are left out; owners and grants only with
--with-owners/--with-grants.

It restores only what the target lacks and never drops or rewrites anything
(the seed's pg_dump -c dropped tables on a rerun: not here). It refuses when
target tables already hold rows, unless --force.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := newSession(g, "copy-schema")
			if err != nil {
				return err
			}
			defer s.close()
			return s.withJSON(o.json, o.dryRun, func() error { return runCopySchema(cmd.Context(), s, o) })
		},
	}
	f := cmd.Flags()
	f.BoolVar(&o.force, "force", false, "restore the missing objects even though target tables hold rows")
	f.BoolVar(&o.withOwners, "with-owners", false, "restore object owners (the roles must exist on the target)")
	f.BoolVar(&o.withGrants, "with-grants", false, "restore GRANTs and owners (the roles must exist on the target)")
	f.BoolVar(&o.dryRun, "dry-run", false, "list what would be restored, change nothing")
	f.BoolVar(&o.json, "json", false, "print what was done (or, with --dry-run, would be) as one JSON object")
	f.StringVar(&o.section, "section", "all", "what to restore: all, pre-data (tables without indexes and constraints, for the snapshot copy, which builds those after the data) or post-data")
	o.roles.register(cmd)
	return cmd
}

func runCopySchema(ctx context.Context, s *session, o *copySchemaOptions) error {
	if err := s.connectBoth(ctx); err != nil {
		return err
	}
	if !o.dryRun {
		if err := s.begin(ctx); err != nil {
			return err
		}
	}
	var only func(schema.Entry) bool
	switch o.section {
	case "all":
	case "pre-data", "post-data":
		only = func(e schema.Entry) bool { return e.Section() == o.section }
	default:
		return &usageError{fmt.Errorf("--section %q: use all, pre-data or post-data", o.section)}
	}
	if err := o.roles.copy(ctx, s, o.dryRun); err != nil {
		return err
	}
	return s.step("copy-schema", func() (string, map[string]string, error) {
		res, err := schema.Copy(ctx, s.m, s.src, s.dst, schema.CopyOptions{
			Force: o.force, WithOwners: o.withOwners || o.withGrants, WithACL: o.withGrants,
			DryRun: o.dryRun, Out: s.g.stdout, Only: only,
		})
		if err != nil {
			return "", nil, err
		}
		noteSchema(s, res)
		var msg string
		switch {
		case o.dryRun:
			msg = fmt.Sprintf("would restore %d object(s) with %s; %d already on the target", res.Restored, res.DumpTool, res.Skipped)
		case res.Restored == 0:
			msg = fmt.Sprintf("the target already has the source's schema (%d objects); nothing restored", res.Skipped)
		default:
			msg = fmt.Sprintf("schema restored: %d object(s) created with %s, %d already on the target left as they are", res.Restored, res.DumpTool, res.Skipped)
		}
		fmt.Fprintln(s.g.stdout, msg)
		return msg, nil, nil
	})
}

// noteSchema puts what copy-schema did into --json's step.
func noteSchema(s *session, res *schema.CopyResult) {
	s.note("restored", res.Restored)
	s.note("already_on_target", res.Skipped)
	s.note("dump_tool", res.DumpTool)
}

// rolesFlags are --with-roles and --with-role-passwords.
type rolesFlags struct {
	with      bool
	passwords bool
}

func (f *rolesFlags) register(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&f.with, "with-roles", false, "create the source's roles the target lacks (pg_dumpall --roles-only), before the schema")
	cmd.Flags().BoolVar(&f.passwords, "with-role-passwords", false, "with --with-roles, copy their password hashes too (needs a superuser on the source)")
}

// copy creates the roles when asked, as a journaled step.
func (f *rolesFlags) copy(ctx context.Context, s *session, dryRun bool) error {
	if !f.with {
		return nil
	}
	return s.step("copy-roles", func() (string, map[string]string, error) {
		res, err := schema.CopyRoles(ctx, s.m, s.src, s.dst, f.passwords, dryRun, func(line string) { fmt.Fprintln(s.g.stdout, line+";") })
		if err != nil {
			return "", nil, err
		}
		msg := fmt.Sprintf("roles: %d created on the target, %d already there left as they are, %d membership(s)", len(res.Created), len(res.Existing), res.Membership)
		s.note("created", orEmpty(res.Created))
		s.note("existing", orEmpty(res.Existing))
		s.note("memberships", res.Membership)
		if !dryRun {
			fmt.Fprintln(s.g.stdout, msg)
		}
		for _, w := range res.Warnings {
			slog.Warn("target: " + w)
		}
		return msg, nil, nil
	})
}
