package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pgmove/pgmove/internal/fixture"
	"github.com/pgmove/pgmove/internal/pgserver"
	"github.com/pgmove/pgmove/internal/pgtest"
)

// grantReplicator lets the replication role read every schema of the source.
func grantReplicator(t *testing.T, s *pgserver.Server) {
	t.Helper()
	pgtest.Exec(t, s, "meta", `DO $$
		DECLARE n text;
		BEGIN
			FOR n IN SELECT nspname FROM pg_namespace WHERE nspname !~ '^pg_' AND nspname <> 'information_schema' LOOP
				EXECUTE format('GRANT USAGE ON SCHEMA %I TO replicator', n);
				EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA %I TO replicator', n);
			END LOOP;
		END $$`)
}

// fixtureWriter runs fixture write rounds on the source until stopped.
type fixtureWriter struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	rounds int
	err    error
}

func startFixtureWriter(t *testing.T, s *pgserver.Server) *fixtureWriter {
	t.Helper()
	conn := pgtest.Connect(t, s, "meta")
	ctx, cancel := context.WithCancel(context.Background())
	w := &fixtureWriter{cancel: cancel}
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		for round := 1; ctx.Err() == nil; round++ {
			if err := fixture.Write(ctx, conn, round); err != nil {
				if ctx.Err() == nil {
					w.err = fmt.Errorf("write round %d: %w", round, err)
				}
				return
			}
			w.rounds = round
			time.Sleep(100 * time.Millisecond)
		}
	}()
	return w
}

func (w *fixtureWriter) stop(t *testing.T) {
	t.Helper()
	w.cancel()
	w.wg.Wait()
	if w.err != nil {
		t.Fatal(w.err)
	}
	if w.rounds == 0 {
		t.Fatal("no write round completed during the migration")
	}
	t.Logf("%d fixture write rounds on the source during the migration", w.rounds)
}

// fidelityPairs are the majors TestFidelity migrates between: every source
// major (13 to 18) and every target major at least once, the upgrades people
// run now (16, 17 and 13 to 18, 18 to 18), and a 13 to 15 migration dumped
// with the 18 client. Sources 16+ use the 18 client (newPair).
var fidelityPairs = []struct {
	src, dst int
	client18 bool
}{
	{13, 13, false}, {14, 14, false}, {13, 15, true}, {13, 18, false}, {14, 16, false}, {15, 15, false},
	{15, 17, false}, {16, 17, false}, {16, 18, false}, {17, 18, false}, {18, 18, false},
}

