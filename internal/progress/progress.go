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
	"github.com/pgmove/pgmove/internal/check"
	"github.com/pgmove/pgmove/internal/cluster"
	"github.com/pgmove/pgmove/internal/config"
	"github.com/pgmove/pgmove/internal/copy"
	"github.com/pgmove/pgmove/internal/replication"
	"github.com/pgmove/pgmove/internal/schema"
)

// Table is one table's state in the migration.
type Table struct {
	Name string `json:"table"`
	// State is waiting, copying, copied, catching up or ready; or, for a
	// table of the selection the migration does not carry, not published,
	// not subscribed or not on target.
	State string `json:"state"`
	// Rows is null when pgmove cannot know it. RowsKind says what it is:
	// "copied" (counted by pgmove's snapshot copy, committed chunks only
	// while it runs), "copying" (the target's live COPY counter) or
	// "estimate" (the target planner's reltuples).
	Rows       *int64 `json:"rows"`
	RowsKind   string `json:"rows_kind,omitempty"`
	Bytes      int64  `json:"bytes"`       // bytes copied so far
	TotalBytes *int64 `json:"total_bytes"` // the table's size on the source; null while it is unreachable
}

// Side says whether pgmove reached one server, and why not.
type Side struct {
	Reachable bool   `json:"reachable"`
	Error     string `json:"error,omitempty"`
}

// Report is one look at a migration's progress. The text (WriteText,
// Summary) and the JSON (WriteJSON) both render this struct and nothing
// else, so they cannot disagree. A figure pgmove cannot know is nil: null in
// JSON, "unknown" in the text; never zero.
type Report struct {
	Time         time.Time `json:"time"`
	Subscription string    `json:"subscription"`
	Source       Side      `json:"source"`
	Target       Side      `json:"target"`
	Exists       *bool     `json:"exists"` // null while the target is unreachable
	Enabled      *bool     `json:"enabled"`
	Tables       []Table   `json:"tables"`
	// Ready counts the selection's tables the subscription has in state
	// ready, Total the selection (the source's tables include/exclude
	// select; the subscription's tables while the source is unreachable).
	Ready *int `json:"tables_ready"`
	Total int  `json:"tables_total"`

	CopiedBytes int64 `json:"copied_bytes"`
	TotalBytes  int64 `json:"total_bytes"`

	SourceLSN    string   `json:"source_lsn,omitempty"`
	ConfirmedLSN string   `json:"confirmed_lsn,omitempty"`
	LagBytes     *int64   `json:"lag_bytes"`      // source's current WAL position minus what the target confirmed
	LagSeconds   *float64 `json:"lag_seconds"`    // how long ago the source was where the target confirmed
	RetainedWAL  *int64   `json:"retained_bytes"` // WAL the slot keeps on the source; null once lost
	SlotActive   *bool    `json:"slot_active"`
	// The source's disk: the slot's wal_status (reserved, extended,
	// unreserved, lost; 13+), the WAL the source may still write before
	// the slot is lost (null without a limit, or before 13), the limit
	// (max_slot_wal_keep_size in bytes, -1 none; null before 13), and the
	// retained WAL past which a warning is given.
	WALStatus    *string `json:"wal_status"`
	SafeWAL      *int64  `json:"safe_wal_bytes"`
	WALKeepLimit *int64  `json:"max_slot_wal_keep_bytes"`
	MaxRetained  *int64  `json:"max_retained_bytes"`
	// SlotLost: wal_status lost or unreserved; the subscription cannot
	// catch up (a problem, with the way out).
	SlotLost bool     `json:"slot_lost"`
	Warnings []string `json:"warnings,omitempty"` // not blocking: the slot's retained WAL past --max-retained

	CopyRate  float64  `json:"copy_bytes_per_second"`
	WALRate   float64  `json:"wal_bytes_per_second"`   // source WAL generation
	ApplyRate float64  `json:"apply_bytes_per_second"` // target confirmation
	ETA       *float64 `json:"eta_seconds"`
	// CaughtUp is the state in which a switchover can begin: every table of
	// the selection replicating, the lag at most max_lag, no problem. Null
	// while a side is unreachable.
	CaughtUp *bool `json:"caught_up"`

	// Copy is the snapshot copy's progress while it runs (before the
	// subscription exists), read from the copy's status file; while the
	// target is unreachable, its last known figures (see Copy.Updated).
	Copy *CopyProgress `json:"copy,omitempty"`

	Workers     *int   `json:"workers"`
	ApplyErrors *int64 `json:"apply_error_count"` // since the subscription was made (PostgreSQL 15+)
	SyncErrors  *int64 `json:"sync_error_count"`
	// ApplyDown: the subscription is enabled but no worker applies.
	ApplyDown bool     `json:"apply_down"`
	Problems  []string `json:"problems,omitempty"`

	sourceLSN, confirmedLSN uint64
	maxLag                  int64
}

