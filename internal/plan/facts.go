package plan

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/pgmove/pgmove/internal/catalog"
	"github.com/pgmove/pgmove/internal/check"
	"github.com/pgmove/pgmove/internal/cluster"
	"github.com/pgmove/pgmove/internal/config"
)

// FactsFormat is the version of plan.json's layout.
const FactsFormat = 1

// Facts is what the plan knows of the migration when it is written. The
// runbook is rendered from it, and plan.json keeps it so that plan --check
// can say what changed since.
type Facts struct {
	Format    int       `json:"format"`
	Written   time.Time `json:"written"`
	Pgmove    string    `json:"pgmove_version"`
	Source    Endpoint  `json:"source"`
	Target    Endpoint  `json:"target"`
	Tables    []Table   `json:"tables"`
	Sequences int       `json:"sequences"`
	// Special are the objects logical replication does not carry.
	Special []Object `json:"special_objects"`
	// Findings are the check's other findings: settings, privileges, leftovers.
	Findings     []Finding `json:"findings"`
	SourceBytes  int64     `json:"source_bytes"`  // table data to copy
	LargestBytes int64     `json:"largest_bytes"` // the largest table, which bounds the copy time
	SyncWorkers  int       `json:"sync_workers"`  // the target's max_sync_workers_per_subscription
}

// Endpoint is one side as the plan saw it.
type Endpoint struct {
	Display   string `json:"display"`
	Version   string `json:"version,omitempty"`
	Reachable bool   `json:"reachable"`
	Error     string `json:"error,omitempty"`
}

// Table is one table whose rows are migrated, with its replica identity.
type Table struct {
	Name     string `json:"table"`
	Keys     string `json:"keys"`
	Bytes    int64  `json:"bytes"`
	Identity string `json:"identity"`
	OK       bool   `json:"ok"` // UPDATE and DELETE can be replicated
	Fix      string `json:"fix,omitempty"`
}

// Finding is a check finding as plan.json keeps it.
type Finding struct {
	Severity string `json:"severity"`
	Side     string `json:"side"`
	Code     string `json:"code"`
	Object   string `json:"object,omitempty"`
	Message  string `json:"message"`
	Detail   string `json:"detail,omitempty"`
	Fix      string `json:"fix,omitempty"`
}

// Object is a special object: something logical replication does not carry.
type Object struct {
	Severity string `json:"severity"`
	Code     string `json:"code"`
	Object   string `json:"object,omitempty"`
	Message  string `json:"message"`
	Fix      string `json:"fix,omitempty"`
}

// Key identifies an object across two plans.
func (o Object) Key() string { return o.Code + " " + o.Object }

// specialCodes are the check codes of objects logical replication does not
// carry (the seed's check-special-object). Sequences are counted apart.
var specialCodes = map[string]bool{
	"materialized_view": true, "foreign_table": true, "unlogged_table": true, "partitioned_table": true,
	"generated_column": true, "large_objects": true, "event_trigger": true, "row_level_security": true,
	"extension": true,
}

// defaultSyncWorkers is PostgreSQL's default max_sync_workers_per_subscription,
// assumed when the target cannot be asked.
const defaultSyncWorkers = 2

// Gather reads the facts of the migration: a check without the connection
// probes, every migrated table's replica identity, the sequences and the
// sizes. The source must be reachable; the target may not exist yet
// (dstErr says why), since a plan is often written before it is built.
func Gather(ctx context.Context, m *config.Migration, src, dst *cluster.Conn, dstErr error, now time.Time, version string) (*Facts, error) {
	if src == nil {
		return nil, errors.New("source: not connected")
	}
	if dst == nil && dstErr == nil {
		dstErr = errors.New("target: not connected")
	}
	r := check.Run(ctx, m, src, dst, nil, dstErr, check.Options{Native: true})
	snap, err := catalog.Tables(ctx, src)
	if err != nil {
		return nil, err
	}
	rows, err := check.Identities(ctx, src, snap, snap.Published(src.VersionNum, m.Include, m.Exclude))
	if err != nil {
		return nil, err
	}
	seqs, err := catalog.Sequences(ctx, src)
	if err != nil {
		return nil, err
	}
	f := &Facts{
		Format: FactsFormat, Written: now.UTC().Truncate(time.Second), Pgmove: version,
		Source:      Endpoint{Display: r.Source.Display, Version: r.Source.Version, Reachable: r.Source.Reachable},
		Target:      Endpoint{Display: r.Target.Display, Version: r.Target.Version, Reachable: r.Target.Reachable},
		Sequences:   len(seqs),
		SourceBytes: r.SourceBytes,
		SyncWorkers: defaultSyncWorkers,
	}
	if dstErr != nil {
		f.Target.Error = dstErr.Error()
	}
	for _, row := range rows {
		f.Tables = append(f.Tables, Table{Name: row.Name, Keys: row.Keys, Bytes: row.Bytes, Identity: row.Identity, OK: row.OK, Fix: row.Fix})
	}
	for _, t := range snap.Leaves(r.Published) {
		f.LargestBytes = max(f.LargestBytes, t.Bytes)
	}
	for _, fd := range r.Findings {
		switch {
		case fd.Code == "connect" && fd.Side == string(config.Target):
			// Said once, in the target's endpoint.
		case specialCodes[fd.Code]:
			f.Special = append(f.Special, Object{Severity: fd.Severity.String(), Code: fd.Code, Object: fd.Object, Message: fd.Message, Fix: fd.Fix})
		case fd.Code == "replica_identity" || fd.Code == "sequence":
			// The runbook has a section of its own for each.
		default:
			f.Findings = append(f.Findings, Finding{Severity: fd.Severity.String(), Side: fd.Side, Code: fd.Code, Object: fd.Object, Message: fd.Message, Detail: fd.Detail, Fix: fd.Fix})
		}
	}
	sort.SliceStable(f.Special, func(i, j int) bool { return f.Special[i].Key() < f.Special[j].Key() })
	if dst != nil {
		if v, err := dst.Setting(ctx, "max_sync_workers_per_subscription"); err == nil {
			if n, err := strconv.Atoi(v); err == nil && n > 0 {
				f.SyncWorkers = n
			}
		}
	}
	return f, nil
}

// Unfixed returns the tables whose UPDATE and DELETE cannot be replicated yet.
func (f *Facts) Unfixed() []Table {
	var out []Table
	for _, t := range f.Tables {
		if !t.OK {
			out = append(out, t)
		}
	}
	return out
}

// copyRate is the assumed speed of one table-sync worker: COPY from the
// source into a target table whose indexes already exist. It is a rough
// figure for ordinary hardware, not a measurement of these servers.
const copyRate = 50 << 20 // bytes per second

// CopyEstimate is the expected duration of the initial copy: the data spread
// over the sync workers, but never less than the largest table alone, which
// one worker copies.
func CopyEstimate(total, largest int64, workers int) time.Duration {
	if workers < 1 {
		workers = 1
	}
	secs := max(float64(total)/float64(copyRate*int64(workers)), float64(largest)/copyRate)
	return time.Duration(secs * float64(time.Second))
}

// RoughDuration words a duration for people planning a change window.
func RoughDuration(d time.Duration) string {
	switch {
	case d < time.Minute:
		return "under a minute"
	case d < time.Hour:
		return fmt.Sprintf("about %d min", int(d.Round(time.Minute)/time.Minute))
	case d < 48*time.Hour:
		return fmt.Sprintf("about %.1f h", d.Hours())
	}
	return fmt.Sprintf("about %.1f days", d.Hours()/24)
}
