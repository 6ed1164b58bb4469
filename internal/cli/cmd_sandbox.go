package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/pgmove/pgmove/internal/sandbox"
)

type sandboxOptions struct {
	dir      string
	srcMajor int
	dstMajor int
	scale    int
	clients  int
	rate     int
	duration time.Duration
}

func newSandboxCmd(g *globals) *cobra.Command {
	o := &sandboxOptions{}
	cmd := &cobra.Command{
		Use:   "sandbox",
		Short: "Two local PostgreSQL servers to try pgmove on: up, load, down",
		Long: `sandbox builds the seed's example on loopback: pg-meta (database meta, with
pgbench's tables) and pg-test (database test, empty), the seed's roles
dbuser_dba and replicator with random passwords in a .pgpass file, and a
migration.yml pointing at them. Then:

  pgmove sandbox up
  export PGPASSFILE=/var/tmp/pgmove-sandbox/pgpass
  pgmove -c /var/tmp/pgmove-sandbox/migration.yml check
  pgmove sandbox load &      # a steady write load on the source
  pgmove -c /var/tmp/pgmove-sandbox/migration.yml migrate
  pgmove sandbox down`,
	}
	cmd.PersistentFlags().StringVar(&o.dir, "dir", sandbox.DefaultDir(), "sandbox directory ($PGMOVE_SANDBOX)")
	up := &cobra.Command{
		Use:   "up",
		Short: "Start pg-meta and pg-test, load pgbench tables into meta",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runSandboxUp(cmd.Context(), g, o)
		},
	}
	up.Flags().IntVar(&o.srcMajor, "src-major", 15, "PostgreSQL major version of pg-meta")
	up.Flags().IntVar(&o.dstMajor, "dst-major", 15, "PostgreSQL major version of pg-test")
	up.Flags().IntVar(&o.scale, "scale", 1, "pgbench scale of meta (1 = 100,000 accounts)")
	load := &cobra.Command{
		Use:   "load",
		Short: "Run a steady write load on the source until interrupted",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := atLeastOne("--clients", o.clients); err != nil {
				return err
			}
			if o.rate < 0 {
				return &usageError{fmt.Errorf("--rate %d: must be 0 (as fast as possible) or more", o.rate)}
			}
			res, err := sandbox.Load(cmd.Context(), o.dir, sandbox.LoadOptions{Clients: o.clients, Rate: o.rate, Duration: o.duration})
			if err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "load: %d transaction(s) in %s (%.0f/s), %d failed\n", res.Transactions, res.Elapsed.Round(time.Second),
				float64(res.Transactions)/max(res.Elapsed.Seconds(), 0.001), res.Errors)
			return nil
		},
	}
	load.Flags().IntVar(&o.clients, "clients", 4, "concurrent sessions")
	load.Flags().IntVar(&o.rate, "rate", 200, "transactions per second in all (0: as fast as possible)")
	load.Flags().DurationVar(&o.duration, "duration", 0, "stop after this long (0: until interrupted)")
	down := &cobra.Command{
		Use:   "down",
		Short: "Stop both servers and remove the sandbox",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := sandbox.Down(o.dir); err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "sandbox in %s removed\n", o.dir)
			return nil
		},
	}
	cmd.AddCommand(up, load, down)
	return cmd
}

func runSandboxUp(ctx context.Context, g *globals, o *sandboxOptions) error {
	if err := atLeastOne("--scale", o.scale); err != nil {
		return err
	}
	st, err := sandbox.Up(ctx, sandbox.Options{Dir: o.dir, SrcMajor: o.srcMajor, DstMajor: o.dstMajor, Scale: o.scale}, g.stderr)
	if err != nil {
		return err
	}
	fmt.Fprintf(g.stdout, `sandbox ready in %s
  pg-meta  PostgreSQL %d  127.0.0.1:%d  database meta (pgbench tables)
  pg-test  PostgreSQL %d  127.0.0.1:%d  database test (empty)
next:
  export PGPASSFILE=%s
  pgmove -c %s check
`, o.dir, st.Src.Major, st.Src.Port, st.Dst.Major, st.Dst.Port, sandbox.PassFilePath(o.dir), sandbox.ConfigPath(o.dir))
	return nil
}