// CopyProgress is the snapshot copy seen from another process.
type CopyProgress struct {
	Phase         string    `json:"phase"` // copy, index, done, failed
	TablesCopied  int       `json:"tables_copied"`
	Tables        int       `json:"tables"`
	Bytes         int64     `json:"bytes"`
	TotalBytes    int64     `json:"total_bytes"`
	IndexesDone   int       `json:"indexes_done"`
	IndexesTotal  int       `json:"indexes_total"`
	IndexesActive []string  `json:"indexes_running,omitempty"`
	Updated       time.Time `json:"updated"`
	Stale         bool      `json:"stale"` // the copying process stopped updating it
}

// Subscribed reports whether the subscription is known to exist.
func (r *Report) Subscribed() bool { return r.Exists != nil && *r.Exists }

// Blocking reports a condition that must end before a switchover: a side
// unreachable or a problem found. progress and status exit non-zero on it.
func (r *Report) Blocking() bool {
	return !r.Source.Reachable || !r.Target.Reachable || len(r.Problems) > 0
}

// Done reports whether the migration reached the state in which a
// switchover can begin: every table replicating and the lag below maxLag.
func (r *Report) Done(maxLag int64) bool {
	return r.Source.Reachable && r.Target.Reachable && r.Subscribed() && r.Enabled != nil && *r.Enabled &&
		r.Total > 0 && r.Ready != nil && *r.Ready == r.Total && r.LagBytes != nil && *r.LagBytes <= maxLag && len(r.Problems) == 0
}

// Sampler takes successive looks at a migration and derives rates, ETA and
// lag in seconds from their differences. Src or Dst is nil when that side
// could not be reached; SrcErr and DstErr then say why.
type Sampler struct {
	M              *config.Migration
	Src, Dst       *cluster.Conn
	SrcErr, DstErr error
	// DriftAfter delays the first schema comparison, for callers that
	// sample often and expect to finish quickly (a wait for the catch-up).
	DriftAfter time.Duration
	// MaxRetained is the slot's retained WAL past which a warning is
	// given; 0 is RetainedThreshold's default.
	MaxRetained int64

	started   time.Time
	prev      *Report
	history   []lsnAt // source WAL positions over time, to time the lag
	driftAt   time.Time
	drift     []string
	stalls    []string // the drift that stops the apply
	srcSnap   *catalog.Snapshot
	selection []*catalog.Table
	srcSizes  map[[2]string]int64
	sizesAt   time.Time
}

type lsnAt struct {
	t   time.Time
	lsn uint64
}

func ptr[T any](v T) *T { return &v }

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

