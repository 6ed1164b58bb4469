package cli

import (
	"context"
	"fmt"
	"strings"
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
	bouncer  bool
	verify   bool
}

func newSandboxCmd(g *globals) *cobra.Command {
	o := &sandboxOptions{}
	cmd := &cobra.Command{
		Use:   "sandbox",
		Short: "Two local PostgreSQL servers to try pgmove on: up, load, down",
		Long: `sandbox builds the seed's example on loopback: pg-meta (database meta, with
pgbench's tables) and pg-test (database test, empty), the seed's roles
dbuser_dba and replicator with random passwords in a .pgpass file, a
pgbouncer (Debian's, transaction pooling) in front of pg-meta through which
the load writes, and a migration.yml pointing at them (with the pgbouncer
keys switchover reads). Then:

  pgmove sandbox up
  export PGPASSFILE=/var/tmp/pgmove-sandbox/pgpass
  pgmove -c /var/tmp/pgmove-sandbox/migration.yml check
  pgmove sandbox load &      # a steady write load on the source
  pgmove -c /var/tmp/pgmove-sandbox/migration.yml migrate
  pgmove -c /var/tmp/pgmove-sandbox/migration.yml switchover
  pgmove sandbox down`,
	}
	cmd.PersistentFlags().StringVar(&o.dir, "dir", sandbox.DefaultDir(), "sandbox directory ($PGMOVE_SANDBOX)")
	up := &cobra.Command{
		Use:   "up",
		Short: "Start pg-meta, pg-test and pgbouncer, load pgbench tables into meta",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runSandboxUp(cmd.Context(), g, o)
		},
	}
	up.Flags().IntVar(&o.srcMajor, "src-major", 15, "PostgreSQL major version of pg-meta")
	up.Flags().IntVar(&o.dstMajor, "dst-major", 15, "PostgreSQL major version of pg-test")
	up.Flags().IntVar(&o.scale, "scale", 1, "pgbench scale of meta (1 = 100,000 accounts)")
	up.Flags().BoolVar(&o.bouncer, "pgbouncer", true, "put a pgbouncer (transaction pooling) in front of pg-meta")
	load := &cobra.Command{
		Use:   "load",
		Short: "Run a steady write load on the source (through pgbouncer when there is one) until interrupted",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := atLeastOne("--clients", o.clients); err != nil {
				return err
			}
			if o.rate < 0 {
				return &usageError{fmt.Errorf("--rate %d: must be 0 (as fast as possible) or more", o.rate)}
			}
			res, err := sandbox.Load(cmd.Context(), o.dir, sandbox.LoadOptions{Clients: o.clients, Rate: o.rate, Duration: o.duration, Verify: o.verify})
			if err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "load: %d transaction(s) through %s in %s (%.0f/s), %d failed; the longest wait between two commits of a session: %d ms\n",
				res.Transactions, res.Through, res.Elapsed.Round(time.Second), float64(res.Transactions)/max(res.Elapsed.Seconds(), 0.001), res.Errors, res.MaxGap.Milliseconds())
			if res.Verified {
				st, _ := sandbox.ReadState(o.dir)
				lost := 0
				var sides []string
				for _, n := range []sandbox.Node{st.Src, st.Dst} {
					lost += res.Lost[n.Cluster]
					sides = append(sides, fmt.Sprintf("%s %d", n.Cluster, res.Lost[n.Cluster]))
				}
				fmt.Fprintf(g.stdout, "load: %d acknowledged event row(s) checked on both servers: %d lost (%s)\n", res.Acked, lost, strings.Join(sides, ", "))
				if lost > 0 {
					// Exit 1 even when the load was ended by an interrupt: rows were lost.
					return withCode(ExitError, fmt.Errorf("sandbox: %d acknowledged event row(s) missing on a server (or deleted rows there) a minute after the load ended: see pgmove progress", lost))
				}
			}
			return nil
		},
	}
	load.Flags().IntVar(&o.clients, "clients", 4, "concurrent sessions")
	load.Flags().IntVar(&o.rate, "rate", 200, "transactions per second in all (0: as fast as possible)")
	load.Flags().DurationVar(&o.duration, "duration", 0, "stop after this long (0: until interrupted)")
	load.Flags().BoolVar(&o.verify, "verify", false, "at the end, wait until both servers hold every event row the load committed (and none it deleted); exit 1 if not")
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
	st, err := sandbox.Up(ctx, sandbox.Options{Dir: o.dir, SrcMajor: o.srcMajor, DstMajor: o.dstMajor, Scale: o.scale, PgBouncer: o.bouncer}, g.stderr)
	if err != nil {
		return err
	}
	fmt.Fprintf(g.stdout, `sandbox ready in %s
  pg-meta  PostgreSQL %d  127.0.0.1:%d  database meta (pgbench tables)
  pg-test  PostgreSQL %d  127.0.0.1:%d  database test (empty)
`, o.dir, st.Src.Major, st.Src.Port, st.Dst.Major, st.Dst.Port)
	if b := st.PgBouncer; b != nil {
		fmt.Fprintf(g.stdout, "  pgbouncer          127.0.0.1:%d  database %s -> pg-meta (transaction pooling; %s)\n", b.Port, b.DB, b.INI)
	}
	fmt.Fprintf(g.stdout, `next:
  export PGPASSFILE=%s
  pgmove -c %s check
`, sandbox.PassFilePath(o.dir), sandbox.ConfigPath(o.dir))
	return nil
}
