package check

import (
	"context"
	"fmt"
	"strings"

	"github.com/pgmove/pgmove/internal/replication"
	"github.com/pgmove/pgmove/internal/schema"
	"github.com/pgmove/pgmove/internal/state"
)

// phase is where the migration stands, read from the servers first (the
// subscription on the target, the slot on the source) and from the journal
// second (a copy that started and did not finish). check uses it not to
// report as a fault what pgmove itself does next.
type phase struct {
	known        bool // the target answered
	subscription bool // create-sub is done: what the target lacks now is drift
	// interrupted is the journal's word that a copy of this migration
	// started and did not finish ("" when not); interruptedSlot is the
	// slot the last copy ran under, while no subscription took it over.
	interrupted, interruptedSlot string
}

// beforeHandoff reports whether the snapshot copy's handoff is still to
// come: the target then lacks indexes, constraints, triggers and policies
// that create-sub builds after the copy.
func (p phase) beforeHandoff(native bool) bool { return p.known && !p.subscription && !native }

func (c *checker) readPhase(ctx context.Context) error {
	if c.dst == nil {
		return nil
	}
	sub, err := replication.Find(ctx, c.dst, c.m.SubName)
	if err != nil {
		return err
	}
	c.phase.known, c.phase.subscription = true, sub != nil
	if e := c.o.LastCopy; !c.phase.subscription && e != nil {
		// Also a copy that finished before the run stopped: its slot
		// waits for the index builds.
		c.phase.interruptedSlot = e.Data["slot"]
	}
	if e := c.o.LastCopy; !c.phase.subscription && e != nil && e.Status != state.Done {
		c.phase.interrupted = fmt.Sprintf("a copy of this migration %s at %s", map[string]string{state.Started: "started", state.Failed: "failed"}[e.Status], e.Time.Local().Format("2006-01-02 15:04:05"))
	}
	return nil
}

// postData reports whether d is an object the target lacks that create-sub
// builds after the copy (pg_dump's post-data section): an index, a primary
// key, unique, exclusion or foreign key constraint, a NOT VALID check, a
// trigger, a policy; or a table whose definition differs only in what
// post-data sets (REPLICA IDENTITY USING INDEX, row-level security).
func postData(d schema.Difference) bool {
	switch d.Kind {
	case "index", "trigger", "policy":
		return d.Target == ""
	case "constraint":
		if d.Target != "" {
			return false
		}
		def := strings.TrimSpace(d.Source)
		for _, p := range []string{"PRIMARY KEY", "UNIQUE", "EXCLUDE", "FOREIGN KEY"} {
			if strings.HasPrefix(def, p) {
				return true
			}
		}
		return strings.HasSuffix(def, "NOT VALID")
	case "table":
		return d.Source != "" && d.Target != "" && withoutPostData(d.Source) == withoutPostData(d.Target)
	}
	return false
}

func withoutPostData(def string) string {
	var keep []string
	for _, l := range strings.Split(def, "\n") {
		if strings.HasPrefix(l, "REPLICA IDENTITY USING INDEX") || strings.HasSuffix(l, "ROW LEVEL SECURITY") {
			continue
		}
		keep = append(keep, l)
	}
	return strings.Join(keep, "\n")
}

// pendingSummary is the one line that replaces the post-data differences
// before the handoff.
func pendingSummary(objects int, tables map[string]bool) string {
	return fmt.Sprintf("%d table(s)' indexes and constraints (%d object(s): indexes, keys, foreign keys, triggers, policies) will be built by create-sub after the copy", len(tables), objects)
}
