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
	"github.com/pgmove/pgmove/internal/copy"
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
	// Copy is the initial copy migration.yml chose: snapshot (pgmove's
	// parallel COPY, the default) or native (PostgreSQL's table sync).
	Copy string `json:"copy"`
	// Jobs is migration.yml's jobs; 0 when unset: pgmove then runs one job
	// per core of the machine it runs on, which the plan cannot know.
	Jobs int `json:"jobs,omitempty"`
	// SplitLarger is the size above which the snapshot copy splits a table
	// into ranges, and LargestWholeBytes the largest table it copies whole,
	// which bounds its duration as LargestBytes bounds the native copy's.
	SplitLarger       int64 `json:"split_larger_than"`
	LargestWholeBytes int64 `json:"largest_whole_bytes"`
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

// Copy methods, as migration.yml's copy names them.
const (
	Snapshot = "snapshot"
	Native   = "native"
)

// copyMethod is the initial copy m runs: snapshot unless copy: native.
func copyMethod(m *config.Migration) string {
	if m.Copy == Native {
		return Native
	}
	return Snapshot
}

// Native reports whether the initial copy is PostgreSQL's table sync.
func (f *Facts) Native() bool { return f.Copy == Native }

// defaultSplitLarger is create-sub's --split-larger-than when migration.yml
// sets no split_larger_than.
const defaultSplitLarger = copy.DefaultSplitLarger

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
	method := copyMethod(m)
	// The capacity a copy needs differs: table sync wants a slot, a
	// walsender and a worker per table at once; the snapshot copy one slot.
	r := check.Run(ctx, m, src, dst, nil, dstErr, check.Options{Native: method == Native})
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
		Copy:        method, Jobs: max(m.Jobs, 0), SplitLarger: m.SplitLarger,
	}
	if f.SplitLarger <= 0 {
		f.SplitLarger = defaultSplitLarger
	}
	if dstErr != nil {
		f.Target.Error = dstErr.Error()
	}
	for _, row := range rows {
		f.Tables = append(f.Tables, Table{Name: row.Name, Keys: row.Keys, Bytes: row.Bytes, Identity: row.Identity, OK: row.OK, Fix: row.Fix})
	}
	for _, t := range snap.Leaves(r.Published) {
		f.LargestBytes = max(f.LargestBytes, t.Bytes)
		// Larger tables are loaded by several jobs at once (CTID ranges
		// from a 14+ source, one read dealt to the jobs before).
		if t.Bytes <= f.SplitLarger {
			f.LargestWholeBytes = max(f.LargestWholeBytes, t.Bytes)
		}
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

// jobRate is the assumed speed of one snapshot-copy job: binary COPY into
// a table without indexes. make bench measured 60-80 MB/s with 2 jobs on a
// 2-core machine (PostgreSQL 13 source, 17 target, over loopback).
const jobRate = 35 << 20 // bytes per second

// defaultJobs is the job count the estimate assumes when migration.yml sets
// none: pgmove runs one per core of its machine, which the plan cannot know.
const defaultJobs = 2

// CopyEstimate is the expected duration of the native initial copy: the
// data spread over the sync workers, but never less than the largest table
// alone, which one worker copies.
func CopyEstimate(total, largest int64, workers int) time.Duration {
	return spread(total, largest, workers, copyRate)
}

// SnapshotEstimate is the expected duration of the snapshot copy, split as
// create-sub runs it: the COPY of the data over the jobs, never less than
// the largest table copied whole by one job, then the index builds, which
// typically add a third of the copy's time.
func SnapshotEstimate(total, largestWhole int64, jobs int) (data, indexes time.Duration) {
	data = spread(total, largestWhole, jobs, jobRate)
	return data, data / 3
}

// Estimate is the expected duration of the migration's initial copy, index
// builds included: what the runbook and plan --check announce.
func (f *Facts) Estimate() time.Duration {
	if f.Native() {
		return CopyEstimate(f.SourceBytes, f.LargestBytes, f.SyncWorkers)
	}
	data, indexes := SnapshotEstimate(f.SourceBytes, f.LargestWholeBytes, f.jobs())
	return data + indexes
}

// jobs is the job count the snapshot estimate assumes.
func (f *Facts) jobs() int {
	if f.Jobs > 0 {
		return f.Jobs
	}
	return defaultJobs
}

// spread is the time to move total bytes over n streams of rate bytes per
// second each, but never less than largest bytes through one stream.
func spread(total, largest int64, n int, rate int64) time.Duration {
	n = max(n, 1)
	secs := max(float64(total)/float64(rate*int64(n)), float64(largest)/float64(rate))
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
