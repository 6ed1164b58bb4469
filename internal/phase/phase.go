package phase

import (
	"log/slog"
	"math"
	"time"
)

// Msg is the message of every phase record; Key and SecondsKey name its
// attributes. `make bench` matches on them: change them together.
const (
	Msg        = "phase done"
	Key        = "phase"
	SecondsKey = "seconds"
)

// The phases, in the order a snapshot migrate runs them. Dump runs while
// Check does, so its time overlaps Check's.
const (
	Check        = "check"
	Dump         = "dump"
	PreData      = "pre-data" // the tables without their indexes (snapshot copy)
	Schema       = "schema"   // the whole schema at once (--copy native, copy-schema)
	Publication  = "publication"
	Copy         = "copy"    // the slot, the plan and the snapshot COPY of every table
	Indexes      = "indexes" // the index and constraint builds after the copy
	PostData     = "post-data"
	Subscription = "subscription"
	CatchUp      = "catch-up"
	Migrate      = "migrate" // the whole command
)

// Done logs that the phase that began at start has ended, with attrs
// (key, value pairs) after its name and seconds.
func Done(name string, start time.Time, attrs ...any) {
	secs := math.Round(time.Since(start).Seconds()*1000) / 1000
	slog.Info(Msg, append([]any{Key, name, SecondsKey, secs}, attrs...)...)
}