// Sample takes one look.
func (s *Sampler) Sample(ctx context.Context) (*Report, error) {
	r := &Report{Time: time.Now(), Subscription: s.M.SubName, Source: side(s.Src, s.SrcErr, config.Source), Target: side(s.Dst, s.DstErr, config.Target), maxLag: s.M.MaxLag}
	if !r.Source.Reachable {
		r.Problems = append(r.Problems, "source unreachable: "+r.Source.Error+"; lag, ETA and readiness unknown")
	}
	if !r.Target.Reachable {
		r.Problems = append(r.Problems, "target unreachable: "+r.Target.Error+"; tables ready, lag, ETA and readiness unknown")
	}
	if s.Src != nil && (s.srcSizes == nil || time.Since(s.sizesAt) > time.Minute) {
		snap, err := catalog.Tables(ctx, s.Src)
		if err != nil {
			return nil, err
		}
		s.srcSnap = snap
		s.selection = snap.Published(s.Src.VersionNum, s.M.Include, s.M.Exclude)
		s.srcSizes = map[[2]string]int64{}
		for _, t := range snap.Tables {
			s.srcSizes[[2]string{t.Schema, t.Name}] = t.Bytes
		}
		s.sizesAt = time.Now()
	}
	var subOID uint32
	if s.Dst != nil {
		var err error
		if subOID, err = s.target(ctx, r); err != nil {
			return nil, err
		}
	}
	if !r.Subscribed() {
		if err := s.copyStatus(r); err != nil {
			return nil, err
		}
	}
	if r.Subscribed() && s.Src != nil {
		if err := s.coverage(ctx, r, subOID); err != nil {
			return nil, err
		}
		if err := s.schemaDrift(ctx, r); err != nil {
			return nil, err
		}
		if r.ApplyDown {
			if err := s.whyDown(ctx, r); err != nil {
				return nil, err
			}
		}
	}
	if s.Src != nil {
		if err := s.source(ctx, r); err != nil {
			return nil, err
		}
	}
	s.derive(r)
	s.prev = r
	return r, nil
}

func side(c *cluster.Conn, err error, name config.Side) Side {
	if c != nil {
		return Side{Reachable: true}
	}
	if err == nil {
		err = fmt.Errorf("not connected")
	}
	return Side{Error: strings.TrimPrefix(err.Error(), string(name)+": ")}
}

var stateNames = map[string]string{"i": "waiting", "d": "copying", "f": "copied", "s": "catching up", "r": "ready"}

