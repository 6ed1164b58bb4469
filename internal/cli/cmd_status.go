package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/pgmove/pgmove/internal/catalog"
	"github.com/pgmove/pgmove/internal/progress"
	"github.com/pgmove/pgmove/internal/state"
)

type statusOptions struct{ json bool }

// Status is where a migration stands.
type Status struct {
	Migration    string        `json:"migration"`
	ContextDir   string        `json:"context_dir"`
	Phase        string        `json:"phase"`
	Publication  bool          `json:"publication"`
	Subscription bool          `json:"subscription"`
	Progress     string        `json:"progress,omitempty"`
	Problems     []string      `json:"problems,omitempty"`
	LastSteps    []state.Event `json:"last_steps,omitempty"`
	Next         string        `json:"next"`
}

func newStatusCmd(g *globals) *cobra.Command {
	o := &statusOptions{}
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Say where the migration stands and what the next step is",
		Args:  cobra.NoArgs,
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

	if srcErr != nil {
		st.Problems = append(st.Problems, srcErr.Error())
	}
	if dstErr != nil {
		st.Problems = append(st.Problems, dstErr.Error())
	}
	if s.src != nil {
		pubs, err := catalog.Publications(ctx, s.src)
		if err != nil {
			return err
		}
		for _, p := range pubs {
			st.Publication = st.Publication || p.Name == s.m.PubName
		}
	}
	var rep *progress.Report
	if s.dst != nil {
		sm := &progress.Sampler{M: s.m, Src: s.src, Dst: s.dst}
		if rep, err = sm.Sample(ctx); err != nil {
			return err
		}
		st.Subscription = rep.Exists
		if rep.Exists {
			st.Progress = rep.Summary()
			st.Problems = append(st.Problems, rep.Problems...)
		}
	}
	switch {
	case done("cleanup") && !st.Subscription && !st.Publication:
		st.Phase, st.Next = "finished", "nothing: the migration is cleaned up"
	case done("copy-seq") && st.Subscription:
		st.Phase = "switch"
		st.Next = "verify with pgmove compare --checksum, switch traffic to the target" + trafficHint(s) + ", then pgmove cleanup"
	case !st.Subscription && !st.Publication:
		st.Phase, st.Next = "not started", "pgmove check, then pgmove migrate (or copy-schema, create-pub, create-sub)"
	case !st.Subscription:
		st.Phase, st.Next = "publication made", "pgmove copy-schema (if not done), then pgmove create-sub"
	case rep != nil && rep.Ready < rep.Total:
		st.Phase, st.Next = "initial copy", "wait: pgmove progress --watch"
	case rep != nil && rep.Done(s.m.MaxLag):
		st.Phase = "replicating, caught up"
		st.Next = "the switch: stop writes on the source, wait for lag 0, pgmove copy-seq, pgmove compare --checksum, switch traffic to the target" + trafficHint(s)
	default:
		st.Phase, st.Next = "replicating, catching up", "wait: pgmove progress --watch"
	}
	if len(st.Problems) > 0 && st.Phase != "finished" {
		st.Next = "fix first: " + st.Problems[0] + "; then " + st.Next
	}
	if o.json {
		enc := json.NewEncoder(s.g.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	}
	w := s.g.stdout
	fmt.Fprintf(w, "migration  %s\ncontext    %s\nphase      %s\n", st.Migration, st.ContextDir, st.Phase)
	fmt.Fprintf(w, "objects    publication %s: %s, subscription %s: %s\n", s.m.PubName, yesNo(st.Publication), s.m.SubName, yesNo(st.Subscription))
	if st.Progress != "" {
		fmt.Fprintf(w, "progress   %s\n", st.Progress)
	}
	for _, p := range st.Problems {
		fmt.Fprintf(w, "PROBLEM    %s\n", p)
	}
	if len(st.LastSteps) > 0 {
		fmt.Fprintln(w, "steps")
		for _, e := range st.LastSteps {
			fmt.Fprintf(w, "  %-34s %-8s %s  %s\n", e.Step, e.Status, e.Time.Local().Format(time.DateTime), e.Message)
		}
	}
	fmt.Fprintf(w, "next       %s\n", st.Next)
	return nil
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

func yesNo(b bool) string {
	if b {
		return "exists"
	}
	return "absent"
}
