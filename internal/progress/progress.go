package progress

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgmove/pgmove/internal/catalog"
	"github.com/pgmove/pgmove/internal/cluster"
	"github.com/pgmove/pgmove/internal/config"
	"github.com/pgmove/pgmove/internal/copy"
	"github.com/pgmove/pgmove/internal/schema"
)

// Table is one table's initial-copy state.
type Table struct {
	Name       string `json:"table"`
	State      string `json:"state"` // waiting, copying, copied, catching up, ready
	Rows       int64  `json:"rows"`  // rows copied so far (live count while copying, estimate after)
	Bytes      int64  `json:"bytes"` // bytes copied so far
	TotalBytes int64  `json:"total_bytes"`
}

// Report is one look at a migration's progress.
type Report struct {
	Time         time.Time `json:"time"`
	Subscription string    `json:"subscription"`
	Exists       bool      `json:"exists"`
	Enabled      bool      `json:"enabled"`
	Tables       []Table   `json:"tables"`
	Ready        int       `json:"tables_ready"`
	Total        int       `json:"tables_total"`

	CopiedBytes int64 `json:"copied_bytes"`
	TotalBytes  int64 `json:"total_bytes"`

	SourceLSN    string  `json:"source_lsn"`
	ConfirmedLSN string  `json:"confirmed_lsn"`
	LagBytes     int64   `json:"lag_bytes"`      // source's current WAL position minus what the target confirmed
	LagSeconds   float64 `json:"lag_seconds"`    // -1 when unknown
	RetainedWAL  int64   `json:"retained_bytes"` // WAL the slot keeps on the source
	SlotActive   bool    `json:"slot_active"`

	CopyRate  float64 `json:"copy_bytes_per_second"`
	WALRate   float64 `json:"wal_bytes_per_second"`   // source WAL generation
	ApplyRate float64 `json:"apply_bytes_per_second"` // target confirmation
	ETA       float64 `json:"eta_seconds"`            // -1 unknown

	// Copy is the snapshot copy's progress while it runs (before the
	// subscription exists), read from the copy's status file.
	Copy *CopyProgress `json:"copy,omitempty"`

	Workers    int      `json:"workers"`
	ErrorCount int64    `json:"error_count"` // apply and sync failures since the subscription was made (PostgreSQL 15+)
	Problems   []string `json:"problems,omitempty"`

	sourceLSN, confirmedLSN uint64
}

// CopyProgress is the snapshot copy seen from another process.
type CopyProgress struct {
	Phase         string   `json:"phase"` // copy, index, done, failed
	TablesCopied  int      `json:"tables_copied"`
	Tables        int      `json:"tables"`
	Bytes         int64    `json:"bytes"`
	TotalBytes    int64    `json:"total_bytes"`
	IndexesDone   int      `json:"indexes_done"`
	IndexesTotal  int      `json:"indexes_total"`
	IndexesActive []string `json:"indexes_running,omitempty"`
	Stale         bool     `json:"stale"` // the copying process stopped updating it
}

// Done reports whether the migration reached the state in which a
// switchover can begin: every table replicating and the lag below maxLag.
func (r *Report) Done(maxLag int64) bool {
	return r.Exists && r.Enabled && r.Total > 0 && r.Ready == r.Total && r.LagBytes <= maxLag && len(r.Problems) == 0
}

// Sampler takes successive looks at a migration and derives rates, ETA and
// lag in seconds from their differences.
type Sampler struct {
	M        *config.Migration
	Src, Dst *cluster.Conn
	// DriftAfter delays the first schema comparison, for callers that
	// sample often and expect to finish quickly (a wait for the catch-up).
	DriftAfter time.Duration
	started    time.Time
	prev       *Report
	history    []lsnAt // source WAL positions over time, to time the lag
	driftAt    time.Time
	drift      []string
	srcSizes   map[[2]string]int64
	srcRows    map[[2]string]int64 // planner estimates, for tables already copied
	sizesAt    time.Time
}

type lsnAt struct {
	t   time.Time
	lsn uint64
}

