package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/spf13/cobra"

	"github.com/pgmove/pgmove/internal/catalog"
	"github.com/pgmove/pgmove/internal/check"
	"github.com/pgmove/pgmove/internal/cluster"
	"github.com/pgmove/pgmove/internal/progress"
	"github.com/pgmove/pgmove/internal/replication"
	"github.com/pgmove/pgmove/internal/state"
	"github.com/pgmove/pgmove/internal/switchover"
)

type statusOptions struct{ json bool }

// Status is where a migration stands.
type Status struct {
	Migration    string           `json:"migration"`
	ContextDir   string           `json:"context_dir"`
	Phase        string           `json:"phase"`
	Publication  *bool            `json:"publication"`  // null while the source is unreachable
	Subscription *bool            `json:"subscription"` // null while the target is unreachable
	Progress     string           `json:"progress,omitempty"`
	Report       *progress.Report `json:"report,omitempty"`
	Problems     []string         `json:"problems,omitempty"`
	Warnings     []string         `json:"warnings,omitempty"`
	// Slots are pgmove's replication slots on each reachable side: this
	// migration's, the way back's, and those of pgmove's naming that other
	// or older migrations left (a forgotten one keeps WAL for ever).
	Slots []progress.Slot `json:"slots"`

	LastSteps []state.Event `json:"last_steps,omitempty"`
	Next      string        `json:"next"`
}

