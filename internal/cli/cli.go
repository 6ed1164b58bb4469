package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/spf13/cobra"

	"github.com/pgmove/pgmove/internal/cluster"
)

// Exit codes, documented in --help.
const (
	ExitOK          = 0
	ExitError       = 1
	ExitUsage       = 2
	ExitProblems    = 3 // a check or compare found problems
	ExitInterrupted = 130
)

const exitCodesHelp = `Exit codes:
  0    success
  1    error
  2    usage error (bad flag, malformed or incomplete configuration)
  3    check or compare found problems (migration not ready, data not equal)
  130  interrupted`

// exitError carries an exit code with an error message.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func withCode(code int, err error) error { return &exitError{code: code, err: err} }

// globals are the flags every command takes.
type globals struct {
	configFile string
	src, dst   string
	include    []string
	exclude    []string
	verbose    bool
	quiet      bool
	logFormat  string // text or json
	bar        *bar   // the progress bar on a terminal, or nil
	stdin      io.Reader
	stdout     io.Writer
	stderr     io.Writer
}

// Run runs pgmove with args (without the program name) and returns the
// process exit code. Everything a command prints goes to stdout and stderr.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	g := &globals{stdin: stdin, stdout: stdout, stderr: stderr}
	root := newRoot(g)
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	g.stopBar()
	if err == nil {
		return ExitOK
	}
	code := ExitError
	var ee *exitError
	var ue *usageError
	switch {
	case errors.As(err, &ee):
		code = ee.code
	case errors.As(err, &ue):
		code = ExitUsage
	case ctx.Err() != nil || errors.Is(err, context.Canceled):
		code = ExitInterrupted
	case isCobraUsage(err):
		code = ExitUsage
	}
	if ctx.Err() != nil && code == ExitError {
		code = ExitInterrupted
	}
	msg := err.Error()
	if code == ExitInterrupted && !strings.Contains(msg, "interrupt") {
		msg = "interrupted: " + msg
	}
	if g.logFormat == "json" {
		// The last event, for log collectors: the error and the exit code.
		slog.New(slog.NewJSONHandler(stderr, nil)).Error("pgmove: "+cluster.OneLine(msg), "exit_code", code)
		return code
	}
	fmt.Fprintln(stderr, "pgmove: "+cluster.OneLine(msg))
	return code
}

// usageError is a mistake in how pgmove was called or configured.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func isCobraUsage(err error) bool {
	s := err.Error()
	for _, p := range []string{"unknown command", "unknown flag", "unknown shorthand flag", "flag needs an argument", "invalid argument", "arg(s), received", "requires at least", "requires at most", "required flag"} {
		if strings.Contains(s, p) {
			return true
		}
	}
	return false
}

func newRoot(g *globals) *cobra.Command {
	root := &cobra.Command{
		Use:   "pgmove",
		Short: "Move a live PostgreSQL database to another cluster with logical replication",
		Long: `pgmove moves a live PostgreSQL database from one cluster to another with
PostgreSQL's native logical replication: the application stops writing for
seconds, not hours, and nothing is lost.

Connections come from migration.yml (-c, the keys of Pigsty's
pgsql-migration.yml: src_ip, src_db, dst_ip, dst_db, ...) or from --src and
--dst libpq URLs. Passwords come only from ~/.pgpass, PGPASSFILE, PGPASSWORD
or service files, never from a flag or the config.

A migration, step by step (or all of it with migrate):
  check          what blocks or endangers the migration, with the fixes
  copy-schema    the source's schema into the target (pg_dump/pg_restore)
  create-pub     the publication on the source
  create-sub     the subscription on the target (initial copy, then changes)
  progress       per-table copy state, lag, throughput, ETA
  (stop writes on the source)
  copy-seq       sequences (and what replication does not carry) to the target
  compare        row counts, checksums and sequences on both sides (--schema: DDL)
  (switch traffic to the target)
  remove-sub / cleanup
  abort          undo a migration that will not be finished

plan writes all of it as the seed's directory of reviewable scripts, with a
runbook filled in for this migration; status says where a migration stands.

` + exitCodesHelp,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			level := slog.LevelInfo
			if g.verbose {
				level = slog.LevelDebug
			}
			if g.quiet {
				level = slog.LevelWarn
			}
			if barCommands[cmd.Name()] && g.logFormat == "text" {
				g.startBar() // before the log handler, which writes through it
			}
			switch g.logFormat {
			case "text":
				slog.SetDefault(slog.New(newLogHandler(g.stderr, level)))
			case "json":
				// One object per event: time, level, msg and the event's
				// attributes (sql, table, ...).
				slog.SetDefault(slog.New(slog.NewJSONHandler(g.stderr, &slog.HandlerOptions{Level: level})))
			default:
				return &usageError{fmt.Errorf("--log-format %q: use text or json", g.logFormat)}
			}
			return nil
		},
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return &usageError{err} })
	pf := root.PersistentFlags()
	pf.StringVarP(&g.configFile, "config", "c", "", "migration.yml (the seed's keys: src_ip, src_db, dst_ip, dst_db, ...)")
	pf.StringVar(&g.src, "src", "", "source connection URL, e.g. postgres://dba@h1:5432/meta (no password)")
	pf.StringVar(&g.dst, "dst", "", "target connection URL, e.g. postgres://dba@h2:5432/test (no password)")
	pf.StringArrayVar(&g.include, "include", nil, "migrate only these tables: schema or schema.table, * and ? allowed (repeatable)")
	pf.StringArrayVar(&g.exclude, "exclude", nil, "leave these tables out: schema or schema.table, * and ? allowed (repeatable)")
	pf.BoolVarP(&g.verbose, "verbose", "v", false, "log more")
	pf.BoolVarP(&g.quiet, "quiet", "q", false, "log only warnings and errors")
	pf.StringVar(&g.logFormat, "log-format", "text", "how stderr logs: text (one line per event) or json (one JSON object per event, for log collectors)")
	root.SetHelpCommand(&cobra.Command{Hidden: true})
	root.CompletionOptions.DisableDefaultCmd = true

	root.AddCommand(
		newCheckCmd(g), newCheckReplicaIdentityCmd(g), newCheckReplicaIdentitySolutionCmd(g), newCheckSpecialObjectCmd(g),
		newCopySchemaCmd(g), newCreatePubCmd(g), newCreateSubCmd(g), newProgressCmd(g), newCompareCmd(g),
		newCopySeqCmd(g), newNextSeqCmd(g), newRemoveSubCmd(g), newCleanupCmd(g), newMigrateCmd(g), newStatusCmd(g),
		newSwitchoverCmd(g), newRollbackCmd(g), newAbortCmd(g), newSandboxCmd(g), newVersionCmd(g), newPlanCmd(g),
	)
	for _, c := range root.Commands() {
		c.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return &usageError{err} })
	}
	return root
}

// errorSide returns the side an error names, for the journal.
func errorSide(err error) string {
	var ce *cluster.Error
	if errors.As(err, &ce) {
		return string(ce.Side)
	}
	return ""
}