// Sample takes one look.
func (s *Sampler) Sample(ctx context.Context) (*Report, error) {
	r := &Report{Time: time.Now(), Subscription: s.M.SubName, LagSeconds: -1, ETA: -1}
	if s.Src != nil && (s.srcSizes == nil || time.Since(s.sizesAt) > time.Minute) {
		snap, err := catalog.Tables(ctx, s.Src)
		if err != nil {
			return nil, err
		}
		s.srcSizes, s.srcRows = map[[2]string]int64{}, map[[2]string]int64{}
		for _, t := range snap.Tables {
			s.srcSizes[[2]string{t.Schema, t.Name}] = t.Bytes
			s.srcRows[[2]string{t.Schema, t.Name}] = t.EstRows
		}
		s.sizesAt = time.Now()
	}
	if err := s.target(ctx, r); err != nil {
		return nil, err
	}
	if !r.Exists {
		if err := s.copyStatus(r); err != nil {
			return nil, err
		}
	}
	if r.Exists && s.Src != nil {
		if err := s.schemaDrift(ctx, r); err != nil {
			return nil, err
		}
	}
	if s.Src != nil {
		if err := s.source(ctx, r); err != nil {
			return nil, err
		}
	} else {
		r.Problems = append(r.Problems, "source unreachable: lag unknown")
	}
	s.derive(r)
	s.prev = r
	return r, nil
}

var stateNames = map[string]string{"i": "waiting", "d": "copying", "f": "copied", "s": "catching up", "r": "ready"}

func (s *Sampler) target(ctx context.Context, r *Report) error {
	var oid int64
	err := s.Dst.QueryRow(ctx, `SELECT oid::int8, subenabled FROM pg_catalog.pg_subscription
		WHERE subname = $1 AND subdbid = (SELECT oid FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database())`,
		s.M.SubName).Scan(&oid, &r.Enabled)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return s.Dst.Wrap("read subscription", err)
	}
	r.Exists = true

	// Live COPY counters exist from PostgreSQL 14.
	copying := map[int64][2]int64{}
	if s.Dst.VersionNum >= 140000 {
		rows, err := s.Dst.Query(ctx, `SELECT relid::int8, bytes_processed, tuples_processed FROM pg_catalog.pg_stat_progress_copy
			WHERE datname = pg_catalog.current_database()`)
		if err != nil {
			return s.Dst.Wrap("read copy progress", err)
		}
		for rows.Next() {
			var rel, b, t int64
			if err := rows.Scan(&rel, &b, &t); err != nil {
				rows.Close()
				return s.Dst.Wrap("read copy progress", err)
			}
			copying[rel] = [2]int64{b, t}
		}
		if err := rows.Err(); err != nil {
			return s.Dst.Wrap("read copy progress", err)
		}
	}
	rows, err := s.Dst.Query(ctx, `SELECT c.oid::int8, n.nspname, c.relname, sr.srsubstate::text,
			GREATEST(c.reltuples, 0)::int8,
			CASE WHEN c.relkind = 'p' THEN COALESCE((SELECT sum(pg_catalog.pg_table_size(t.relid))::int8
			     FROM pg_catalog.pg_partition_tree(c.oid) t WHERE t.isleaf), 0)
			     ELSE pg_catalog.pg_table_size(c.oid) END
		FROM pg_catalog.pg_subscription_rel sr
		JOIN pg_catalog.pg_class c ON c.oid = sr.srrelid
		JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
		WHERE sr.srsubid = $1 ORDER BY n.nspname, c.relname`, oid)
	if err != nil {
		return s.Dst.Wrap("read table states", err)
	}
	defer rows.Close()
	for rows.Next() {
		var rel, tuples, size int64
		var schema, name, state string
		if err := rows.Scan(&rel, &schema, &name, &state, &tuples, &size); err != nil {
			return s.Dst.Wrap("read table states", err)
		}
		t := Table{Name: catalog.QuoteName(schema) + "." + catalog.QuoteName(name), State: stateNames[state]}
		t.TotalBytes = s.srcSizes[[2]string{schema, name}]
		switch state {
		case "i":
		case "d":
			p := copying[rel]
			t.Bytes, t.Rows = p[0], p[1]
		default:
			t.Rows, t.Bytes = max(tuples, s.srcRows[[2]string{schema, name}]), max(t.TotalBytes, size)
		}
		if state == "r" {
			r.Ready++
		}
		r.Tables = append(r.Tables, t)
	}
	if err := rows.Err(); err != nil {
		return s.Dst.Wrap("read table states", err)
	}
	r.Total = len(r.Tables)

	err = s.Dst.QueryRow(ctx, `SELECT count(pid)::int FROM pg_catalog.pg_stat_subscription WHERE subid = $1`, oid).Scan(&r.Workers)
	if err != nil {
		return s.Dst.Wrap("read subscription workers", err)
	}
	if !r.Enabled {
		r.Problems = append(r.Problems, "subscription is disabled: nothing is applied; pgmove create-sub enables it")
	} else if r.Workers == 0 {
		r.Problems = append(r.Problems, "no apply worker is running: the target's log says why (max_logical_replication_workers, or an apply error)")
	}
	// Error counters exist from PostgreSQL 15.
	if s.Dst.VersionNum >= 150000 {
		var apply, sync int64
		err := s.Dst.QueryRow(ctx, `SELECT apply_error_count, sync_error_count FROM pg_catalog.pg_stat_subscription_stats WHERE subid = $1`, oid).Scan(&apply, &sync)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return s.Dst.Wrap("read subscription errors", err)
		}
		r.ErrorCount = apply + sync
		// The counters only grow: a problem is an error since the last look.
		if s.prev != nil && r.ErrorCount > s.prev.ErrorCount {
			r.Problems = append(r.Problems, fmt.Sprintf("the subscription failed %d time(s) since the last look (%d applying, %d copying in all): see the target's log",
				r.ErrorCount-s.prev.ErrorCount, apply, sync))
		}
	}
	return nil
}