func (s *Sampler) target(ctx context.Context, r *Report) (uint32, error) {
	var oid int64
	var enabled bool
	err := s.Dst.QueryRow(ctx, `SELECT oid::int8, subenabled FROM pg_catalog.pg_subscription
		WHERE subname = $1 AND subdbid = (SELECT oid FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database())`,
		s.M.SubName).Scan(&oid, &enabled)
	if errors.Is(err, pgx.ErrNoRows) {
		r.Exists = ptr(false)
		return 0, nil
	}
	if err != nil {
		return 0, s.Dst.Wrap("read subscription", err)
	}
	r.Exists, r.Enabled = ptr(true), ptr(enabled)

	// Live COPY counters exist from PostgreSQL 14.
	copying := map[int64][2]int64{}
	if s.Dst.VersionNum >= 140000 {
		rows, err := s.Dst.Query(ctx, `SELECT relid::int8, bytes_processed, tuples_processed FROM pg_catalog.pg_stat_progress_copy
			WHERE datname = pg_catalog.current_database()`)
		if err != nil {
			return 0, s.Dst.Wrap("read copy progress", err)
		}
		for rows.Next() {
			var rel, b, t int64
			if err := rows.Scan(&rel, &b, &t); err != nil {
				rows.Close()
				return 0, s.Dst.Wrap("read copy progress", err)
			}
			copying[rel] = [2]int64{b, t}
		}
		if err := rows.Err(); err != nil {
			return 0, s.Dst.Wrap("read copy progress", err)
		}
	}
	// Rows the snapshot copy counted, when it ran: exact, where the
	// planner's estimate of a table never analysed is 0 or -1.
	copied := map[string]int64{}
	if st, err := copy.ReadStatus(s.M.ContextDir); err == nil && st != nil {
		for _, t := range st.Tables {
			if t.State == "copied" {
				copied[t.Name] = t.Rows
			}
		}
	}
	rows, err := s.Dst.Query(ctx, `SELECT c.oid::int8, n.nspname, c.relname, sr.srsubstate::text,
			c.reltuples::int8, c.relpages::int8,
			CASE WHEN c.relkind = 'p' THEN COALESCE((SELECT sum(pg_catalog.pg_table_size(t.relid))::int8
			     FROM pg_catalog.pg_partition_tree(c.oid) t WHERE t.isleaf), 0)
			     ELSE pg_catalog.pg_table_size(c.oid) END
		FROM pg_catalog.pg_subscription_rel sr
		JOIN pg_catalog.pg_class c ON c.oid = sr.srrelid
		JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
		WHERE sr.srsubid = $1 ORDER BY n.nspname, c.relname`, oid)
	if err != nil {
		return 0, s.Dst.Wrap("read table states", err)
	}
	defer rows.Close()
	selected := map[[2]string]bool{}
	for _, t := range s.selection {
		selected[[2]string{t.Schema, t.Name}] = true
	}
	ready := 0
	for rows.Next() {
		var rel, tuples, pages, size int64
		var schema, name, state string
		if err := rows.Scan(&rel, &schema, &name, &state, &tuples, &pages, &size); err != nil {
			return 0, s.Dst.Wrap("read table states", err)
		}
		t := Table{Name: catalog.QuoteName(schema) + "." + catalog.QuoteName(name), State: stateNames[state]}
		if s.Src != nil {
			t.TotalBytes = ptr(s.srcSizes[[2]string{schema, name}])
		}
		switch state {
		case "i":
			t.Rows = ptr(int64(0))
		case "d":
			if p, ok := copying[rel]; ok {
				t.Bytes, t.Rows, t.RowsKind = p[0], ptr(p[1]), "copying"
			}
		default:
			t.Bytes = max(deref(t.TotalBytes), size)
			switch n, ok := copied[t.Name]; {
			case ok:
				t.Rows, t.RowsKind = ptr(n), "copied"
			// reltuples is -1 for a table never analysed from 14; before,
			// 0 with no page counted means the same.
			case tuples > 0 || (tuples == 0 && (pages > 0 || s.Dst.VersionNum >= 140000)):
				t.Rows, t.RowsKind = ptr(tuples), "estimate"
			}
		}
		if state == "r" && (s.Src == nil || selected[[2]string{schema, name}]) {
			ready++
		}
		r.Tables = append(r.Tables, t)
	}
	if err := rows.Err(); err != nil {
		return 0, s.Dst.Wrap("read table states", err)
	}
	r.Ready, r.Total = ptr(ready), len(r.Tables)
	if s.Src != nil {
		r.Total = len(s.selection)
	}

	a, err := replication.Apply(ctx, s.Dst, uint32(oid))
	if err != nil {
		return 0, err
	}
	r.Workers, r.ApplyErrors, r.SyncErrors = ptr(a.Workers), a.ApplyErrors, a.SyncErrors
	switch {
	case !a.Enabled:
		r.Problems = append(r.Problems, "subscription is disabled: nothing is applied; pgmove create-sub enables it")
	case a.Down():
		r.ApplyDown = true
	case s.prev != nil && s.prev.ApplyErrors != nil && a.Errors() > s.prev.errors():
		// The counters only grow: a failure since the last look.
		r.ApplyDown = true
	}
	return uint32(oid), nil
}

func (r *Report) errors() int64 {
	if r.ApplyErrors == nil || r.SyncErrors == nil {
		return -1
	}
	return *r.ApplyErrors + *r.SyncErrors
}

// coverage finds the tables of the selection the migration does not carry.
func (s *Sampler) coverage(ctx context.Context, r *Report, subOID uint32) error {
	gaps, err := catalog.Coverage(ctx, s.Src, s.Dst, s.selection, s.M.PubName, subOID)
	if err != nil {
		return err
	}
	for _, g := range gaps {
		var in bool
		for _, t := range r.Tables {
			in = in || t.Name == g.Table.String()
		}
		if !in {
			r.Tables = append(r.Tables, Table{Name: g.Table.String(), State: g.State(), TotalBytes: ptr(s.srcSizes[[2]string{g.Table.Schema, g.Table.Name}])})
		}
		r.Problems = append(r.Problems, g.Problem())
	}
	return nil
}

