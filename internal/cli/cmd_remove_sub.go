package cli

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/pgmove/pgmove/internal/catalog"
	"github.com/pgmove/pgmove/internal/copy"
	"github.com/pgmove/pgmove/internal/replication"
	"github.com/pgmove/pgmove/internal/switchover"
)

type removeOptions struct {
	dryRun bool
	json   bool
}

func newRemoveSubCmd(g *globals) *cobra.Command {
	o := &removeOptions{}
	cmd := &cobra.Command{
		Use:   "remove-sub",
		Short: "Disable and drop the subscription on the target (and its slot on the source)",
		Long: `remove-sub disables and drops the subscription on the target; PostgreSQL then
drops its replication slot on the source. When the source cannot be reached,
the slot is detached first so the drop succeeds, and pgmove prints the
statement to drop the orphaned slot later and exits 1: a forgotten slot keeps
WAL on the source until its disk is full. Rerunning changes nothing.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := newSession(g, "remove-sub")
			if err != nil {
				return err
			}
			defer s.close()
			return s.withJSON(o.json, o.dryRun, func() error { return runRemoveSub(cmd.Context(), s, o) })
		},
	}
	cmd.Flags().BoolVar(&o.dryRun, "dry-run", false, "print the statements, change nothing")
	cmd.Flags().BoolVar(&o.json, "json", false, "print what was done (or, with --dry-run, would be) as one JSON object")
	return cmd
}

// connectForRemoval needs the target; the source is optional.
func (s *session) connectForRemoval(ctx context.Context, dryRun bool) error {
	srcErr, dstErr := s.connect(ctx, true, true)
	if dstErr != nil {
		return dstErr
	}
	if srcErr != nil {
		slog.Warn(srcErr.Error() + "; going on without it")
	}
	if !dryRun {
		// No context directory is made for a migration that has none:
		// there is no state to keep.
		return s.beginIn(ctx, false)
	}
	return nil
}

func runRemoveSub(ctx context.Context, s *session, o *removeOptions) error {
	if err := s.connectForRemoval(ctx, o.dryRun); err != nil {
		return err
	}
	return s.step("remove-sub", func() (string, map[string]string, error) {
		msg, data, err := removeSub(ctx, s, o.dryRun)
		if err == nil && s.orphans != "" && !o.dryRun {
			// Done on the target, but a slot keeps WAL on the source:
			// scripts must notice.
			why := "unreachable"
			if s.src != nil {
				why = "its slot could not be dropped"
			}
			return msg, data, fmt.Errorf("source: %s, so %s", why, s.orphans)
		}
		return msg, data, err
	})
}

func removeSub(ctx context.Context, s *session, dryRun bool) (string, map[string]string, error) {
	res, err := replication.RemoveSubscription(ctx, s.runner(dryRun), s.dst, s.src, s.m.SubName)
	if err != nil {
		return "", nil, err
	}
	s.note("subscription", s.m.SubName)
	s.note("subscription_dropped", res.Dropped)
	s.note("orphan_slots", orEmpty(res.OrphanSlots))
	msg := fmt.Sprintf("subscription %q does not exist; nothing to remove", s.m.SubName)
	if res.Dropped {
		msg = fmt.Sprintf("subscription %q dropped", s.m.SubName)
	}
	if len(res.OrphanSlots) > 0 {
		var stmts []string
		for _, sl := range res.OrphanSlots {
			stmts = append(stmts, replication.DropSlotSQL(sl)+";")
		}
		s.orphans = fmt.Sprintf("replication slot(s) %s remain on the source and keep WAL until dropped: once it can be reached, run there %s",
			strings.Join(quoteAll(res.OrphanSlots), ", "), strings.Join(stmts, " "))
		msg += "; " + s.orphans
	}
	s.slotsGone = res.SlotsDropped
	if !dryRun {
		fmt.Fprintln(s.g.stdout, msg)
	}
	return msg, nil, nil
}

func newCleanupCmd(g *globals) *cobra.Command {
	o := &removeOptions{}
	cmd := &cobra.Command{
		Use:   "cleanup",
		Short: "Drop everything the migration made: subscription, publication, slots",
		Long: `cleanup drops the subscription on the target, the publication and any
replication slot of this migration on the source, and the way back a
switchover left (the source's subscription to the target, the target's
publication and slot; rollback is refused after it). It works when the source
is unreachable: it drops what is on the target, prints what to drop on the
source later, and exits 1 (the slot keeps WAL there until dropped). Rerunning
it changes nothing. Data and schema on both sides are left alone. --dry-run
prints the statements in the order the real run runs them.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := newSession(g, "cleanup")
			if err != nil {
				return err
			}
			defer s.close()
			return s.withJSON(o.json, o.dryRun, func() error { return runCleanup(cmd.Context(), s, o) })
		},
	}
	cmd.Flags().BoolVar(&o.dryRun, "dry-run", false, "print the statements, change nothing")
	cmd.Flags().BoolVar(&o.json, "json", false, "print what was done (or, with --dry-run, would be) as one JSON object")
	return cmd
}