func (s *Sampler) source(ctx context.Context, r *Report) error {
	var cur, conf string
	var curN, confN uint64
	if err := s.Src.QueryRow(ctx, "SELECT pg_catalog.pg_current_wal_lsn()::text").Scan(&cur); err != nil {
		return s.Src.Wrap("read WAL position", err)
	}
	err := s.Src.QueryRow(ctx, `SELECT pg_catalog.pg_current_wal_lsn()::text, COALESCE(confirmed_flush_lsn::text, ''), active,
			COALESCE(pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), restart_lsn), 0)::int8
		FROM pg_catalog.pg_replication_slots WHERE slot_name = $1`, s.M.SlotName).Scan(&cur, &conf, &r.SlotActive, &r.RetainedWAL)
	if errors.Is(err, pgx.ErrNoRows) {
		r.SourceLSN = cur
		if r.Exists {
			r.Problems = append(r.Problems, fmt.Sprintf("replication slot %q is missing on the source: the subscription cannot stream; recreate the migration (pgmove cleanup, then migrate)", s.M.SlotName))
		}
		return nil
	}
	if err != nil {
		return s.Src.Wrap("read replication slot", err)
	}
	r.SourceLSN, r.ConfirmedLSN = cur, conf
	curN, _ = parseLSN(cur)
	confN, _ = parseLSN(conf)
	r.sourceLSN, r.confirmedLSN = curN, confN
	if curN > confN {
		r.LagBytes = int64(curN - confN)
	}
	var replayLag *float64
	err = s.Src.QueryRow(ctx, `SELECT extract(epoch FROM replay_lag)::float8 FROM pg_catalog.pg_stat_replication
		WHERE application_name = $1 ORDER BY backend_start DESC LIMIT 1`, s.M.SubName).Scan(&replayLag)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return s.Src.Wrap("read replication lag", err)
	}
	switch {
	case r.LagBytes == 0:
		r.LagSeconds = 0
	case replayLag != nil:
		r.LagSeconds = *replayLag
	}
	return nil
}

