package cli

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgmove/pgmove/internal/pgserver"
	"github.com/pgmove/pgmove/internal/pgtest"
	"github.com/pgmove/pgmove/internal/phase"
	"github.com/pgmove/pgmove/internal/schema"
)

// pgbenchInit fills the source's meta with pgbench's tables and a table
// with a bigserial key.
func pgbenchInit(t *testing.T, s *pgserver.Server, scale int) {
	t.Helper()
	tool, err := schema.FindTool(context.Background(), "pgbench", 0)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(tool.Path, "-i", "-q", "-s", fmt.Sprint(scale), "-h", s.Host, "-p", fmt.Sprint(s.Port), "-U", s.Superuser, "meta")
	cmd.Env = os.Environ() // PGPASSFILE from the pair
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("pgbench -i: %v\n%s", err, out)
	}
	pgtest.Exec(t, s, "meta", `CREATE TABLE pgbench_events (id bigserial PRIMARY KEY, aid int NOT NULL, delta int NOT NULL, at timestamptz NOT NULL DEFAULT now());
		GRANT SELECT ON ALL TABLES IN SCHEMA public TO replicator`)
}

// writer runs pgbench-like transactions (updates, inserts, deletes) on the
// source until stopped.
type writer struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	n, err atomic.Int64
	first  atomic.Value
}

func startWriter(t *testing.T, s *pgserver.Server, clients int) *writer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w := &writer{cancel: cancel}
	for i := 0; i < clients; i++ {
		conn := pgtest.Connect(t, s, "meta")
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			for ctx.Err() == nil {
				aid, tid, delta := rand.IntN(100000)+1, rand.IntN(10)+1, rand.IntN(2001)-1000
				err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
					b := &pgx.Batch{}
					b.Queue("UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2", delta, aid)
					b.Queue("UPDATE pgbench_tellers SET tbalance = tbalance + $1 WHERE tid = $2", delta, tid)
					b.Queue("UPDATE pgbench_branches SET bbalance = bbalance + $1 WHERE bid = 1", delta)
					b.Queue("INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES ($1, 1, $2, $3, now())", tid, aid, delta)
					b.Queue("INSERT INTO pgbench_events (aid, delta) VALUES ($1, $2)", aid, delta)
					if rand.IntN(5) == 0 {
						b.Queue("DELETE FROM pgbench_events WHERE id = (SELECT min(id) FROM pgbench_events)")
					}
					return tx.SendBatch(ctx, b).Close()
				})
				if err != nil {
					if ctx.Err() == nil {
						w.err.Add(1)
						w.first.CompareAndSwap(nil, err.Error())
					}
					continue
				}
				w.n.Add(1)
				time.Sleep(2 * time.Millisecond)
			}
		}()
	}
	return w
}

func (w *writer) stop(t *testing.T) {
	t.Helper()
	w.cancel()
	w.wg.Wait()
	if n := w.err.Load(); n > 0 {
		t.Fatalf("the writer failed %d transaction(s) on the source, first: %v", n, w.first.Load())
	}
	if w.n.Load() == 0 {
		t.Fatal("the writer committed nothing")
	}
	t.Logf("writer: %d transactions on the source during the migration", w.n.Load())
}

// waitLagZero waits until the target applied everything the source
// committed (pgmove progress --wait).
func (p *pair) waitLagZero() {
	p.t.Helper()
	p.must("progress", "--wait", "--timeout", "2m")
}

// assertSameRows checks, independently of pgmove's compare, that every
// table of the source holds exactly the same rows on the target.
func assertSameRows(t *testing.T, src, dst *pgserver.Server, tables ...string) {
	t.Helper()
	for _, tbl := range tables {
		q := fmt.Sprintf("SELECT count(*)::text || ':' || COALESCE(md5(string_agg(t::text, '|' ORDER BY t::text)), '') FROM %s t", tbl)
		s := pgtest.QueryValue[string](t, src, "meta", q)
		d := pgtest.QueryValue[string](t, dst, "test", q)
		if s != d {
			t.Errorf("table %s differs: source %s, target %s", tbl, s, d)
		}
	}
}

func TestMigratePgbenchUnderLoad(t *testing.T) {
	for _, pairv := range [][2]int{{15, 15}, {13, 17}, {14, 18}} {
		t.Run(fmt.Sprintf("%d-to-%d", pairv[0], pairv[1]), func(t *testing.T) {
			p := newPair(t, pairv[0], pairv[1])
			pgbenchInit(t, p.src, 1)
			w := startWriter(t, p.src, 2)
			defer w.cancel()

			// pgbench_history has no key: check blocks, with the fix.
			r := p.run("check")
			if r.code != ExitProblems || !strings.Contains(r.stdout, `ALTER TABLE "public"."pgbench_history" REPLICA IDENTITY FULL`) {
				t.Fatalf("check should block on pgbench_history with the FULL fix: %s", r)
			}
			p.must("check-replica-identity-solution", "--apply")
			p.must("check")

			r = p.must("--log-format", "json", "migrate")
			if !strings.Contains(r.stdout, "caught up") {
				t.Fatalf("migrate did not report the catch-up: %s", r)
			}
			assertPhases(t, r.stderr, phase.Check, phase.Dump, phase.PreData, phase.Publication, phase.Copy,
				phase.Indexes, phase.PostData, phase.Subscription, phase.CatchUp)
			time.Sleep(time.Second) // writes keep flowing through the subscription
			w.stop(t)
			p.waitLagZero()
			p.must("copy-seq")
			p.must("next-seq")
			r = p.must("compare", "--checksum")
			if !strings.Contains(r.stdout, "equal: 5 table(s) and 1 sequence(s) match") {
				t.Fatalf("compare: %s", r)
			}
			assertSameRows(t, p.src, p.dst, "pgbench_accounts", "pgbench_branches", "pgbench_tellers", "pgbench_history", "pgbench_events")
			srcLast := pgtest.QueryValue[int64](t, p.src, "meta", "SELECT last_value FROM pgbench_events_id_seq")
			dstNext := pgtest.QueryValue[int64](t, p.dst, "test", "SELECT nextval('pgbench_events_id_seq')")
			if dstNext <= srcLast {
				t.Errorf("target sequence not ahead: next %d, source last %d", dstNext, srcLast)
			}
			// Reruns change nothing; copy-schema refuses to touch a target
			// holding rows unless forced, and then finds nothing to add.
			for _, step := range [][]string{{"create-pub"}, {"create-sub"}, {"copy-schema", "--force"}} {
				if r := p.must(step...); !strings.Contains(r.stdout, "unchanged") && !strings.Contains(r.stdout, "nothing restored") {
					t.Errorf("rerun of %s changed something: %s", step, r)
				}
			}
			if r := p.run("copy-schema"); r.code != ExitError || !strings.Contains(r.stderr, "already hold rows") {
				t.Errorf("copy-schema over data should refuse: %s", r)
			}
			p.must("cleanup")
			if left := p.objectsLeft(); len(left) > 0 {
				t.Errorf("cleanup left %v", left)
			}
			p.must("cleanup")
		})
	}
}
