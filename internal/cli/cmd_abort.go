package cli

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/pgmove/pgmove/internal/abort"
	"github.com/pgmove/pgmove/internal/state"
)

type abortOptions struct {
	dropTargetData bool
	yes            bool
	dryRun         bool
	json           bool
}

func newAbortCmd(g *globals) *cobra.Command {
	o := &abortOptions{}
	cmd := &cobra.Command{
		Use:   "abort",
		Short: "Undo a migration that will not be finished: replication objects both ways, a held fence, the journal",
		Long: `abort undoes a migration that will not be finished. In order: a fence a
killed switchover or rollback still holds is lifted (as their rerun does;
a switch that was made must be finished by its rerun first); the
subscription is dropped on the target and its slot on the source; the way
back a switchover made is dropped (the source's subscription, the target's
publication and slot); the publication and any slot of this migration left
on the source. The journal then records the step abort, and status says
the migration was aborted.

The target's tables are left as they are. --drop-target-data empties the
tables the copy ledger on the target proves this migration loaded, and no
other: it names every one and asks (--yes for scripts); it is refused
after a switchover (the application writes to the target: rollback first).
Then the ledger is dropped too.

With a side unreachable, abort does the other side's part, prints what is
left on the unreachable one and the statements that drop it, and exits 1;
run it again once that side is back. Rerunning changes nothing.
--dry-run prints the statements, --json what was done as one object.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := newSession(g, "abort")
			if err != nil {
				return err
			}
			defer s.close()
			return s.withJSON(o.json, o.dryRun, func() error { return runAbort(cmd.Context(), s, o) })
		},
	}
	f := cmd.Flags()
	f.BoolVar(&o.dropTargetData, "drop-target-data", false, "also empty the target tables the copy ledger proves pgmove loaded (asks first)")
	f.BoolVar(&o.yes, "yes", false, "with --drop-target-data: do not ask")
	f.BoolVar(&o.dryRun, "dry-run", false, "print the statements, change nothing")
	f.BoolVar(&o.json, "json", false, "print what was done (or, with --dry-run, would be) as one JSON object")
	return cmd
}

func runAbort(ctx context.Context, s *session, o *abortOptions) error {
	srcErr, dstErr := s.connect(ctx, true, true)
	if isUsage(srcErr) {
		return srcErr // the target is the source itself
	}
	for _, err := range []error{srcErr, dstErr} {
		if err != nil {
			slog.Warn(err.Error() + "; going on without it")
		}
	}
	if !o.dryRun {
		if err := s.beginIn(ctx, false); err != nil {
			return err
		}
	}
	ao := abort.Options{Runner: s.runner(o.dryRun), Out: s.g.stdout, DropTargetData: o.dropTargetData}
	j := s.journal
	if j == nil && o.dryRun {
		var err error
		if j, err = s.openJournal(); err != nil {
			return err
		}
	}
	if j != nil {
		if s.journal != nil {
			ao.Journal = s.journal
		}
		events, err := j.Events()
		if err != nil {
			return err
		}
		last := map[string]state.Event{}
		for _, e := range events {
			last[e.Step] = e
		}
		if sw := lastSwitch(last); sw != nil && sw.Step == "switchover" && sw.Status == state.Done {
			ended := false
			for _, step := range []string{"cleanup", "abort"} {
				if e, ok := last[step]; ok && e.Status == state.Done && e.Time.After(sw.Time) {
					ended = true
				}
			}
			ao.SwitchedOver = !ended
		}
		b, err := j.Binding()
		if err != nil {
			return err
		}
		ao.SrcSystemID, ao.SrcDBOID = b.Identity.SrcSystemID, b.Identity.SrcDBOID
	}
	ao.Confirm = func(tables []string) (bool, error) {
		fmt.Fprintf(s.g.stdout, "--drop-target-data empties these %d table(s), which the copy ledger proves pgmove loaded: %s\n", len(tables), strings.Join(tables, ", "))
		if o.yes {
			return true, nil
		}
		fmt.Fprint(s.g.stderr, "empty them? type yes: ")
		line, _ := bufio.NewReader(s.g.stdin).ReadString('\n')
		return strings.TrimSpace(line) == "yes", nil
	}
	return s.step("abort", func() (string, map[string]string, error) {
		res, err := abort.Run(ctx, s.m, s.src, s.dst, ao)
		s.note("fence_lifted", res.FenceLifted)
		s.note("dropped", res.Dropped)
		s.note("tables_emptied", res.Emptied)
		s.note("tables_to_empty", orEmpty(res.ToEmpty))
		s.note("left", res.Left)
		for _, l := range res.Left {
			fmt.Fprintf(s.g.stdout, "left on the %s: %s; run there: %s\n", l.Side, l.What, l.SQL)
		}
		if err != nil {
			return "", nil, err
		}
		msg := "aborted: " + fmt.Sprint(len(res.Dropped)) + " object(s) dropped"
		if len(res.Dropped) == 0 {
			msg = "aborted: nothing left to drop"
		}
		switch {
		case len(res.Emptied) > 0:
			msg += fmt.Sprintf("; %d table(s) pgmove loaded emptied on the target", len(res.Emptied))
		case !o.dropTargetData:
			msg += "; the target's tables are left as they are (pgmove abort --drop-target-data empties those pgmove loaded)"
		}
		if o.dryRun {
			msg = "abort --dry-run: nothing changed"
		} else {
			// The copy's progress file would describe a migration that is over.
			os.Remove(filepath.Join(s.m.ContextDir, "copy.json"))
		}
		fmt.Fprintln(s.g.stdout, msg)
		return msg, nil, nil
	})
}