// schemaDrift names the most common cause of a stalled apply: DDL run on
// the source (a table or column the target lacks or has otherwise), which
// replication does not carry. Comparing schemas costs a few queries, so it
// runs at most every 15 s.
func (s *Sampler) schemaDrift(ctx context.Context, r *Report) error {
	if s.started.IsZero() {
		s.started = time.Now()
	}
	if time.Since(s.started) >= s.DriftAfter && time.Since(s.driftAt) > 15*time.Second {
		ds, err := schema.Diff(ctx, s.Src, s.Dst)
		if err != nil {
			return err
		}
		s.drift, s.driftAt = nil, time.Now()
		for _, d := range ds {
			if d.Warning || d.ColumnOrder || (d.Kind != "table" && d.Kind != "column") { // column order: replication maps by name
				continue
			}
			p := fmt.Sprintf("schema drift on %s %s: ", d.Kind, d.Object)
			switch {
			case d.Target == "":
				p += "the source has it, the target does not"
			case d.Source == "":
				p += "the target has it, the source does not"
			default:
				p += "it differs between source and target"
			}
			p += "; replication stops on it"
			if d.Fix != "" {
				p += "; fix on the target: " + strings.Join(strings.Fields(d.Fix), " ")
			}
			s.drift = append(s.drift, p)
		}
	}
	r.Problems = append(r.Problems, s.drift...)
	return nil
}

// copyStatus reads the snapshot copy's status file, when a copy runs or
// ran without reaching the subscription.
func (s *Sampler) copyStatus(r *Report) error {
	st, err := copy.ReadStatus(s.M.ContextDir)
	if err != nil || st == nil {
		return err
	}
	cp := &CopyProgress{Phase: st.Phase, Tables: len(st.Tables), IndexesDone: st.Indexes.Done,
		IndexesTotal: st.Indexes.Total, IndexesActive: st.Indexes.Running, Stale: time.Since(st.Updated) > 10*time.Second}
	for _, t := range st.Tables {
		cp.Bytes += min(t.Bytes, max(t.TotalBytes, t.Bytes))
		cp.TotalBytes += max(t.TotalBytes, t.Bytes)
		if t.State == "copied" {
			cp.TablesCopied++
		}
		r.Tables = append(r.Tables, Table{Name: t.Name, State: t.State, Rows: t.Rows, Bytes: t.Bytes, TotalBytes: t.TotalBytes})
	}
	r.Copy = cp
	r.CopiedBytes, r.TotalBytes = cp.Bytes, cp.TotalBytes
	if cp.Stale && cp.Phase != "done" {
		r.Problems = append(r.Problems, fmt.Sprintf("the snapshot copy (pid %d) stopped updating its progress at %s: if it was interrupted, rerun pgmove migrate (it restarts the copy from a new slot)", st.PID, st.Updated.Format(time.TimeOnly)))
	}
	return nil
}

