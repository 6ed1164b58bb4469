package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgmove/pgmove/internal/pgserver"
	"github.com/pgmove/pgmove/internal/pgtest"
)

// progressJSON is what a script reads of progress --json.
type progressJSON struct {
	Source, Target struct {
		Reachable bool
		Error     string
	}
	Exists      *bool
	Ready       *int     `json:"tables_ready"`
	Total       int      `json:"tables_total"`
	Lag         *int64   `json:"lag_bytes"`
	ETA         *float64 `json:"eta_seconds"`
	CaughtUp    *bool    `json:"caught_up"`
	ApplyDown   bool     `json:"apply_down"`
	ApplyErrors *int64   `json:"apply_error_count"`
	Tables      []struct {
		Table, State string
		Rows         *int64
	}
	Problems []string
}

func (p *pair) progressJSON() (progressJSON, result) {
	p.t.Helper()
	r := p.run("progress", "--json")
	var pj progressJSON
	if err := json.Unmarshal([]byte(r.stdout), &pj); err != nil {
		p.t.Fatalf("progress --json: %v\n%s", err, r)
	}
	return pj, r
}

// checkFindings runs check --json --no-probe and returns its findings.
func (p *pair) checkFindings() ([]struct{ Severity, Code, Object, Message, Fix string }, result) {
	p.t.Helper()
	r := p.run("check", "--json", "--no-probe")
	var rep struct {
		Findings []struct{ Severity, Code, Object, Message, Fix string }
	}
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		p.t.Fatalf("check --json: %v\n%s", err, r)
	}
	return rep.Findings, r
}

func mustContain(t *testing.T, what string, r result, subs ...string) {
	t.Helper()
	for _, s := range subs {
		if !strings.Contains(r.stdout, s) {
			t.Errorf("%s: no %q in its output: %s", what, s, r)
		}
	}
}

