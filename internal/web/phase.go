package web

import (
	"github.com/pgmove/pgmove/internal/progress"
	"github.com/pgmove/pgmove/internal/state"
)

// Phases are the values of pgmove_phase's phase label, in the order a
// migration goes through them.
var Phases = []string{
	"unknown",       // a side cannot be reached and what is known does not tell
	"not_started",   // no subscription and no snapshot copy
	"copy",          // the snapshot copy loads the tables
	"index",         // the snapshot copy builds indexes and constraints
	"subscribe",     // the copy is done, the subscription is being created
	"copy_failed",   // the snapshot copy failed or stopped updating its status
	"table_sync",    // the subscription exists, not every table is ready
	"catching_up",   // every table replicates, the lag is above max_lag or a problem is reported
	"caught_up",     // a switchover can begin
	"switched_over", // the last switchover finished: the application writes to the target
	"rolled_back",   // the last rollback finished: the application writes to the source again
	"finished",      // cleanup ran after everything else
}

// phaseOf says where the migration stands, from the report and the journal.
// The journal's word on a switchover or rollback wins: after one, the
// forward subscription is stopped on purpose.
func phaseOf(r *progress.Report, events []state.Event) string {
	last := map[string]state.Event{}
	for _, e := range events {
		last[e.Step] = e
	}
	var sw *state.Event
	for _, step := range []string{"switchover", "rollback"} {
		if e, ok := last[step]; ok && e.Status == state.Done && (sw == nil || e.Time.After(sw.Time)) {
			sw = &e
		}
	}
	if c, ok := last["cleanup"]; ok && c.Status == state.Done && (sw == nil || c.Time.After(sw.Time)) && r != nil && r.Exists != nil && !*r.Exists {
		return "finished"
	}
	if sw != nil {
		if sw.Step == "switchover" {
			return "switched_over"
		}
		return "rolled_back"
	}
	if r == nil {
		return "unknown"
	}
	if !r.Subscribed() {
		if r.Copy != nil {
			switch {
			case r.Copy.Phase == "failed" || (r.Copy.Stale && r.Copy.Phase != "done"):
				return "copy_failed"
			case r.Copy.Phase == "copy" || r.Copy.Phase == "index":
				return r.Copy.Phase
			case r.Copy.Phase == "done":
				return "subscribe"
			}
		}
		if r.Exists == nil {
			return "unknown"
		}
		return "not_started"
	}
	switch {
	case r.Ready == nil:
		return "unknown"
	case *r.Ready < r.Total:
		return "table_sync"
	case r.CaughtUp == nil:
		return "unknown" // the source is unreachable: the lag is unknown
	case *r.CaughtUp:
		return "caught_up"
	}
	return "catching_up"
}
