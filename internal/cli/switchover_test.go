package cli

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgmove/pgmove/internal/pgserver"
	"github.com/pgmove/pgmove/internal/pgtest"
)

// appWriter commits rows through pgbouncer, as an application would: one
// INSERT per transaction, every interval, and keeps the ids the server
// acknowledged, the failures, and the longest gap between two commits.
type appWriter struct {
	table  string
	note   string // the rows' note
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	acked  []int64
	failed []string
	maxGap time.Duration
}

func startAppWriter(t *testing.T, url, table string, every time.Duration) *appWriter {
	t.Helper()
	return startAppWriterAt(t, func() string { return url }, table, "w", every)
}

// startAppWriterAt is startAppWriter reading, at every (re)connect, where
// the application is pointed now.
func startAppWriterAt(t *testing.T, url func() string, table, note string, every time.Duration) *appWriter {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w := &appWriter{table: table, note: note, cancel: cancel}
	if _, err := pgx.ParseConfig(url()); err != nil {
		t.Fatal(err)
	}
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		var conn *pgx.Conn
		defer func() {
			if conn != nil {
				conn.Close(context.Background())
			}
		}()
		last := time.Now()
		for ctx.Err() == nil {
			if conn == nil {
				cfg, err := pgx.ParseConfig(url())
				if err == nil {
					cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
					conn, err = pgx.ConnectConfig(ctx, cfg)
				}
				if err != nil {
					w.fail(ctx, err)
					conn = nil
					time.Sleep(every)
					continue
				}
			}
			var id int64
			qctx, qcancel := context.WithTimeout(context.Background(), 30*time.Second)
			err := conn.QueryRow(qctx, "INSERT INTO "+table+" (note) VALUES ($1) RETURNING id", note).Scan(&id)
			qcancel()
			if err != nil {
				w.fail(ctx, err)
				conn.Close(context.Background())
				conn = nil
				continue
			}
			now := time.Now()
			w.mu.Lock()
			w.acked = append(w.acked, id)
			w.maxGap = max(w.maxGap, now.Sub(last))
			w.mu.Unlock()
			last = now
			time.Sleep(every)
		}
	}()
	return w
}

func (w *appWriter) fail(ctx context.Context, err error) {
	if ctx.Err() != nil {
		return
	}
	w.mu.Lock()
	w.failed = append(w.failed, err.Error())
	w.mu.Unlock()
}

// stop ends the appWriter and returns what it saw, resetting its gap.
func (w *appWriter) stop() {
	w.cancel()
	w.wg.Wait()
}

func (w *appWriter) gapSince() time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	g := w.maxGap
	w.maxGap = 0
	return g
}

// missing lists the acknowledged ids a server lacks.
func (w *appWriter) missing(t *testing.T, s *pgserver.Server, db string) []int64 {
	t.Helper()
	w.mu.Lock()
	ids := append([]int64(nil), w.acked...)
	w.mu.Unlock()
	var lost []int64
	for _, row := range pgtest.QueryRows(t, s, db, "SELECT a FROM unnest($1::bigint[]) a WHERE a NOT IN (SELECT id FROM "+w.table+")", ids) {
		lost = append(lost, row[0].(int64))
	}
	return lost
}