// derive computes rates, the ETA and lag in seconds from the previous
// sample and the history of the source's WAL position.
func (s *Sampler) derive(r *Report) {
	if r.Copy == nil {
		for _, t := range r.Tables {
			r.CopiedBytes += min(t.Bytes, max(t.TotalBytes, t.Bytes))
			r.TotalBytes += max(t.TotalBytes, t.Bytes)
		}
	}
	if r.sourceLSN > 0 && r.Exists {
		s.history = append(s.history, lsnAt{r.Time, r.sourceLSN})
		if len(s.history) > 600 {
			s.history = s.history[len(s.history)-600:]
		}
		// The lag in seconds is how long ago the source was where the
		// target has now confirmed.
		if r.LagBytes > 0 {
			for i := len(s.history) - 1; i >= 0; i-- {
				if s.history[i].lsn <= r.confirmedLSN {
					r.LagSeconds = r.Time.Sub(s.history[i].t).Seconds()
					break
				}
			}
		}
	}
	p := s.prev
	if p == nil {
		return
	}
	dt := r.Time.Sub(p.Time).Seconds()
	if dt <= 0 {
		return
	}
	smooth := func(prev, now float64) float64 {
		if prev == 0 {
			return now
		}
		return 0.7*prev + 0.3*now
	}
	r.CopyRate = smooth(p.CopyRate, max(0, float64(r.CopiedBytes-p.CopiedBytes)/dt))
	if r.sourceLSN >= p.sourceLSN && p.sourceLSN > 0 {
		r.WALRate = smooth(p.WALRate, float64(r.sourceLSN-p.sourceLSN)/dt)
	}
	if r.confirmedLSN >= p.confirmedLSN && p.confirmedLSN > 0 {
		r.ApplyRate = smooth(p.ApplyRate, float64(r.confirmedLSN-p.confirmedLSN)/dt)
	}
	switch {
	case r.Copy != nil && r.Copy.Phase == "copy" && r.CopyRate > 0:
		r.ETA = float64(r.TotalBytes-r.CopiedBytes) / r.CopyRate
	case r.Ready < r.Total && r.CopyRate > 0:
		r.ETA = float64(r.TotalBytes-r.CopiedBytes) / r.CopyRate
	case r.Ready == r.Total && r.LagBytes == 0:
		r.ETA = 0
	case r.Ready == r.Total && r.ApplyRate > r.WALRate:
		r.ETA = float64(r.LagBytes) / (r.ApplyRate - r.WALRate)
	}
}

func parseLSN(s string) (uint64, error) {
	var hi, lo uint32
	if _, err := fmt.Sscanf(s, "%X/%X", &hi, &lo); err != nil {
		return 0, err
	}
	return uint64(hi)<<32 | uint64(lo), nil
}

// Summary is the one-line state of the migration.
func (r *Report) Summary() string {
	if !r.Exists && r.Copy != nil {
		return r.copySummary()
	}
	if !r.Exists {
		return fmt.Sprintf("subscription %q does not exist on the target: run pgmove create-sub (or migrate)", r.Subscription)
	}
	parts := []string{fmt.Sprintf("%d/%d tables ready", r.Ready, r.Total)}
	if r.Ready < r.Total && r.TotalBytes > 0 {
		parts = append(parts, fmt.Sprintf("copied %s of %s (%.0f%%)", bytes(r.CopiedBytes), bytes(r.TotalBytes), 100*float64(r.CopiedBytes)/float64(r.TotalBytes)))
	}
	if r.CopyRate > 0 && r.Ready < r.Total {
		parts = append(parts, bytes(int64(r.CopyRate))+"/s")
	}
	lag := "lag " + bytes(r.LagBytes)
	if r.LagSeconds >= 0 {
		lag += fmt.Sprintf(" (%s)", seconds(r.LagSeconds))
	}
	parts = append(parts, lag)
	switch {
	case r.ETA > 0:
		parts = append(parts, "ETA "+seconds(r.ETA))
	case r.Ready == r.Total && r.LagBytes > 16<<20 && r.ApplyRate < r.WALRate:
		parts = append(parts, "lag growing: the target applies slower than the source writes")
	}
	s := strings.Join(parts, ", ")
	if len(r.Problems) > 0 {
		s += "; PROBLEM: " + r.Problems[0]
	}
	return s
}

func (r *Report) copySummary() string {
	c := r.Copy
	var parts []string
	switch c.Phase {
	case "copy":
		parts = append(parts, fmt.Sprintf("snapshot copy: %d/%d tables copied", c.TablesCopied, c.Tables))
		if c.TotalBytes > 0 {
			parts = append(parts, fmt.Sprintf("%s of %s (%.0f%%)", bytes(c.Bytes), bytes(c.TotalBytes), 100*float64(c.Bytes)/float64(c.TotalBytes)))
		}
		if r.CopyRate > 0 {
			parts = append(parts, bytes(int64(r.CopyRate))+"/s")
		}
		if r.ETA > 0 {
			parts = append(parts, "ETA "+seconds(r.ETA))
		}
	case "index":
		parts = append(parts, fmt.Sprintf("snapshot copy done (%d tables, %s); building indexes and constraints: %d/%d", c.Tables, bytes(c.Bytes), c.IndexesDone, c.IndexesTotal))
		if len(c.IndexesActive) > 0 {
			parts = append(parts, "now: "+strings.Join(c.IndexesActive, ", "))
		}
	case "done":
		parts = append(parts, "snapshot copy and indexes done; the subscription is being created")
	default:
		parts = append(parts, "snapshot copy "+c.Phase+": rerun pgmove migrate to start it again from a new slot")
	}
	s := strings.Join(parts, ", ")
	if len(r.Problems) > 0 {
		s += "; PROBLEM: " + r.Problems[0]
	}
	return s
}

