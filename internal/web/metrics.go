package web

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pgmove/pgmove/internal/progress"
)

// A figure pgmove cannot know (a side unreachable, nothing confirmed yet,
// a sample that failed) is an absent series, never 0: Prometheus's own
// convention for a target that cannot say, and what alerts on absent()
// expect.

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, labels, nil)
}

var (
	descSourceUp  = desc("pgmove_source_up", "Whether the last sample reached the source (1) or not (0).")
	descTargetUp  = desc("pgmove_target_up", "Whether the last sample reached the target (1) or not (0).")
	descSampleOK  = desc("pgmove_sample_success", "Whether the last sample of the migration succeeded (1) or failed (0); the other figures are absent after a failure.")
	descSampledAt = desc("pgmove_last_sample_timestamp_seconds", "When the last sample was taken, as a Unix time.")
	descPhase     = desc("pgmove_phase", "The migration's phase: 1 for the current one, 0 for the others.", "phase")
	descLagBytes  = desc("pgmove_replication_lag_bytes", "The source's current WAL position minus the position the target confirmed, in bytes.")
	descLagSecs   = desc("pgmove_replication_lag_seconds", "How long ago the source was at the position the target confirmed, in seconds.")
	descTables    = desc("pgmove_tables", "Tables of the migration per state (waiting, copying, copied, catching up, ready, or one the migration does not carry).", "state")
	descSelected  = desc("pgmove_tables_selected", "Tables the migration's selection holds.")
	descCopySize  = desc("pgmove_copy_size_bytes", "Bytes of the tables to copy, on the source.")
	descCopyRate  = desc("pgmove_copy_throughput_bytes_per_second", "The initial copy's throughput, smoothed over the last samples.")
	descETA       = desc("pgmove_copy_eta_seconds", "Seconds until the copy is done, or, once every table replicates, until the lag is gone.")
	descRetained  = desc("pgmove_slot_retained_wal_bytes", "WAL the migration's replication slot keeps on the source, in bytes.")
	descWALRate   = desc("pgmove_source_wal_bytes_per_second", "WAL the source writes, smoothed over the last samples.")
	descApplyRate = desc("pgmove_apply_bytes_per_second", "WAL the target confirms, smoothed over the last samples.")
	descApplyUp   = desc("pgmove_apply_worker_up", "Whether the subscription's apply worker runs (1) or not (0).")
	descCaughtUp  = desc("pgmove_caught_up", "Whether a switchover can begin (1): every table replicating, the lag at most max_lag, no problem.")
	descProblems  = desc("pgmove_problems", "Problems the last sample reported (each blocks a switchover).")
	descPause     = desc("pgmove_switchover_pause_seconds", "How long the last switchover (or rollback) paused the application's writes.", "step")

	descCopiedBytes = desc("pgmove_copied_bytes_total", "Bytes the initial copy loaded into the target; per table up to a limit of tables, one sum above it.")
	descCopiedRows  = desc("pgmove_copied_rows_total", "Rows the initial copy loaded into the target (planner estimates are left out); per table up to a limit of tables, one sum above it.")
)

// collector exposes the latest sample; it sends no query.
type collector struct{ s *Server }

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descSourceUp, descTargetUp, descSampleOK, descSampledAt, descPhase, descLagBytes, descLagSecs,
		descTables, descSelected, descCopySize, descCopyRate, descETA, descRetained, descWALRate, descApplyRate, descApplyUp,
		descCaughtUp, descProblems, descPause} {
		ch <- d
	}
}