// TestSignalsTableCreatedMidMigration: a table created on the source after
// the publication is not migrated; check, progress, status and compare say
// so (exit 3) with the fix that works, and after copy-schema --force,
// create-pub and create-sub its rows are on the target.
func TestSignalsTableCreatedMidMigration(t *testing.T) {
	p := newPair(t, 15, 17)
	pgtest.Exec(t, p.src, "meta", `CREATE TABLE orders (id int PRIMARY KEY, item text);
		INSERT INTO orders SELECT g, 'item ' || g FROM generate_series(1, 50) g`)
	p.must("migrate")
	pgtest.Exec(t, p.src, "meta", `CREATE TABLE late (id int PRIMARY KEY, v text);
		INSERT INTO late SELECT g, 'v' || g FROM generate_series(1, 100) g`)

	r := p.run("progress")
	if r.code != ExitProblems {
		t.Errorf("progress with a table not migrated: exit %d, want 3: %s", r.code, r)
	}
	mustContain(t, "progress", r, "public.late", "neither in the publication nor on the target", "its rows are not migrated", "pgmove copy-schema --force", "pgmove create-pub", "pgmove create-sub", "1/2 tables ready")
	if strings.Contains(r.stdout, "replication stops") || strings.Contains(r.stdout, "2/2 tables ready") {
		t.Errorf("progress: %s", r)
	}
	pj, r := p.progressJSON()
	if r.code != ExitProblems || pj.Total != 2 || pj.Ready == nil || *pj.Ready != 1 || pj.CaughtUp == nil || *pj.CaughtUp {
		t.Errorf("progress --json: %s", r)
	}
	findings, r := p.checkFindings()
	found := false
	for _, f := range findings {
		found = found || (f.Code == "selection" && f.Object == "public.late" && f.Severity == "error" && strings.Contains(f.Fix, "create-pub"))
		if strings.Contains(f.Message, "replication stops") {
			t.Errorf("check claims the apply stops: %+v", f)
		}
	}
	if r.code != ExitProblems || !found {
		t.Errorf("check: %s", r)
	}
	r = p.run("status")
	if r.code != ExitProblems {
		t.Errorf("status: exit %d: %s", r.code, r)
	}
	mustContain(t, "status", r, "PROBLEM    table public.late")
	r = p.run("compare")
	mustContain(t, "compare", r, "public.late  source=100 target=0")

	p.must("copy-schema", "--force")
	r = p.run("progress") // on the target now, still not published
	if r.code != ExitProblems {
		t.Errorf("progress after copy-schema: %s", r)
	}
	p.must("create-pub")
	r = p.run("progress") // published, not in the subscription
	if r.code != ExitProblems || !strings.Contains(r.stdout, "not in the subscription") {
		t.Errorf("progress after create-pub: %s", r)
	}
	p.must("create-sub")
	pgtest.Exec(t, p.src, "meta", `INSERT INTO late VALUES (101, 'after the fix')`)
	p.must("progress", "--wait", "--timeout", "2m")
	if n := pgtest.QueryValue[int64](t, p.dst, "test", "SELECT count(*) FROM late"); n != 101 {
		t.Errorf("target has %d rows of late, want 101", n)
	}
	pj, r = p.progressJSON()
	if r.code != 0 || pj.Ready == nil || *pj.Ready != 2 || pj.Total != 2 || pj.CaughtUp == nil || !*pj.CaughtUp {
		t.Errorf("progress --json after the fix: %s", r)
	}
	// Rows: the snapshot copy's count for orders; for late, synced by
	// PostgreSQL, an estimate or unknown, never 0.
	for _, tb := range pj.Tables {
		switch {
		case tb.Table == "public.orders" && (tb.Rows == nil || *tb.Rows != 50):
			t.Errorf("rows of orders: %v", tb.Rows)
		case tb.Table == "public.late" && tb.Rows != nil && *tb.Rows != 101:
			t.Errorf("rows of late: %d, want 101 or unknown", *tb.Rows)
		}
	}
	if _, r := p.checkFindings(); r.code != 0 {
		t.Errorf("check after the fix: %s", r)
	}
	p.must("status")
	mustContain(t, "compare", p.must("compare"), "equal: 2 table(s)")
}

