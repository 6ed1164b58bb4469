package cli

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/pgmove/pgmove/internal/catalog"
	"github.com/pgmove/pgmove/internal/check"
	"github.com/pgmove/pgmove/internal/cluster"
	"github.com/pgmove/pgmove/internal/replication"
)

type createPubOptions struct {
	dryRun bool
	force  bool
	json   bool
}

func newCreatePubCmd(g *globals) *cobra.Command {
	o := &createPubOptions{}
	cmd := &cobra.Command{
		Use:   "create-pub",
		Short: "Create the publication on the source (or bring it up to date)",
		Long: `create-pub creates the publication (default pub_<src_cls>_<src_db>) on the
source for every table to migrate, read from the live catalogue: all
ordinary tables, or those the include/exclude filters select. Partitioned
tables are published through their root (PostgreSQL 13+). Unlogged, foreign
and extension-owned tables and materialized views cannot be published.

Rerunning changes nothing, or adds tables created since and drops tables
no longer selected. It refuses while a table lacks a replica identity, since
UPDATE and DELETE on it would then fail on the source.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := newSession(g, "create-pub")
			if err != nil {
				return err
			}
			defer s.close()
			return s.withJSON(o.json, o.dryRun, func() error { return runCreatePub(cmd.Context(), s, o) })
		},
	}
	cmd.Flags().BoolVar(&o.dryRun, "dry-run", false, "print the statements, change nothing")
	cmd.Flags().BoolVar(&o.force, "force", false, "publish tables without a replica identity anyway (their UPDATE and DELETE will fail on the source)")
	cmd.Flags().BoolVar(&o.json, "json", false, "print what was done (or, with --dry-run, would be) as one JSON object")
	return cmd
}

func runCreatePub(ctx context.Context, s *session, o *createPubOptions) error {
	// The target is only needed for the lock; a pub can be made without it.
	if _, err := s.connect(ctx, true, false); err != nil {
		return err
	}
	if _, err := s.connect(ctx, false, true); isUsage(err) {
		return err
	}
	if !o.dryRun {
		if err := s.begin(ctx); err != nil {
			return err
		}
	}
	return s.step("create-pub", func() (string, map[string]string, error) {
		res, err := ensurePublication(ctx, s, o.dryRun, o.force)
		if err != nil {
			return "", nil, err
		}
		msg := res.Summary(s.m.PubName)
		if o.dryRun {
			msg = "dry run, nothing changed; would be: " + msg
		}
		notePublication(s, res)
		if !o.dryRun {
			fmt.Fprintln(s.g.stdout, msg)
		}
		return msg, map[string]string{"publication": s.m.PubName}, nil
	})
}

// notePublication puts what create-pub did into --json's step.
func notePublication(s *session, res replication.PublicationResult) {
	s.note("publication", s.m.PubName)
	s.note("created", res.Created)
	s.note("tables", res.Tables)
	s.note("added", orEmpty(res.Added))
	s.note("dropped", orEmpty(res.Dropped))
}

// orEmpty makes a nil list an empty one, so JSON says [] rather than null.
func orEmpty(l []string) []string {
	if l == nil {
		return []string{}
	}
	return l
}

func ensurePublication(ctx context.Context, s *session, dryRun, force bool) (replication.PublicationResult, error) {
	// Without sizes: the publication needs none, and sizing stats every
	// file of every table (seconds on 20,000 tables). Only the error below
	// shows sizes; it reads them again then.
	snap, err := catalog.TablesWithoutSizes(ctx, s.src)
	if err != nil {
		return replication.PublicationResult{}, err
	}
	published := snap.Published(s.src.VersionNum, s.m.Include, s.m.Exclude)
	if !force {
		rows, err := check.Identities(ctx, s.src, snap, published)
		if err != nil {
			return replication.PublicationResult{}, err
		}
		if slices.ContainsFunc(rows, func(r check.IdentityRow) bool { return !r.OK }) {
			if snap, err = catalog.Tables(ctx, s.src); err != nil {
				return replication.PublicationResult{}, err
			}
			published = snap.Published(s.src.VersionNum, s.m.Include, s.m.Exclude)
			if rows, err = check.Identities(ctx, s.src, snap, published); err != nil {
				return replication.PublicationResult{}, err
			}
		}
		var bad []string
		var fixes []string
		for _, r := range rows {
			if !r.OK {
				bad = append(bad, r.Name)
				fixes = append(fixes, strings.SplitN(r.Fix, ";", 2)[0]+";")
			}
		}
		if len(bad) > 0 {
			return replication.PublicationResult{}, fmt.Errorf("source: %d table(s) have no primary key or replica identity (%s): once published, UPDATE and DELETE on them would fail on the source; fix: %s (pgmove check-replica-identity-solution --apply does it)",
				len(bad), cluster.ListSome(bad, 3), strings.Join(fixes[:min(len(fixes), 2)], " "))
		}
	}
	return replication.EnsurePublication(ctx, s.runner(dryRun), s.src, s.m.PubName, published)
}