func gauge(ch chan<- prometheus.Metric, d *prometheus.Desc, v float64, labels ...string) {
	ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// states are the sync states always exposed (0 when no table is in one),
// so a dashboard's series do not come and go.
var states = []string{"waiting", "copying", "copied", "catching up", "ready"}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	snap := c.s.latest()
	if snap == nil {
		return // no sample yet: nothing is known
	}
	gauge(ch, descSampledAt, float64(snap.SampledAt.UnixNano())/1e9)
	for _, p := range Phases {
		gauge(ch, descPhase, b2f(p == snap.Phase), p)
	}
	if snap.Pause != nil {
		gauge(ch, descPause, snap.Pause.Seconds, snap.Pause.Step)
	}
	r := snap.Report
	gauge(ch, descSampleOK, b2f(r != nil))
	if r == nil {
		return
	}
	gauge(ch, descSourceUp, b2f(r.Source.Reachable))
	gauge(ch, descTargetUp, b2f(r.Target.Reachable))
	gauge(ch, descProblems, float64(len(r.Problems)))
	if r.LagBytes != nil {
		gauge(ch, descLagBytes, float64(*r.LagBytes))
	}
	if r.LagSeconds != nil {
		gauge(ch, descLagSecs, *r.LagSeconds)
	}
	if r.ETA != nil {
		gauge(ch, descETA, *r.ETA)
	}
	if r.RetainedWAL != nil {
		gauge(ch, descRetained, float64(*r.RetainedWAL))
	}
	if r.CaughtUp != nil {
		gauge(ch, descCaughtUp, b2f(*r.CaughtUp))
	}
	// Table states, sizes and rates are the target's to say (or, while
	// it is unreachable, the copy status's last known figures, which are
	// not live: left out).
	if !r.Target.Reachable {
		return
	}
	counts := map[string]int{}
	for _, s := range states {
		counts[s] = 0
	}
	for _, t := range r.Tables {
		counts[t.State]++
	}
	for s, n := range counts {
		gauge(ch, descTables, float64(n), s)
	}
	if r.Source.Reachable {
		gauge(ch, descSelected, float64(r.Total))
		gauge(ch, descCopySize, float64(r.TotalBytes))
		gauge(ch, descWALRate, r.WALRate)
	}
	gauge(ch, descCopyRate, r.CopyRate)
	gauge(ch, descApplyRate, r.ApplyRate)
	if r.Subscribed() && r.Workers != nil {
		gauge(ch, descApplyUp, b2f(*r.Workers > 0 && !r.ApplyDown))
	}
}

// copyCollector exposes the copied bytes and rows: per table while the
// tables are at most PerTableLimit, one unlabelled sum above, so thousands
// of tables do not make thousands of series. It is unchecked (it describes
// nothing) because the two forms have different labels; a scrape holds one
// form only.
type copyCollector struct{ s *Server }

func (c *copyCollector) Describe(chan<- *prometheus.Desc) {}

func (c *copyCollector) Collect(ch chan<- prometheus.Metric) {
	snap := c.s.latest()
	if snap == nil || snap.Report == nil || !snap.Report.Target.Reachable {
		return
	}
	r := snap.Report
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	if len(r.Tables) <= snap.PerTableLimit {
		seen := map[string]bool{}
		for _, t := range r.Tables {
			if seen[t.Name] {
				continue
			}
			seen[t.Name] = true
			counter(descCopiedBytesT, float64(t.Bytes), t.Name)
			if rows, ok := copiedRows(t); ok {
				counter(descCopiedRowsT, float64(rows), t.Name)
			}
		}
		return
	}
	var bytes, rows int64
	known := false
	for _, t := range r.Tables {
		bytes += t.Bytes
		if n, ok := copiedRows(t); ok {
			rows, known = rows+n, true
		}
	}
	counter(descCopiedBytes, float64(bytes))
	if known {
		counter(descCopiedRows, float64(rows))
	}
}

var (
	descCopiedBytesT = desc("pgmove_copied_bytes_total", "Bytes the initial copy loaded into the target; per table up to a limit of tables, one sum above it.", "table")
	descCopiedRowsT  = desc("pgmove_copied_rows_total", "Rows the initial copy loaded into the target (planner estimates are left out); per table up to a limit of tables, one sum above it.", "table")
)

// copiedRows is a table's rows counted by the copy (not an estimate).
func copiedRows(t progress.Table) (int64, bool) {
	if t.Rows == nil || t.RowsKind == "estimate" {
		return 0, false
	}
	return *t.Rows, true
}