// TestFidelity migrates the fixture — every kind of object replication
// treats specially — from each source major into each newer target, with
// writes to every kind of table during the migration, and checks the
// target against the source independently of pgmove's own compare.
func TestFidelity(t *testing.T) {
	sources := map[int]bool{}
	for _, m := range pgtest.Majors(t, 13, 14, 15, 16, 17, 18) {
		sources[m] = true
	}
	for _, c := range fidelityPairs {
		src, dst := c.src, c.dst
		if !sources[src] {
			continue
		}
		name := fmt.Sprintf("%d-to-%d", src, dst)
		if c.client18 {
			name += "-client-18"
		}
		{
			t.Run(name, func(t *testing.T) {
				p := newPair(t, src, dst)
				if c.client18 {
					// A client newer than both servers writes settings the
					// older target does not know (transaction_timeout, 17+).
					pgtest.UseClient18(t)
				}
				conn := pgtest.Connect(t, p.src, "meta")
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
				defer cancel()
				if err := fixture.Load(ctx, conn, src); err != nil {
					t.Fatal(err)
				}
				grantReplicator(t, p.src)
				w := startFixtureWriter(t, p.src)
				defer w.cancel()
				if src >= 17 {
					// The fixture grants MAINTAIN (17+): carried with the
					// roles and grants.
					p.must("migrate", "--with-roles", "--with-grants")
				} else {
					p.must("migrate")
				}
				time.Sleep(500 * time.Millisecond)
				w.stop(t)

				p.must("progress", "--wait", "--timeout", "2m")
				p.must("copy-seq")
				if r := p.run("compare", "--checksum"); r.code != 0 {
					t.Errorf("compare --checksum: %s", r)
				}
				if r := p.run("compare", "--schema"); r.code != 0 {
					t.Errorf("compare --schema: %s", r)
				}
				// Independently of pgmove: every table's rows, every
				// sequence's next value, large objects, matviews.
				ss, err := fixture.Snapshot(ctx, conn)
				if err != nil {
					t.Fatal(err)
				}
				ds, err := fixture.Snapshot(ctx, pgtest.Connect(t, p.dst, "test"))
				if err != nil {
					t.Fatal(err)
				}
				if diffs := fixture.Differences(ss, ds); len(diffs) > 0 {
					t.Errorf("the target differs from the source:\n%s", strings.Join(diffs, "\n"))
				}
				if src >= 17 {
					for _, rel := range []string{"fixture.products", "fixture.city_stats"} {
						if !pgtest.QueryValue[bool](t, p.dst, "test", `SELECT pg_catalog.has_table_privilege('fixture_maintainer', $1, 'MAINTAIN')`, rel) {
							t.Errorf("GRANT MAINTAIN ON %s TO fixture_maintainer did not arrive on the target", rel)
						}
					}
				}
				if src >= 18 {
					if !pgtest.QueryValue[bool](t, p.dst, "test", `SELECT connoinherit FROM pg_constraint
						WHERE conname = 'pg18_parent_code_not_null' AND contype = 'n'`) {
						t.Error("NOT NULL pg18_parent_code_not_null lost its NO INHERIT on the target")
					}
					if pgtest.QueryValue[bool](t, p.dst, "test", `SELECT attnotnull FROM pg_attribute
						WHERE attrelid = 'fixture.pg18_child'::regclass AND attname = 'code'`) {
						t.Error("fixture.pg18_child.code is NOT NULL on the target: the parent's NO INHERIT constraint was inherited")
					}
				}
				if src >= 18 {
					// PostgreSQL 18's own kinds survive the restore as they are.
					if g := pgtest.QueryValue[string](t, p.dst, "test", `SELECT attgenerated::text FROM pg_attribute
						WHERE attrelid = 'fixture.pg18'::regclass AND attname = 'total'`); g != "v" {
						t.Errorf("fixture.pg18.total on the target: attgenerated %q, want v (virtual)", g)
					}
					if v := pgtest.QueryValue[bool](t, p.dst, "test", `SELECT convalidated FROM pg_constraint
						WHERE conname = 'pg18_note_not_null' AND contype = 'n'`); v {
						t.Error("NOT NULL pg18_note_not_null NOT VALID came out validated on the target")
					}
					if !pgtest.QueryValue[bool](t, p.dst, "test", `SELECT conperiod FROM pg_constraint
						WHERE conrelid = 'fixture.bookings'::regclass AND contype = 'p'`) {
						t.Error("fixture.bookings lost its temporal primary key (WITHOUT OVERLAPS) on the target")
					}
				}
				// The audit trigger fired on the source only: the target's
				// audit rows are the source's, replicated, not doubled.
				p.must("cleanup")
				if left := p.objectsLeft(); len(left) > 0 {
					t.Errorf("cleanup left %v", left)
				}
			})
		}
	}
}

// TestColumnAddedMidMigration: DDL on the source during the migration stops
// the apply; check and progress say so with the fix, and once it is applied
// on the target the migration completes.
func TestColumnAddedMidMigration(t *testing.T) {
	p := newPair(t, 15, 17)
	pgtest.Exec(t, p.src, "meta", `CREATE TABLE orders (id bigserial PRIMARY KEY, item text NOT NULL);
		INSERT INTO orders (item) SELECT 'item ' || g FROM generate_series(1, 100) g;
		GRANT SELECT ON ALL TABLES IN SCHEMA public TO replicator`)
	p.must("migrate")
	pgtest.Exec(t, p.src, "meta", `ALTER TABLE orders ADD COLUMN qty integer NOT NULL DEFAULT 1;
		INSERT INTO orders (item, qty) VALUES ('after the DDL', 5)`)

	r := p.run("progress")
	if !strings.Contains(r.stdout, "schema drift on column public.orders.qty") || !strings.Contains(r.stdout, "ALTER TABLE") {
		t.Fatalf("progress does not name the drift and its fix: %s", r)
	}
	r = p.run("check", "--json")
	if r.code != ExitProblems {
		t.Fatalf("check should block on the drift: %s", r)
	}
	var rep struct {
		Findings []struct {
			Code, Object, Fix string
		}
	}
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatal(err)
	}
	var fix string
	for _, f := range rep.Findings {
		if f.Code == "schema_drift" && f.Object == "public.orders.qty" {
			fix = f.Fix
		}
	}
	if !strings.Contains(fix, "ADD COLUMN") {
		t.Fatalf("check's fix for the drift: %q\n%s", fix, r)
	}
	pgtest.Exec(t, p.dst, "test", fix)
	p.must("progress", "--wait", "--timeout", "2m")
	p.must("copy-seq")
	r = p.must("compare", "--checksum")
	if !strings.Contains(r.stdout, "equal: 1 table(s)") {
		t.Fatalf("compare: %s", r)
	}
	if n := pgtest.QueryValue[int64](t, p.dst, "test", "SELECT qty FROM orders WHERE item = 'after the DDL'"); n != 5 {
		t.Errorf("the row written after the DDL: qty %d", n)
	}
}