// waitEqual waits until the rows of table the primary holds now are all on
// the other side too (the writers go on writing).
func waitEqual(t *testing.T, p *pair, table string, primaryIsSource bool) {
	t.Helper()
	from, fromDB, to, toDB := p.dst, "test", p.src, "meta"
	if primaryIsSource {
		from, fromDB, to, toDB = p.src, "meta", p.dst, "test"
	}
	top := pgtest.QueryValue[int64](t, from, fromDB, "SELECT coalesce(max(id), 0) FROM "+table)
	q := fmt.Sprintf("SELECT count(*) FROM %s WHERE id <= %d", table, top)
	want := pgtest.QueryValue[int64](t, from, fromDB, q)
	deadline := time.Now().Add(60 * time.Second)
	for {
		got := pgtest.QueryValue[int64](t, to, toDB, q)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			// Which rows differ, for the diagnosis.
			ids := func(s *pgserver.Server, db string) map[int64]string {
				m := map[int64]string{}
				for _, row := range pgtest.QueryRows(t, s, db, fmt.Sprintf("SELECT id, at::text FROM %s WHERE id <= %d", table, top)) {
					m[row[0].(int64)] = row[1].(string)
				}
				return m
			}
			a, b := ids(from, fromDB), ids(to, toDB)
			var only []string
			for id, at := range b {
				if _, ok := a[id]; !ok && len(only) < 10 {
					only = append(only, fmt.Sprintf("%d (%s) only on %s", id, at, toDB))
				}
			}
			for id, at := range a {
				if _, ok := b[id]; !ok && len(only) < 20 {
					only = append(only, fmt.Sprintf("%d (%s) only on %s", id, at, fromDB))
				}
			}
			t.Fatalf("%s: %d of the %d rows up to id %d reached the other side in 60s; %s", table, got, want, top, strings.Join(only, ", "))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestSwitchoverPgBouncer moves an application writing through pgbouncer
// from the source to the target and back, under load, and abandons a switch
// whose target cannot catch up: every acknowledged commit is on both sides
// at the end, none failed, and the sequences hand out no key twice.
func TestSwitchoverPgBouncer(t *testing.T) {
	for _, c := range []struct{ src, dst int }{{16, 18}, {13, 17}} {
		t.Run(fmt.Sprintf("%d-to-%d", c.src, c.dst), func(t *testing.T) {
			p := newPair(t, c.src, c.dst)
			pgtest.Exec(t, p.src, "meta", `CREATE TABLE probe (id bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT now(), note text);
				CREATE TABLE load (id bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT now(), note text);
				GRANT SELECT ON ALL TABLES IN SCHEMA public TO replicator`)
			p.must("migrate")
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			b, err := pgserver.StartPgBouncer(ctx, pgserver.BouncerOptions{Name: strings.ReplaceAll(t.Name(), "/", "-"),
				Databases: map[string]string{"meta": fmt.Sprintf("host=127.0.0.1 port=%d dbname=meta", p.src.Port)},
				User:      "postgres", Password: pgtest.Password()})
			if err != nil {
				t.Fatal(err)
			}
			defer func() {
				if t.Failed() {
					t.Logf("pgbouncer log:\n%s", b.LogTail(30))
				}
				b.Stop()
			}()
			app := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/meta?sslmode=disable", b.Port)
			probe := startAppWriter(t, app, "probe", 10*time.Millisecond)
			var load []*appWriter
			for range 4 {
				load = append(load, startAppWriter(t, app, "load", time.Millisecond))
			}
			writers := append([]*appWriter{probe}, load...)
			defer func() {
				for _, w := range writers {
					w.stop()
				}
			}()
			flags := []string{"--pgbouncer", b.AdminURL("postgres"), "--pgbouncer-ini", b.INI}
			time.Sleep(time.Second)

			r := p.must(append([]string{"switchover"}, flags...)...)
			t.Logf("switchover: %s", strings.TrimSpace(r.stdout))
			time.Sleep(time.Second)
			t.Logf("switchover %d-to-%d: the probe's longest gap between commits %s", c.src, c.dst, probe.gapSince())
			if got := pgtest.QueryValue[int64](t, p.dst, "test", "SELECT count(*) FROM probe WHERE at > now() - interval '500 ms'"); got == 0 {
				t.Fatal("the application's writes do not reach the target after the switchover")
			}
			for _, table := range []string{"probe", "load"} {
				waitEqual(t, p, table, false) // the reverse replication brings the target's writes back
			}

			r = p.must(append([]string{"rollback"}, flags...)...)
			t.Logf("rollback: %s", strings.TrimSpace(r.stdout))
			time.Sleep(time.Second)
			t.Logf("rollback %d-to-%d: the probe's longest gap between commits %s", c.src, c.dst, probe.gapSince())
			if got := pgtest.QueryValue[int64](t, p.src, "meta", "SELECT count(*) FROM probe WHERE at > now() - interval '500 ms'"); got == 0 {
				t.Fatal("the application's writes do not reach the source after the rollback")
			}
			// Abandoned: the target's apply waits on a lock, so it cannot
			// reach the fence within --max-pause; the fence is lifted.
			// (The apply already commits synchronously, as the switch wants
			// it: an ALTER SUBSCRIPTION would wait behind the stuck apply.)
			pgtest.Exec(t, p.dst, "test", "ALTER SUBSCRIPTION sub_pg_meta_meta SET (synchronous_commit = on)")
			time.Sleep(2 * time.Second)
			lock := pgtest.Connect(t, p.dst, "test")
			if _, err := lock.Exec(ctx, "BEGIN; LOCK TABLE probe IN SHARE MODE"); err != nil {
				t.Fatal(err)
			}
			time.Sleep(200 * time.Millisecond)
			r = p.run(append([]string{"switchover", "--max-pause", "500ms", "--max-lag", "1GB"}, flags...)...)
			if r.code != 1 || !strings.Contains(r.stderr, "abandoned, nothing switched") || !strings.Contains(r.stdout, "the fence lifted") {
				t.Fatalf("a switchover whose target cannot catch up: %s", r)
			}
			if _, err := lock.Exec(ctx, "ROLLBACK"); err != nil {
				t.Fatal(err)
			}
			probe.gapSince()
			time.Sleep(500 * time.Millisecond)
			before := len(probe.acked)
			time.Sleep(300 * time.Millisecond)
			if len(probe.acked) == before {
				t.Fatal("the application does not write after the abandoned switch")
			}

			for _, w := range writers {
				w.stop()
			}
			for _, table := range []string{"probe", "load"} {
				waitEqual(t, p, table, true) // the forward replication runs again
			}
			for _, w := range writers {
				if len(w.failed) > 0 {
					t.Errorf("%s: %d failed commit(s), first: %s", w.table, len(w.failed), w.failed[0])
				}
				for _, s := range []struct {
					srv *pgserver.Server
					db  string
				}{{p.src, "meta"}, {p.dst, "test"}} {
					if lost := w.missing(t, s.srv, s.db); len(lost) > 0 {
						t.Errorf("%s: %d acknowledged row(s) missing on %s (first %d)", w.table, len(lost), s.db, lost[0])
					}
				}
			}
			t.Logf("%d probe and %d load commits acknowledged", len(probe.acked), func() (n int) {
				for _, w := range load {
					n += len(w.acked)
				}
				return n
			}())
		})
	}
}