// WriteText prints the per-table report and the summary.
func (r *Report) WriteText(w io.Writer) {
	if r.Exists || r.Copy != nil {
		tables := append([]Table{}, r.Tables...)
		sort.SliceStable(tables, func(i, j int) bool { return order(tables[i].State) < order(tables[j].State) })
		fmt.Fprintf(w, "%-40s %-12s %12s %10s %10s\n", "TABLE", "STATE", "ROWS", "COPIED", "SIZE")
		for _, t := range tables {
			fmt.Fprintf(w, "%-40s %-12s %12d %10s %10s\n", t.Name, t.State, t.Rows, bytes(t.Bytes), bytes(t.TotalBytes))
		}
		if r.Exists {
			fmt.Fprintf(w, "\nsource WAL %s, confirmed by the target %s, slot retains %s\n", r.SourceLSN, orDash(r.ConfirmedLSN), bytes(r.RetainedWAL))
		}
		for _, p := range r.Problems {
			fmt.Fprintf(w, "PROBLEM: %s\n", p)
		}
	}
	fmt.Fprintln(w, r.Summary())
}

func order(state string) int {
	return map[string]int{"copying": 0, "waiting": 1, "copied": 2, "catching up": 3, "ready": 4}[state]
}

// WriteJSON prints the report as JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	return enc.Encode(r)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func bytes(n int64) string {
	f := float64(n)
	for _, u := range []string{"B", "kB", "MB", "GB", "TB"} {
		if f < 1024 || u == "TB" {
			if u == "B" {
				return fmt.Sprintf("%d B", n)
			}
			return fmt.Sprintf("%.1f %s", f, u)
		}
		f /= 1024
	}
	return fmt.Sprint(n)
}

func seconds(s float64) string {
	d := time.Duration(s * float64(time.Second))
	switch {
	case d < time.Second:
		return fmt.Sprintf("%.1fs", s)
	case d < time.Hour:
		return d.Round(time.Second).String()
	}
	return d.Round(time.Minute).String()
}

// Fence makes sure every transaction the source committed so far is on disk
// in its WAL, and returns the WAL position after them: the point the target
// must confirm to have applied them all. Sources may commit asynchronously
// (synchronous_commit = off), and pg_current_wal_lsn() then trails the last
// commits, so a tiny synchronous transaction flushes them first.
func Fence(ctx context.Context, src *cluster.Conn) (uint64, error) {
	var lsn string
	err := pgx.BeginFunc(ctx, src.Conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SET LOCAL synchronous_commit = on"); err != nil {
			return err
		}
		// A transaction must write WAL for its commit to be flushed; a
		// transactional logical message does, and subscribers ignore it.
		_, err := tx.Exec(ctx, "SELECT pg_catalog.pg_logical_emit_message(true, 'pgmove', 'fence')")
		return err
	})
	if err == nil {
		err = src.QueryRow(ctx, "SELECT pg_catalog.pg_current_wal_lsn()::text").Scan(&lsn)
	}
	if err != nil {
		return 0, src.Wrap("flush the WAL", err)
	}
	return parseLSN(lsn)
}

// Confirmed reports whether the target confirmed the source's WAL up to lsn.
func (r *Report) Confirmed(lsn uint64) bool { return r.confirmedLSN >= lsn }