// whyDown says why the apply is down, from what the servers tell: the
// error counters, the schema drift that stops the apply (already among the
// problems), REPLICA IDENTITY FULL tables with a column without equality.
func (s *Sampler) whyDown(ctx context.Context, r *Report) error {
	var causes []string
	if s.srcSnap != nil {
		full, err := check.FullWithoutEquality(ctx, s.Src, s.srcSnap, s.selection)
		if err != nil {
			return err
		}
		causes = append(causes, full...)
	}
	msg := "the apply is down (subscription enabled, no worker applying"
	if r.ApplyErrors != nil {
		msg += fmt.Sprintf("; %d apply and %d table-sync failure(s) counted", *r.ApplyErrors, *r.SyncErrors)
	}
	msg += "): nothing is applied and the lag grows"
	logged := replication.LastApplyError(ctx, s.Dst)
	if logged != "" {
		msg += "; the target's log says: " + logged
	}
	switch {
	case len(s.stalls) > 0:
		msg += "; cause: " + s.stalls[0]
	case len(causes) > 0:
		msg += "; cause: " + causes[0]
	case logged == "":
		msg += "; no cause pgmove can see (no schema drift that stops it): the target's log names the error (or max_logical_replication_workers is exhausted)"
	}
	r.Problems = append([]string{msg}, r.Problems...)
	r.Problems = append(r.Problems, causes...)
	return nil
}

func (s *Sampler) source(ctx context.Context, r *Report) error {
	var cur, conf string
	var active bool
	var retained *int64 // restart_lsn is null once the slot is lost: unknown, not 0
	err := s.Src.QueryRow(ctx, `SELECT pg_catalog.pg_current_wal_lsn()::text, COALESCE(confirmed_flush_lsn::text, ''), active,
			pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), restart_lsn)::int8
		FROM pg_catalog.pg_replication_slots WHERE slot_name = $1`, s.M.SlotName).Scan(&cur, &conf, &active, &retained)
	if errors.Is(err, pgx.ErrNoRows) {
		if err := s.Src.QueryRow(ctx, "SELECT pg_catalog.pg_current_wal_lsn()::text").Scan(&cur); err != nil {
			return s.Src.Wrap("read WAL position", err)
		}
		r.SourceLSN = cur
		if r.Subscribed() {
			r.Problems = append(r.Problems, fmt.Sprintf("replication slot %q is missing on the source: the subscription cannot stream; recreate the migration (pgmove cleanup, then migrate)", s.M.SlotName))
		}
		return nil
	}
	if err != nil {
		return s.Src.Wrap("read replication slot", err)
	}
	r.SourceLSN, r.ConfirmedLSN, r.SlotActive, r.RetainedWAL = cur, conf, ptr(active), retained
	if err := s.disk(ctx, r); err != nil {
		return err
	}
	curN, _ := parseLSN(cur)
	confN, _ := parseLSN(conf)
	r.sourceLSN, r.confirmedLSN = curN, confN
	if !r.Subscribed() || !r.Target.Reachable || confN == 0 {
		return nil // nothing confirmed yet: no lag to speak of
	}
	lag := int64(0)
	if curN > confN {
		lag = int64(curN - confN)
	}
	r.LagBytes = ptr(lag)
	var replayLag *float64
	err = s.Src.QueryRow(ctx, `SELECT extract(epoch FROM replay_lag)::float8 FROM pg_catalog.pg_stat_replication
		WHERE application_name = $1 ORDER BY backend_start DESC LIMIT 1`, s.M.SubName).Scan(&replayLag)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return s.Src.Wrap("read replication lag", err)
	}
	switch {
	case lag == 0:
		r.LagSeconds = ptr(0.0)
	case replayLag != nil:
		r.LagSeconds = replayLag
	}
	return nil
}