// waitApplyErrors waits until the target counts more apply failures than n.
func waitApplyErrors(t *testing.T, p *pair, n int64) int64 {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		c := pgtest.QueryValue[int64](t, p.dst, "test", `SELECT COALESCE(sum(apply_error_count), 0)::int8 FROM pg_stat_subscription_stats`)
		if c > n {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("the apply did not fail within 60 s (%d failures)", c)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// TestSignalsApplyStopped: an enum label added on the source and a column
// retyped stop the apply; progress, check and status say why (the enum and
// ALTER TYPE ... ADD VALUE, the column and its ALTER TABLE) and exit 3; once
// fixed the rows arrive. A difference that does not stop the apply (json on
// the source, jsonb on the target) is a warning only.
func TestSignalsApplyStopped(t *testing.T) {
	// The target logs to its collector's files, which pgmove can read, and
	// restarts a failed apply worker after 1 s instead of 5 s.
	p := newSignalsPair(t, 15, 17, false, map[string]string{"logging_collector": "on", "wal_retrieve_retry_interval": "1s"})
	pgtest.Exec(t, p.src, "meta", `CREATE TYPE st AS ENUM ('a', 'b');
		CREATE TABLE items (id int PRIMARY KEY, s st, n int);
		CREATE TABLE docs (id int PRIMARY KEY, d json);
		CREATE TABLE events (id int NOT NULL, payload json);
		ALTER TABLE events REPLICA IDENTITY FULL;
		INSERT INTO events VALUES (1, '{}');
		INSERT INTO items SELECT g, 'a', g FROM generate_series(1, 10) g;
		INSERT INTO docs VALUES (1, '{"a": 1}')`)
	p.must("migrate")

	// Enum label.
	pgtest.Exec(t, p.src, "meta", `ALTER TYPE st ADD VALUE 'c'`)
	pgtest.Exec(t, p.src, "meta", `INSERT INTO items VALUES (11, 'c', 11)`)
	errs := waitApplyErrors(t, p, 0)
	r := p.run("progress")
	if r.code != ExitProblems {
		t.Errorf("progress with the apply stopped on an enum: exit %d: %s", r.code, r)
	}
	mustContain(t, "progress", r, "type public.st", "lacks label(s) 'c'", `ALTER TYPE "public"."st" ADD VALUE 'c'`,
		`the target's log says: invalid input value for enum public.st: "c"`)
	pj, r := p.progressJSON()
	if r.code != ExitProblems || pj.ApplyErrors == nil || *pj.ApplyErrors == 0 || pj.CaughtUp == nil || *pj.CaughtUp {
		t.Errorf("progress --json: %s", r)
	}
	findings, r := p.checkFindings()
	var fix string
	for _, f := range findings {
		if f.Code == "schema_drift" && f.Object == "public.st" && f.Severity == "error" {
			fix = f.Fix
		}
	}
	if r.code != ExitProblems || !strings.Contains(fix, "ADD VALUE 'c'") {
		t.Fatalf("check with the apply stopped on an enum: %s", r)
	}
	r = p.run("status")
	if r.code != ExitProblems || !strings.Contains(r.stdout, "ADD VALUE 'c'") {
		t.Errorf("status: %s", r)
	}
	pgtest.Exec(t, p.dst, "test", fix)
	p.must("progress", "--wait", "--timeout", "2m")
	if s := pgtest.QueryValue[string](t, p.dst, "test", "SELECT s::text FROM items WHERE id = 11"); s != "c" {
		t.Errorf("row 11 on the target: %q", s)
	}

	// Column type.
	errs = pgtest.QueryValue[int64](t, p.dst, "test", `SELECT COALESCE(sum(apply_error_count), 0)::int8 FROM pg_stat_subscription_stats`)
	pgtest.Exec(t, p.src, "meta", `ALTER TABLE items ALTER COLUMN n TYPE bigint; INSERT INTO items VALUES (12, 'b', 5000000000)`)
	waitApplyErrors(t, p, errs)
	r = p.run("progress")
	if r.code != ExitProblems {
		t.Errorf("progress with the apply stopped on a column type: exit %d: %s", r.code, r)
	}
	mustContain(t, "progress", r, "column public.items.n", "integer where the source's is bigint", `ALTER TABLE "public"."items" ALTER COLUMN "n" TYPE bigint`)
	findings, r = p.checkFindings()
	fix = ""
	for _, f := range findings {
		if f.Code == "schema_drift" && f.Object == "public.items.n" && f.Severity == "error" {
			fix = f.Fix
		}
	}
	if r.code != ExitProblems || fix == "" {
		t.Fatalf("check with the apply stopped on a column type: %s", r)
	}
	if r = p.run("status"); r.code != ExitProblems {
		t.Errorf("status: %s", r)
	}
	pgtest.Exec(t, p.dst, "test", fix)
	p.must("progress", "--wait", "--timeout", "2m")
	if n := pgtest.QueryValue[int64](t, p.dst, "test", "SELECT n FROM items WHERE id = 12"); n != 5000000000 {
		t.Errorf("row 12 on the target: n = %d", n)
	}

	// REPLICA IDENTITY FULL with a json column: the first UPDATE stops the apply.
	errs = pgtest.QueryValue[int64](t, p.dst, "test", `SELECT COALESCE(sum(apply_error_count), 0)::int8 FROM pg_stat_subscription_stats`)
	pgtest.Exec(t, p.src, "meta", `UPDATE events SET payload = '{"x": 1}' WHERE id = 1`)
	waitApplyErrors(t, p, errs)
	r = p.run("progress")
	if r.code != ExitProblems {
		t.Errorf("progress with the apply stopped on REPLICA IDENTITY FULL: exit %d: %s", r.code, r)
	}
	mustContain(t, "progress", r, "the apply is down", "table public.events is REPLICA IDENTITY FULL", "payload (json) cannot be compared")
	findings, r = p.checkFindings()
	var down, full bool
	for _, f := range findings {
		down = down || (f.Code == "apply_down" && f.Severity == "error")
		full = full || (f.Code == "replica_identity_full" && f.Object == "public.events" && f.Severity == "error")
	}
	if r.code != ExitProblems || !down || !full {
		t.Errorf("check with the apply stopped on REPLICA IDENTITY FULL: %s", r)
	}
	pgtest.Exec(t, p.dst, "test", `ALTER TABLE events ADD PRIMARY KEY (id)`)
	pgtest.Exec(t, p.src, "meta", `ALTER TABLE events ADD PRIMARY KEY (id)`)
	p.must("progress", "--wait", "--timeout", "2m")
	if s := pgtest.QueryValue[string](t, p.dst, "test", "SELECT payload::text FROM events WHERE id = 1"); s != `{"x": 1}` {
		t.Errorf("events on the target: %s", s)
	}

	// json on the source, jsonb on the target: the apply takes it.
	pgtest.Exec(t, p.dst, "test", `ALTER TABLE docs ALTER COLUMN d TYPE jsonb`)
	pgtest.Exec(t, p.src, "meta", `INSERT INTO docs VALUES (2, '{"b": 2}')`)
	p.must("progress", "--wait", "--timeout", "2m")
	findings, r = p.checkFindings()
	warned := false
	for _, f := range findings {
		if f.Object == "public.docs.d" {
			warned = f.Severity == "warning" && !strings.Contains(f.Message, "stops")
		}
	}
	if r.code != 0 || !warned {
		t.Errorf("check with json on the source, jsonb on the target: %s", r)
	}
	r = p.must("progress")
	if strings.Contains(r.stdout, "drift on column public.docs") {
		t.Errorf("progress reports a drift that does not stop the apply: %s", r)
	}
}

// newSignalsPair is newPair with servers that survive Stop when keep is
// set (so a test can stop a side and start it again), and settings for the
// target.
func newSignalsPair(t *testing.T, srcMajor, dstMajor int, keep bool, dstSettings map[string]string) *pair {
	t.Helper()
	p := &pair{t: t}
	p.src = pgtest.Start(t, srcMajor, func(o *pgserver.Options) { o.Keep = keep })
	p.dst = pgtest.Start(t, dstMajor, func(o *pgserver.Options) { o.Keep, o.Settings = keep, dstSettings })
	if keep {
		t.Cleanup(func() { p.src.Remove(); p.dst.Remove() })
	}
	pgtest.CreateDB(t, p.src, "meta")
	pgtest.CreateDB(t, p.dst, "test")
	pgtest.Exec(t, p.src, "meta", fmt.Sprintf("CREATE ROLE replicator LOGIN REPLICATION BYPASSRLS PASSWORD '%s'", pgtest.Password()))
	pgtest.Exec(t, p.src, "meta", "ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO replicator")
	t.Setenv("PGPASSFILE", pgtest.PassFile(t))
	p.dir = t.TempDir()
	p.config = filepath.Join(p.dir, "migration.yml")
	p.writeConfig()
	return p
}

// TestSignalsSideDown: with the source or the target stopped, progress and
// status name the side that cannot be reached and why, exit 3, and never
// say ready, lag 0 or ETA 0; progress --wait retries until its timeout and
// says so. Without a subscription progress and progress --wait fail at once.
func TestSignalsSideDown(t *testing.T) {
	p := newSignalsPair(t, 15, 17, true, nil)
	pgtest.Exec(t, p.src, "meta", `CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t SELECT generate_series(1, 100)`)
	p.must("migrate")
	p.must("progress")

	for _, down := range []struct {
		side string
		srv  *pgserver.Server
	}{{"source", p.src}, {"target", p.dst}} {
		t.Run(down.side, func(t *testing.T) {
			if err := down.srv.Stop(); err != nil {
				t.Fatal(err)
			}
			defer func() {
				if err := down.srv.Restart(context.Background(), nil); err != nil {
					t.Fatal(err)
				}
			}()
			r := p.run("progress")
			if r.code != ExitProblems {
				t.Errorf("progress: exit %d: %s", r.code, r)
			}
			mustContain(t, "progress", r, down.side+"     unreachable: ", "ETA unknown")
			if down.side == "target" {
				// The copy's status file holds the last figures pgmove saw.
				mustContain(t, "progress", r, "last known, from the snapshot copy's status at ", "public.t ")
			}
			t.Logf("progress with the %s down:\n%s", down.side, r.stdout)
			if strings.Contains(r.stdout, "tables ready, lag 0") || strings.Contains(r.stdout, "1/1 tables ready") || strings.Contains(r.stdout, "ETA 0") ||
				strings.Contains(r.stdout, "max_logical_replication_workers") {
				t.Errorf("progress with the %s down: %s", down.side, r)
			}
			pj, r := p.progressJSON()
			reach := map[string]bool{"source": pj.Source.Reachable, "target": pj.Target.Reachable}
			if r.code != ExitProblems || reach[down.side] || pj.Lag != nil || pj.ETA != nil || pj.CaughtUp != nil {
				t.Errorf("progress --json: %s", r)
			}
			if down.side == "target" && (pj.Exists != nil || pj.Ready != nil) {
				t.Errorf("progress --json with the target down: exists %v, tables_ready %v", pj.Exists, pj.Ready)
			}
			r = p.run("status")
			if r.code != ExitProblems || strings.Contains(r.stdout, "absent") {
				t.Errorf("status: %s", r)
			}
			obj := map[string]string{"source": "publication pub_pg_meta_meta: unknown (source unreachable)", "target": "subscription sub_pg_meta_meta: unknown (target unreachable)"}
			mustContain(t, "status", r, obj[down.side], "phase      unknown ("+down.side+" unreachable)")
			var st struct{ Publication, Subscription *bool }
			r = p.run("status", "--json")
			if err := json.Unmarshal([]byte(r.stdout), &st); err != nil || r.code != ExitProblems ||
				(down.side == "source" && st.Publication != nil) || (down.side == "target" && st.Subscription != nil) {
				t.Errorf("status --json: %v %s", err, r)
			}
			start := time.Now()
			r = p.run("progress", "--wait", "--timeout", "5s")
			if r.code == 0 || time.Since(start) < 4*time.Second || !strings.Contains(r.stderr, down.side) || !strings.Contains(r.stderr, "retrying until the timeout") {
				t.Errorf("progress --wait --timeout 5s with the %s down (%s): %s", down.side, time.Since(start), r)
			}
		})
	}
	p.must("progress", "--wait", "--timeout", "2m")

	// Without a subscription: at once, even with --wait and no timeout.
	p.must("cleanup")
	if r := p.must("status"); !strings.Contains(r.stdout, "phase      finished") || strings.Contains(r.stdout, "PROBLEM") {
		t.Errorf("status after cleanup: %s", r)
	}
	r := p.run("progress")
	if r.code != ExitProblems || !strings.Contains(r.stdout, "does not exist") {
		t.Errorf("progress without a subscription: %s", r)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	r = pgmoveCtx(t, ctx, "-c", p.config, "progress", "--wait")
	if r.code != ExitProblems || time.Since(start) > 20*time.Second {
		t.Errorf("progress --wait without a subscription (%s): %s", time.Since(start), r)
	}
}
