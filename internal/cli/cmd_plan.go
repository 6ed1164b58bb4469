package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"time"

	"github.com/spf13/cobra"

	"github.com/pgmove/pgmove/internal/check"
	"github.com/pgmove/pgmove/internal/plan"
	"github.com/pgmove/pgmove/internal/state"
)

type planOptions struct {
	check  bool
	json   bool
	format string
	pgmove string
}

func newPlanCmd(g *globals) *cobra.Command {
	o := &planOptions{}
	cmd := &cobra.Command{
		Use:   "plan",
		Short: "Write the migration context directory: the seed's scripts and a runbook for this migration",
		Long: `plan writes the migration context directory, <migration_context_dir>/<src_cls>.<src_db>
(default ~/migration/pg-meta.meta, mode 0700), for a DBA to review and run
step by step, as the seed's pgsql-migration.yml did:

  activate         source it (. ./activate): the seed's variables, cd there
  check, check-plan, check-replica-identity, check-replica-identity-solution,
  check-special-object, copy-schema, create-pub, create-sub, progress,
  copy-seq, next-seq, compare, remove-sub, cleanup, status
                   one pgmove step each; those that change something show
                   the statements (--dry-run) and ask first, unless -y
  runbook.md       the seed's manual template filled in for this migration:
                   pg_hba lines, the replication role, the replica identity
                   fixes, special objects, sizes and copy time, every step's
                   command, the switch, verification and rollback
  migration.yml    the configuration the scripts use (never a password)
  plan.json        what the plan saw, for plan --check
  log/             one log per script

The scripts call pgmove, which reads the live catalogue when they run. The
source must be reachable; the target may not exist yet. Rerunning plan
rewrites the files and keeps log/ and the journal.

--check reads the catalogue again and says what changed since the plan was
written: new or dropped tables, identities fixed or broken, new special
objects. Exit status 3 when the runbook no longer covers the source.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.format != "md" && o.format != "html" {
				return &usageError{fmt.Errorf("--format %q: the runbook's format is md or html", o.format)}
			}
			s, err := newSession(g, "plan")
			if err != nil {
				return err
			}
			defer s.close()
			return runPlan(cmd.Context(), s, o)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&o.check, "check", false, "compare the plan with the live catalogue; exit 3 when the runbook no longer covers it")
	f.BoolVar(&o.json, "json", false, "with --check, print the changes as JSON")
	f.StringVar(&o.format, "format", "md", "runbook format: md, or html to also write runbook.html, one self-contained page")
	f.StringVar(&o.pgmove, "pgmove", "", "the pgmove binary the scripts run (default: this one)")
	return cmd
}

func runPlan(ctx context.Context, s *session, o *planOptions) error {
	dir, err := filepath.Abs(s.m.ContextDir)
	if err != nil {
		return fmt.Errorf("migration context directory: %w", err)
	}
	s.m.ContextDir = dir
	var old *plan.Facts
	if o.check {
		if old, err = plan.ReadFacts(dir); errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("no plan in %s (plan.json is missing); run pgmove plan first", dir)
		} else if err != nil {
			return err
		}
	}
	srcErr, dstErr := s.connect(ctx, true, true)
	if srcErr != nil {
		return srcErr
	}
	facts, err := plan.Gather(ctx, s.m, s.src, s.dst, dstErr, time.Now(), pgmoveVersion())
	if err != nil {
		return err
	}
	if o.check {
		changes := plan.Diff(old, facts)
		if o.json {
			if err := plan.WriteDiffJSON(s.g.stdout, old, changes); err != nil {
				return err
			}
		} else {
			plan.WriteDiff(s.g.stdout, dir, old, changes, time.Now())
		}
		if n := plan.Matters(changes); n > 0 {
			return withCode(ExitProblems, fmt.Errorf("source: %d change(s) since the plan of %s that its runbook does not cover; review them and rerun pgmove plan",
				n, old.Written.Local().Format(time.DateTime)))
		}
		return nil
	}

	bin, err := pgmoveBinary(o.pgmove)
	if err != nil {
		return err
	}
	files, err := plan.Render(plan.Input{M: s.m, Facts: facts, Pgmove: bin, HTML: o.format == "html"})
	if err != nil {
		return err
	}
	// plan changes no server, so it journals without taking the migration's
	// locks: a plan rewritten while a step runs elsewhere harms nothing.
	if s.journal, err = state.Open(dir); err != nil {
		return err
	}
	if err := s.setAside(s.journal, false); err != nil {
		return err
	}
	if err := s.journal.Bind(s.identity()); err != nil {
		return err
	}
	return s.step("plan", func() (string, map[string]string, error) {
		if err := plan.Write(dir, files); err != nil {
			return "", nil, err
		}
		out := s.g.stdout
		runbook := plan.RunbookFile
		if o.format == "html" {
			runbook += " and " + plan.HTMLFile
		}
		fmt.Fprintf(out, "plan written to %s\n", dir)
		fmt.Fprintf(out, "  %d scripts, activate, %s, %s, %s\n", len(plan.Scripts), runbook, plan.ConfigFile, plan.FactsFile)
		fmt.Fprintf(out, "  %d table(s), %s of data, initial copy %s by estimate; %d without a replica identity, %d special object(s)\n",
			len(facts.Tables), check.PrettyBytes(facts.SourceBytes),
			plan.RoughDuration(facts.Estimate()), len(facts.Unfixed()), len(facts.Special))
		if !facts.Target.Reachable {
			fmt.Fprintf(out, "  the target was unreachable (%s); the runbook says what the plan could not check\n", facts.Target.Error)
		}
		fmt.Fprintf(out, "next: cd %s && . ./activate, then follow %s\n", dir, plan.RunbookFile)
		return "plan written to " + dir, map[string]string{"dir": dir}, nil
	})
}

// pgmoveBinary is the pgmove the scripts run: the flag's, or this process's.
func pgmoveBinary(flag string) (string, error) {
	if flag != "" {
		abs, err := filepath.Abs(flag)
		if err != nil {
			return "", &usageError{fmt.Errorf("--pgmove: %w", err)}
		}
		if st, err := os.Stat(abs); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
			return "", &usageError{fmt.Errorf("--pgmove %s: not an executable file", flag)}
		}
		return abs, nil
	}
	exe, err := os.Executable()
	if err != nil {
		return "pgmove", nil // activate falls back to the PATH
	}
	return exe, nil
}

// pgmoveVersion is the version version prints.
func pgmoveVersion() string {
	v := Version
	if info, ok := debug.ReadBuildInfo(); ok && v == "dev" {
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				v = "dev-" + s.Value[:12]
			}
		}
	}
	return v
}