func runCleanup(ctx context.Context, s *session, o *removeOptions) error {
	if err := s.connectForRemoval(ctx, o.dryRun); err != nil {
		return err
	}
	return s.step("cleanup", func() (string, map[string]string, error) {
		msg, _, err := removeSub(ctx, s, o.dryRun)
		if err != nil {
			return "", nil, err
		}
		// With the subscription gone, the copy ledger has nothing left to
		// prove: the next migration into this database starts without it.
		if dropped, err := copy.DropLedger(ctx, s.runner(o.dryRun), s.dst); err != nil {
			return "", nil, err
		} else if dropped {
			msg += "; the copy ledger (schema " + copy.LedgerSchema + ") dropped"
			if !o.dryRun {
				fmt.Fprintf(s.g.stdout, "target: the copy ledger (schema %s) dropped\n", copy.LedgerSchema)
			}
		}
		if s.src == nil {
			s.note("source_reachable", false)
			left := fmt.Sprintf("publication %q and replication slot %q may remain on the source, the slot keeping WAL until dropped: when it is back, run pgmove cleanup again, or on the source: %s; %s;",
				s.m.PubName, s.m.SlotName, replication.DropPublicationSQL(s.m.PubName), replication.DropSlotSQL(s.m.SlotName))
			_, backSub, backSlot := switchover.ReverseNames(s.m)
			left += fmt.Sprintf(" after a switchover, also the way back: on the source %s; then on the target %s;", replication.DropSubscriptionSQL(backSub), replication.DropSlotSQL(backSlot))
			fmt.Fprintln(s.g.stdout, "the source was unreachable: "+left)
			if o.dryRun {
				return msg + "; " + left, nil, nil
			}
			// The target's part is done; the source's is not, and a
			// slot left there fills its disk: exit 1 so scripts notice.
			return msg, nil, fmt.Errorf("source: unreachable, so %s", left)
		}
		dropped, err := replication.DropPublication(ctx, s.runner(o.dryRun), s.src, s.m.PubName)
		if err != nil {
			return "", nil, err
		}
		s.note("publication", s.m.PubName)
		s.note("publication_dropped", dropped)
		var done []string
		if dropped {
			done = append(done, fmt.Sprintf("publication %q dropped", s.m.PubName))
		}
		slots, err := catalog.Slots(ctx, s.src)
		if err != nil {
			return "", nil, err
		}
		for _, sl := range slots {
			if sl.Name != s.m.SlotName {
				continue
			}
			if slices.Contains(s.slotsGone, sl.Name) {
				// Dropping the subscription dropped it (a dry run
				// still sees it, in use by the running apply).
				continue
			}
			ok, err := replication.DropSlot(ctx, s.runner(o.dryRun), s.src, sl.Name)
			if err != nil {
				return "", nil, err
			}
			s.note("slot_dropped", ok)
			if ok {
				done = append(done, fmt.Sprintf("replication slot %q dropped", sl.Name))
			}
		}
		rev, err := cleanupReverse(ctx, s, o.dryRun)
		if err != nil {
			return "", nil, err
		}
		done = append(done, rev...)
		if len(done) == 0 {
			done = append(done, "nothing else to drop on the source")
		}
		out := strings.Join(done, "; ")
		if !o.dryRun {
			fmt.Fprintln(s.g.stdout, out)
			// The copy's progress file would describe a migration that is over.
			os.Remove(filepath.Join(s.m.ContextDir, "copy.json"))
		}
		return msg + "; " + out, nil, nil
	})
}

// cleanupReverse drops the way back a switchover left: the source's
// subscription to the target (PostgreSQL drops its slot on the target), and
// the target's publication and slot. After it, rollback is refused.
func cleanupReverse(ctx context.Context, s *session, dryRun bool) ([]string, error) {
	pub, sub, slot := switchover.ReverseNames(s.m)
	r := s.runner(dryRun)
	var done []string
	res, err := replication.RemoveSubscription(ctx, r, s.src, s.dst, sub)
	if err != nil {
		return nil, err
	}
	s.note("reverse_subscription_dropped", res.Dropped)
	if res.Dropped {
		done = append(done, fmt.Sprintf("subscription %q of the way back dropped on the source", sub))
	}
	if len(res.OrphanSlots) > 0 {
		var stmts []string
		for _, sl := range res.OrphanSlots {
			stmts = append(stmts, replication.DropSlotSQL(sl)+";")
		}
		return nil, fmt.Errorf("target: replication slot(s) %s of the way back could not be dropped and keep WAL there: run on the target %s", strings.Join(quoteAll(res.OrphanSlots), ", "), strings.Join(stmts, " "))
	}
	dropped, err := replication.DropPublication(ctx, r, s.dst, pub)
	if err != nil {
		return nil, err
	}
	s.note("reverse_publication_dropped", dropped)
	if dropped {
		done = append(done, fmt.Sprintf("publication %q of the way back dropped on the target", pub))
	}
	if !slices.Contains(res.SlotsDropped, slot) {
		ok, err := replication.DropSlot(ctx, r, s.dst, slot)
		if err != nil {
			return nil, err
		}
		if ok {
			done = append(done, fmt.Sprintf("replication slot %q of the way back dropped on the target", slot))
		}
	}
	return done, nil
}

func quoteAll(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = catalog.QuoteName(n)
	}
	return out
}
