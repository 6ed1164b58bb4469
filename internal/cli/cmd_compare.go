package cli

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/pgmove/pgmove/internal/compare"
)

type compareOptions struct {
	json     bool
	checksum bool
	jobs     int
}

func newCompareCmd(g *globals) *cobra.Command {
	o := &compareOptions{}
	cmd := &cobra.Command{
		Use:   "compare",
		Short: "Compare row counts (and with --checksum full content) and sequences on both sides",
		Long: `compare counts the rows of every migrated table on both sides and, with
--checksum, hashes every row's full content (order-independent, with output
formats pinned so different versions compare equal). It also compares every
sequence: the target passes when its next value is at or past the source's.
Run it after writes on the source stopped and the lag reached zero; while
writes run, differences are expected.

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
	cmd.Flags().IntVarP(&o.jobs, "jobs", "j", 2, "tables compared at once")
	return cmd
}

func runCompare(ctx context.Context, s *session, o *compareOptions) error {
	var err error
	var srcErr, dstErr error
	s.src, srcErr = compare.Connect(ctx, s.m.Src)
	s.dst, dstErr = compare.Connect(ctx, s.m.Dst)
	if err = errors.Join(srcErr, dstErr); err != nil {
		return err
	}
	r, err := compare.Run(ctx, s.m, s.src, s.dst, compare.Options{Checksum: o.checksum, Jobs: o.jobs})
	if err != nil {
		return err
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