func newStatusCmd(g *globals) *cobra.Command {
	o := &statusOptions{}
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Say where the migration stands and what the next step is",
		Long: `status reads the journal and both servers and says the migration's phase,
whether the publication and the subscription exist ("unknown" while their
side cannot be reached), the progress, the problems and the next step.

Exit status 0, or 3 while a problem is reported or a side is unreachable.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := newSession(g, "status")
			if err != nil {
				return err
			}
			defer s.close()
			return runStatus(cmd.Context(), s, o)
		},
	}
	cmd.Flags().BoolVar(&o.json, "json", false, "print as JSON")
	return cmd
}

func runStatus(ctx context.Context, s *session, o *statusOptions) error {
	st := Status{Migration: s.m.Src.Display() + " → " + s.m.Dst.Display(), ContextDir: s.m.ContextDir}
	// Both sides first: the journal is this migration's only if it names
	// these servers.
	srcErr, dstErr := s.connect(ctx, true, true)
	if isUsage(srcErr) {
		return srcErr // the same database twice: nothing to report on
	}
	j, err := s.openJournal()
	if err != nil {
		return err
	}
	events, err := j.Events()
	if err != nil {
		return err
	}
	last := map[string]state.Event{}
	var order []string
	for _, e := range events {
		if _, seen := last[e.Step]; !seen {
			order = append(order, e.Step)
		}
		last[e.Step] = e
	}
	for _, step := range order {
		st.LastSteps = append(st.LastSteps, last[step])
	}
	done := func(step string) bool { e, ok := last[step]; return ok && e.Status == state.Done }
	doneAfter := func(step string, t time.Time) bool { return done(step) && last[step].Time.After(t) }

	if s.src != nil {
		pubs, err := catalog.Publications(ctx, s.src)
		if err != nil {
			return err
		}
		found := false
		for _, p := range pubs {
			found = found || p.Name == s.m.PubName
		}
		st.Publication = &found
	}
	sm := &progress.Sampler{M: s.m, Src: s.src, Dst: s.dst, SrcErr: srcErr, DstErr: dstErr}
	rep, err := sm.Sample(ctx)
	if err != nil {
		return err
	}
	st.Report, st.Subscription = rep, rep.Exists
	st.Problems = append(st.Problems, rep.Problems...)
	st.Warnings = append(st.Warnings, rep.Warnings...)
	if st.Slots, err = statusSlots(ctx, s, events); err != nil {
		return err
	}
	for _, sl := range st.Slots {
		if p := sl.Problem(); p != "" && sl.Role != "migration" {
			st.Warnings = append(st.Warnings, p)
		}
	}
	if rep.Subscribed() || !rep.Target.Reachable {
		st.Progress = rep.Summary()
	}
	pub, sub := st.Publication != nil && *st.Publication, rep.Subscribed()
	sw := lastSwitch(last)
	switch {
	case sw != nil && sw.Status == state.Started:
		// A pgmove killed inside the pause: the fence may hold the
		// application; the rerun finishes or undoes it.
		stage := sw.Data["stage"]
		if stage == "switched" {
			st.Phase = "interrupted " + sw.Step + ": the replication was switched, the traffic may not be"
			st.Problems = append([]string{"an interrupted " + sw.Step + " switched the replication but may not have pointed the traffic or lifted the fence: rerun pgmove " + sw.Step + " (it finishes it)"}, st.Problems...)
		} else {
			st.Phase = "interrupted " + sw.Step + ": inside the pause, nothing switched"
			st.Problems = append([]string{"an interrupted " + sw.Step + " may hold the fence (" + sw.Data["fence"] + "): the application cannot write; rerun pgmove " + sw.Step + " (it lifts the fence, then you can switch again)"}, st.Problems...)
		}
		st.Next = "rerun pgmove " + sw.Step
	case done("abort") && !sub && !pub && (sw == nil || doneAfter("abort", sw.Time)):
		st.Phase = "aborted"
		st.Next = "nothing: the migration was aborted; the target's tables are left as they were unless abort --drop-target-data emptied them; pgmove migrate starts a new one"
		st.Problems = withoutNoSubscription(st.Problems, rep)
	case sw != nil && sw.Step == "switchover" && sw.Status == state.Done && !doneAfter("cleanup", sw.Time) && !doneAfter("abort", sw.Time):
		st.Phase = "switched over: the application writes to the target, replication runs back to the source"
		// The forward subscription is stopped on purpose: its signals
		// are not problems now; the way back's are.
		st.Problems = nil
		back, problems, err := wayBack(ctx, s)
		if err != nil {
			return err
		}
		st.Progress, st.Problems = back, problems
		st.Next = "verify (pgmove compare --checksum); then pgmove rollback to go back, or pgmove cleanup to keep the target (it ends the way back)"
	case st.Publication == nil || st.Subscription == nil:
		down := "source"
		if st.Subscription == nil {
			down = "target"
		}
		if st.Publication == nil && st.Subscription == nil {
			down = "source and target"
		}
		st.Phase = "unknown (" + down + " unreachable)"
		st.Next = "make the " + down + " reachable again, then pgmove status"
	case done("cleanup") && !sub && !pub:
		st.Phase, st.Next = "finished", "nothing: the migration is cleaned up"
		st.Problems = withoutNoSubscription(st.Problems, rep)
	case done("copy-seq") && sub:
		st.Phase = "switch"
		st.Next = "verify with pgmove compare --checksum, switch traffic to the target" + trafficHint(s) + ", then pgmove cleanup"
	case !sub && !pub:
		st.Phase, st.Next = "not started", "pgmove check, then pgmove migrate (or copy-schema, create-pub, create-sub)"
		st.Problems = withoutNoSubscription(st.Problems, rep)
	case !sub:
		st.Phase, st.Next = "publication made", "pgmove copy-schema (if not done), then pgmove create-sub"
		st.Problems = withoutNoSubscription(st.Problems, rep)
	case rep.SlotLost:
		st.Phase, st.Next = "slot lost: the migration must start again", "a new copy: pgmove cleanup, then pgmove migrate"
	case rep.Ready == nil || *rep.Ready < rep.Total:
		st.Phase, st.Next = "initial copy", "wait: pgmove progress --watch"
	case rep.Done(s.m.MaxLag):
		st.Phase = "replicating, caught up"
		st.Next = "the switch: stop writes on the source, wait for lag 0, pgmove copy-seq, pgmove compare --checksum, switch traffic to the target" + trafficHint(s)
	default:
		st.Phase, st.Next = "replicating, catching up", "wait: pgmove progress --watch"
	}
	if len(st.Problems) > 0 && st.Phase != "finished" && st.Phase != "aborted" {
		st.Next = "fix first: " + st.Problems[0] + "; then " + st.Next
	}
	if o.json {
		enc := json.NewEncoder(s.g.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(st); err != nil {
			return err
		}
		return statusExit(st)
	}
	w := s.g.stdout
	fmt.Fprintf(w, "migration  %s\ncontext    %s\nphase      %s\n", st.Migration, st.ContextDir, st.Phase)
	fmt.Fprintf(w, "objects    publication %s: %s, subscription %s: %s\n", s.m.PubName, presence(st.Publication, "source"), s.m.SubName, presence(st.Subscription, "target"))
	if st.Progress != "" {
		fmt.Fprintf(w, "progress   %s\n", st.Progress)
	}
	for _, sl := range st.Slots {
		fmt.Fprintf(w, "slot       %s\n", sl.Text())
	}
	for _, p := range st.Problems {
		fmt.Fprintf(w, "PROBLEM    %s\n", p)
	}
	for _, p := range st.Warnings {
		fmt.Fprintf(w, "WARNING    %s\n", p)
	}
	if len(st.LastSteps) > 0 {
		fmt.Fprintln(w, "steps")
		for _, e := range st.LastSteps {
			fmt.Fprintf(w, "  %-34s %-8s %s  %s\n", e.Step, e.Status, e.Time.Local().Format(time.DateTime), e.Message)
		}
	}
	fmt.Fprintf(w, "next       %s\n", st.Next)
	return statusExit(st)
}

// statusSlots lists pgmove's slots on each reachable side, with the age
// the journal knows of this migration's and the way back's: the slot was
// made by the first create-sub (switchover) since the migration last
// ended, so it is at most that old.
func statusSlots(ctx context.Context, s *session, events []state.Event) ([]progress.Slot, error) {
	_, _, backSlot := switchover.ReverseNames(s.m)
	since := map[string]time.Time{}
	for _, e := range events {
		switch {
		case (e.Step == "cleanup" || e.Step == "abort") && e.Status == state.Done:
			since = map[string]time.Time{}
		case e.Step == "create-sub" && e.Status == state.Started:
			if _, ok := since[s.m.SlotName]; !ok {
				since[s.m.SlotName] = e.Time
			}
		case e.Step == "switchover" && e.Status == state.Started:
			if _, ok := since[backSlot]; !ok {
				since[backSlot] = e.Time
			}
		}
	}
	slots := []progress.Slot{}
	for _, side := range []struct {
		c    *cluster.Conn
		mine map[string]string
	}{{s.src, map[string]string{s.m.SlotName: "migration"}}, {s.dst, map[string]string{backSlot: "way back"}}} {
		if side.c == nil {
			continue
		}
		list, err := progress.Slots(ctx, side.c, side.mine)
		if err != nil {
			return nil, err
		}
		for i := range list {
			if t, ok := since[list[i].Name]; ok && side.mine[list[i].Name] != "" {
				list[i].Since, list[i].AgeSeconds = &t, ptrTo(time.Since(t).Seconds())
			}
		}
		slots = append(slots, list...)
	}
	return slots, nil
}

func ptrTo[T any](v T) *T { return &v }

// lastSwitch is the latest switchover or rollback event, nil when none.
func lastSwitch(last map[string]state.Event) *state.Event {
	var out *state.Event
	for _, step := range []string{"switchover", "rollback"} {
		if e, ok := last[step]; ok && (out == nil || e.Time.After(out.Time)) {
			out = &e
		}
	}
	return out
}

// wayBack says how the replication from the target back to the source
// runs after a switchover, and what is wrong with it: the rollback needs it
// streaming. What cannot be read is unknown, not fine.
func wayBack(ctx context.Context, s *session) (string, []string, error) {
	_, sub, slot := switchover.ReverseNames(s.m)
	if s.src == nil || s.dst == nil {
		return "the way back: unknown (a side is unreachable)", []string{"a side is unreachable: the way back's state is unknown"}, nil
	}
	found, err := replication.Find(ctx, s.src, sub)
	if err != nil {
		return "", nil, err
	}
	if found == nil {
		return "the way back: none", []string{fmt.Sprintf("subscription %q (the way back) does not exist on the source: no rollback is possible", sub)}, nil
	}
	var workers int
	if err := s.src.QueryRow(ctx, `SELECT count(*) FROM pg_catalog.pg_stat_subscription WHERE subid = $1 AND pid IS NOT NULL`, found.OID).Scan(&workers); err != nil {
		return "", nil, s.src.Wrap("read the way back's worker", err)
	}
	var lag *int64
	err = s.dst.QueryRow(ctx, `SELECT pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), confirmed_flush_lsn)::int8
		FROM pg_catalog.pg_replication_slots WHERE slot_name = $1`, slot).Scan(&lag)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return "", nil, s.dst.Wrap("read the way back's slot", err)
	}
	var problems []string
	switch {
	case !found.Enabled:
		problems = append(problems, fmt.Sprintf("subscription %q (the way back) is disabled on the source: writes on the target do not reach it; pgmove rollback refuses until it streams (ALTER SUBSCRIPTION %s ENABLE)", sub, catalog.QuoteName(sub)))
	case workers == 0:
		problems = append(problems, fmt.Sprintf("subscription %q (the way back) has no worker on the source: its log says why", sub))
	}
	if errors.Is(err, pgx.ErrNoRows) {
		problems = append(problems, fmt.Sprintf("replication slot %q (the way back) is missing on the target: no rollback is possible", slot))
		return "the way back: broken", problems, nil
	}
	l := "unknown"
	if lag != nil {
		l = check.PrettyBytes(*lag)
	}
	return fmt.Sprintf("the way back: subscription %s on the source, lag %s", sub, l), problems, nil
}

// statusExit is exit 3 while the migration has a problem (a side
// unreachable among them), as progress.
func statusExit(st Status) error {
	if len(st.Problems) == 0 || st.Phase == "finished" || st.Phase == "aborted" {
		return nil
	}
	return withCode(ExitProblems, fmt.Errorf("%s", st.Problems[0]))
}

// withoutNoSubscription drops the progress report's "no subscription"
// problem before the migration made one (then it is the next step, not a
// fault) and after cleanup dropped it.
func withoutNoSubscription(problems []string, rep *progress.Report) []string {
	var out []string
	for _, p := range problems {
		if !strings.HasPrefix(p, fmt.Sprintf("subscription %q does not exist", rep.Subscription)) {
			out = append(out, p)
		}
	}
	return out
}

func trafficHint(s *session) string {
	var via []string
	if s.m.DstDNS != "" {
		via = append(via, "DNS "+s.m.DstDNS)
	}
	if s.m.DstVIP != "" {
		via = append(via, "VIP "+s.m.DstVIP)
	}
	if len(via) == 0 {
		return ""
	}
	return " (" + strings.Join(via, ", ") + ")"
}

// presence says whether an object exists, or that its side cannot tell.
func presence(b *bool, side string) string {
	switch {
	case b == nil:
		return "unknown (" + side + " unreachable)"
	case *b:
		return "exists"
	}
	return "absent"
}