// schemaDrift names the most common cause of a stalled apply: DDL run on
// the source (a column the target lacks or has otherwise, an enum label it
// lacks), which replication does not carry. Only differences that stop the
// apply are problems; the others (json on the source, jsonb on the target)
// are for compare --schema and check to show. Tables the target lacks are
// the coverage's. Comparing schemas costs a few queries, so it runs at most
// every 15 s.
func (s *Sampler) schemaDrift(ctx context.Context, r *Report) error {
	if s.started.IsZero() {
		s.started = time.Now()
	}
	if time.Since(s.started) >= s.DriftAfter && time.Since(s.driftAt) > 15*time.Second {
		ds, err := schema.Diff(ctx, s.Src, s.Dst)
		if err != nil {
			return err
		}
		s.drift, s.stalls, s.driftAt = nil, nil, time.Now()
		for _, d := range ds {
			if d.Warning || d.ColumnOrder || d.Stops == "" { // column order: replication maps by name
				continue
			}
			p := fmt.Sprintf("schema drift on %s %s: %s", d.Kind, d.Object, d.Stops)
			if d.Fix != "" {
				p += "; fix on the target: " + strings.Join(strings.Fields(d.Fix), " ")
			} else {
				p += "; fix: make the target match the source by hand (pgmove compare --schema shows both)"
			}
			s.drift = append(s.drift, p)
			s.stalls = append(s.stalls, p)
		}
	}
	r.Problems = append(r.Problems, s.drift...)
	return nil
}

// copyStatus reads the snapshot copy's status file, when a copy runs or
// ran without reaching the subscription, or (target unreachable) for the
// last known figures.
func (s *Sampler) copyStatus(r *Report) error {
	st, err := copy.ReadStatus(s.M.ContextDir)
	if err != nil {
		return err
	}
	if st == nil {
		if r.Exists != nil { // the target says there is no subscription
			r.Problems = append(r.Problems, fmt.Sprintf("subscription %q does not exist on the target and no snapshot copy runs: run pgmove create-sub (or migrate)", s.M.SubName))
		}
		return nil
	}
	cp := &CopyProgress{Phase: st.Phase, Tables: len(st.Tables), IndexesDone: st.Indexes.Done,
		IndexesTotal: st.Indexes.Total, IndexesActive: st.Indexes.Running, Updated: st.Updated, Stale: time.Since(st.Updated) > 10*time.Second}
	for _, t := range st.Tables {
		cp.Bytes += min(t.Bytes, max(t.TotalBytes, t.Bytes))
		cp.TotalBytes += max(t.TotalBytes, t.Bytes)
		if t.State == "copied" {
			cp.TablesCopied++
		}
		r.Tables = append(r.Tables, Table{Name: t.Name, State: t.State, Rows: ptr(t.Rows), RowsKind: "copied", Bytes: t.Bytes, TotalBytes: ptr(t.TotalBytes)})
	}
	r.Copy = cp
	r.CopiedBytes, r.TotalBytes = cp.Bytes, cp.TotalBytes
	if r.Exists == nil {
		return nil // the target is unreachable: these are the last known figures
	}
	if cp.Stale {
		if cp.Phase != "done" {
			r.Problems = append(r.Problems, fmt.Sprintf("the snapshot copy (pid %d) stopped updating its progress at %s: if it was interrupted, rerun pgmove migrate (it restarts the copy from a new slot)", st.PID, st.Updated.Format(time.TimeOnly)))
		} else {
			r.Problems = append(r.Problems, fmt.Sprintf("subscription %q does not exist on the target, and the snapshot copy that finished at %s did not create it: run pgmove create-sub (or migrate)", s.M.SubName, st.Updated.Format(time.TimeOnly)))
		}
	}
	return nil
}

// derive computes rates, the ETA and lag in seconds from the previous
// sample and the history of the source's WAL position.
func (s *Sampler) derive(r *Report) {
	if r.Copy == nil {
		for _, t := range r.Tables {
			r.CopiedBytes += min(t.Bytes, max(deref(t.TotalBytes), t.Bytes))
			r.TotalBytes += max(deref(t.TotalBytes), t.Bytes)
		}
	}
	if r.Source.Reachable && r.Target.Reachable {
		r.CaughtUp = ptr(r.Done(r.maxLag))
	}
	if r.LagBytes != nil && r.sourceLSN > 0 {
		s.history = append(s.history, lsnAt{r.Time, r.sourceLSN})
		if len(s.history) > 600 {
			s.history = s.history[len(s.history)-600:]
		}
		// The lag in seconds is how long ago the source was where the
		// target has now confirmed.
		if *r.LagBytes > 0 {
			for i := len(s.history) - 1; i >= 0; i-- {
				if s.history[i].lsn <= r.confirmedLSN {
					r.LagSeconds = ptr(r.Time.Sub(s.history[i].t).Seconds())
					break
				}
			}
		}
	}
	if r.CaughtUp != nil && *r.CaughtUp && *r.LagBytes == 0 {
		r.ETA = ptr(0.0)
	}
	p := s.prev
	if p == nil || !r.Target.Reachable {
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
	if r.ETA != nil || r.ApplyDown || !r.Source.Reachable {
		return
	}
	ready := r.Ready != nil && *r.Ready == r.Total
	switch {
	case r.Copy != nil && r.Copy.Phase == "copy" && r.CopyRate > 0:
		r.ETA = ptr(float64(r.TotalBytes-r.CopiedBytes) / r.CopyRate)
	case !ready && r.CopyRate > 0 && r.TotalBytes > r.CopiedBytes:
		r.ETA = ptr(float64(r.TotalBytes-r.CopiedBytes) / r.CopyRate)
	case ready && len(r.Problems) == 0 && r.LagBytes != nil && r.ApplyRate > r.WALRate:
		r.ETA = ptr(float64(*r.LagBytes) / (r.ApplyRate - r.WALRate))
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
	var s string
	switch {
	case !r.Target.Reachable:
		s = "target unreachable: tables ready, lag and ETA unknown"
		if r.Copy != nil {
			s += "; last known (snapshot copy status at " + r.Copy.Updated.Format(time.TimeOnly) + "): " + r.copySummary()
		}
	case !r.Subscribed() && r.Copy != nil:
		s = r.copySummary()
	case !r.Subscribed():
		s = fmt.Sprintf("subscription %q does not exist on the target: run pgmove create-sub (or migrate)", r.Subscription)
	default:
		s = r.replicationSummary()
	}
	if len(r.Problems) > 0 {
		s += "; PROBLEM: " + r.Problems[0]
		if n := len(r.Problems); n > 1 {
			s += fmt.Sprintf(" (and %d more)", n-1)
		}
	} else if len(r.Warnings) > 0 {
		s += "; WARNING: " + r.Warnings[0]
	}
	return s
}

func (r *Report) replicationSummary() string {
	ready := "unknown"
	if r.Ready != nil {
		ready = fmt.Sprint(*r.Ready)
	}
	parts := []string{fmt.Sprintf("%s/%d tables ready", ready, r.Total)}
	if !r.Source.Reachable {
		// The selection is the source's to say: only the subscription's
		// tables are known.
		parts[0] = fmt.Sprintf("%s of the subscription's %d tables ready (the migration's selection is unknown)", ready, r.Total)
	}
	notReady := r.Ready == nil || *r.Ready < r.Total
	if notReady && r.TotalBytes > 0 {
		parts = append(parts, fmt.Sprintf("copied %s of %s (%.0f%%)", bytes(r.CopiedBytes), bytes(r.TotalBytes), 100*float64(r.CopiedBytes)/float64(r.TotalBytes)))
	}
	if r.CopyRate > 0 && notReady {
		parts = append(parts, bytes(int64(r.CopyRate))+"/s")
	}
	lag := "lag unknown"
	if r.LagBytes != nil {
		lag = "lag " + bytes(*r.LagBytes)
		if r.LagSeconds != nil {
			lag += fmt.Sprintf(" (%s)", seconds(*r.LagSeconds))
		}
	}
	parts = append(parts, lag, "ETA "+optSeconds(r.ETA))
	if !notReady && r.LagBytes != nil && *r.LagBytes > 16<<20 && r.ApplyRate < r.WALRate {
		parts = append(parts, "lag growing: the target applies slower than the source writes")
	}
	return strings.Join(parts, ", ")
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
		parts = append(parts, "ETA "+optSeconds(r.ETA))
	case "index":
		parts = append(parts, fmt.Sprintf("snapshot copy done (%d tables, %s); building indexes and constraints: %d/%d", c.Tables, bytes(c.Bytes), c.IndexesDone, c.IndexesTotal))
		if len(c.IndexesActive) > 0 {
			parts = append(parts, "now: "+strings.Join(c.IndexesActive, ", "))
		}
	case "done":
		if r.Target.Reachable {
			parts = append(parts, "snapshot copy and indexes done; the subscription is being created")
		} else { // last known figures: what came after is the target's to say
			parts = append(parts, "snapshot copy and indexes done")
		}
	default:
		parts = append(parts, "snapshot copy "+c.Phase+": rerun pgmove migrate to start it again from a new slot")
	}
	return strings.Join(parts, ", ")
}

// WriteText prints the per-table report and the summary.
func (r *Report) WriteText(w io.Writer) {
	if !r.Source.Reachable {
		fmt.Fprintf(w, "source     unreachable: %s\n", r.Source.Error)
	}
	if !r.Target.Reachable {
		fmt.Fprintf(w, "target     unreachable: %s\n", r.Target.Error)
	}
	if len(r.Tables) > 0 {
		tables := append([]Table{}, r.Tables...)
		sort.SliceStable(tables, func(i, j int) bool { return order(tables[i].State) < order(tables[j].State) })
		if !r.Target.Reachable && r.Copy != nil {
			fmt.Fprintf(w, "last known, from the snapshot copy's status at %s:\n", r.Copy.Updated.Format(time.DateTime))
		}
		fmt.Fprintf(w, "%-40s %-14s %12s %10s %10s\n", "TABLE", "STATE", "ROWS", "COPIED", "SIZE")
		for _, t := range tables {
			size := "unknown" // sizes are the source's
			if t.TotalBytes != nil {
				size = bytes(*t.TotalBytes)
			}
			fmt.Fprintf(w, "%-40s %-14s %12s %10s %10s\n", t.Name, t.State, t.rowsText(), bytes(t.Bytes), size)
		}
		if r.Subscribed() {
			retained := "unknown"
			if r.RetainedWAL != nil {
				retained = bytes(*r.RetainedWAL)
			}
			fmt.Fprintf(w, "\nsource WAL %s, confirmed by the target %s, slot retains %s\n", orUnknown(r.SourceLSN), orUnknown(r.ConfirmedLSN), retained)
		}
	}
	if r.ConfirmedLSN != "" || r.WALStatus != nil {
		fmt.Fprintln(w, r.DiskText())
	}
	for _, p := range r.Problems {
		fmt.Fprintf(w, "PROBLEM: %s\n", p)
	}
	for _, p := range r.Warnings {
		fmt.Fprintf(w, "WARNING: %s\n", p)
	}
	fmt.Fprintln(w, r.Summary())
}

// rowsText is the ROWS column: the figure of the JSON's rows, "~" before
// an estimate, "unknown" for null.
func (t Table) rowsText() string {
	switch {
	case t.Rows == nil:
		return "unknown"
	case t.RowsKind == "estimate":
		return fmt.Sprintf("~%d", *t.Rows)
	}
	return fmt.Sprint(*t.Rows)
}

func optSeconds(s *float64) string {
	if s == nil || *s < 0 {
		return "unknown"
	}
	return seconds(*s)
}

func order(state string) int {
	return map[string]int{"copying": 0, "waiting": 1, "copied": 2, "catching up": 3, "ready": 4}[state]
}

// WriteJSON prints the report as JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	return enc.Encode(r)
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
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
