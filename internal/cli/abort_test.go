package cli

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pgmove/pgmove/internal/pgserver"
	"github.com/pgmove/pgmove/internal/pgtest"
	"github.com/pgmove/pgmove/internal/state"
)

// TestAbortAfterMigrate aborts a migration that streams, with the fence of
// a killed switchover held (a database fence, journaled as pgmove does):
// the fence is lifted, nothing of pgmove's is left on either side, the
// target's rows are untouched, status says aborted; a second abort
// changes nothing; --drop-target-data names the tables, refuses without
// confirmation, and with --yes empties them and the ledger.
func TestAbortAfterMigrate(t *testing.T) {
	p := newPair(t, 15, 16)
	pgtest.Exec(t, p.src, "meta", `CREATE TABLE a (id int PRIMARY KEY, v text); INSERT INTO a SELECT g, 'a' FROM generate_series(1, 500) g;
		CREATE TABLE b (id int PRIMARY KEY); INSERT INTO b SELECT generate_series(1, 50);
		GRANT SELECT ON ALL TABLES IN SCHEMA public TO replicator; CREATE ROLE app LOGIN`)
	p.must("migrate")
	pgtest.Exec(t, p.src, "meta", "INSERT INTO a SELECT g, 'streamed' FROM generate_series(501, 600) g")
	p.must("progress", "--wait", "--timeout", "60s")
	pgtest.Exec(t, p.dst, "test", "CREATE TABLE mine (id int); INSERT INTO mine VALUES (1)") // not pgmove's

	// A switchover killed inside its pause, fence held.
	j, err := state.Open(filepath.Join(p.dir, "migration", "pg-meta.meta"))
	if err != nil {
		t.Fatal(err)
	}
	pgtest.Exec(t, p.src, "meta", "ALTER ROLE app NOLOGIN")
	if err := j.Record("switchover", state.Started, "fenced", map[string]string{"stage": "fenced", "fence": "database", "roles": "app"}); err != nil {
		t.Fatal(err)
	}

	r := p.run("abort", "--dry-run")
	if r.code != 0 || !strings.Contains(r.stdout, `DROP SUBSCRIPTION IF EXISTS "sub_pg_meta_meta"`) || !strings.Contains(r.stdout, `DROP PUBLICATION IF EXISTS "pub_pg_meta_meta"`) {
		t.Fatalf("abort --dry-run: %s", r)
	}
	if len(p.objectsLeft()) == 0 {
		t.Fatal("abort --dry-run dropped something")
	}
	r = p.must("abort")
	for _, want := range []string{"held the fence before switching: lifted it", `target: subscription "sub_pg_meta_meta" dropped`,
		`source: replication slot "sub_pg_meta_meta" dropped with it`, `source: publication "pub_pg_meta_meta" dropped`, "the target's tables are left as they are"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("abort does not say %q: %s", want, r)
		}
	}
	if left := p.objectsLeft(); len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}
	if !pgtest.QueryValue[bool](t, p.src, "meta", "SELECT rolcanlogin FROM pg_roles WHERE rolname = 'app'") {
		t.Error("the fence of the killed switchover still holds: role app cannot log in")
	}
	if n := pgtest.QueryValue[int64](t, p.dst, "test", "SELECT count(*) FROM a"); n != 600 {
		t.Errorf("target rows of a: %d, want 600 (untouched)", n)
	}
	r = p.run("status")
	if r.code != 0 || !strings.Contains(r.stdout, "phase      aborted") {
		t.Errorf("status after abort: %s", r)
	}
	r = p.must("abort")
	if !strings.Contains(r.stdout, "aborted: nothing left to drop") {
		t.Errorf("second abort: %s", r)
	}

	r = p.run("abort", "--drop-target-data")
	if r.code != ExitError || !strings.Contains(r.stdout, "--drop-target-data empties these 2 table(s), which the copy ledger proves pgmove loaded: public.a, public.b") ||
		!strings.Contains(r.stderr, "not confirmed: nothing emptied") {
		t.Fatalf("abort --drop-target-data without confirmation: %s", r)
	}
	if n := pgtest.QueryValue[int64](t, p.dst, "test", "SELECT count(*) FROM a"); n != 600 {
		t.Errorf("unconfirmed: target rows of a: %d, want 600", n)
	}
	r = p.must("abort", "--drop-target-data", "--yes", "--json")
	if !strings.Contains(r.stdout, `"tables_emptied": [`) || !strings.Contains(r.stdout, "public.a") {
		t.Errorf("abort --drop-target-data --yes --json: %s", r)
	}
	if n := pgtest.QueryValue[int64](t, p.dst, "test", "SELECT (SELECT count(*) FROM a) + (SELECT count(*) FROM b)"); n != 0 {
		t.Errorf("%d row(s) left in the tables pgmove loaded", n)
	}
	if n := pgtest.QueryValue[int64](t, p.dst, "test", "SELECT count(*) FROM mine"); n != 1 {
		t.Errorf("a table pgmove did not load was touched: %d row(s)", n)
	}
	if pgtest.QueryValue[bool](t, p.dst, "test", "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'pgmove')") {
		t.Error("the copy ledger survived --drop-target-data")
	}
	if n := pgtest.QueryValue[int64](t, p.src, "meta", "SELECT count(*) FROM a"); n != 600 {
		t.Errorf("source rows of a: %d, want 600", n)
	}
}

// TestAbortAfterSwitchover aborts once the application writes to the
// target: the way back goes too (the source's subscription, the target's
// publication and slot), the target keeps every row, and
// --drop-target-data is refused.
func TestAbortAfterSwitchover(t *testing.T) {
	p := newPair(t, 15, 16)
	pgtest.Exec(t, p.src, "meta", `CREATE TABLE a (id int PRIMARY KEY, v text); INSERT INTO a SELECT g, 'a' FROM generate_series(1, 100) g;
		GRANT SELECT ON ALL TABLES IN SCHEMA public TO replicator`)
	p.must("migrate")
	p.must("switchover")
	pgtest.Exec(t, p.dst, "test", "INSERT INTO a VALUES (101, 'after the switch')")
	r := p.run("abort", "--drop-target-data", "--yes")
	if r.code != ExitError || !strings.Contains(r.stderr, "--drop-target-data after a switchover") {
		t.Fatalf("abort --drop-target-data after a switchover: %s", r)
	}
	r = p.must("abort")
	for _, want := range []string{`source: subscription "sub_pg_meta_meta_reverse" dropped`, `target: publication "pub_pg_meta_meta_reverse" dropped`} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("abort does not say %q: %s", want, r)
		}
	}
	if left := p.objectsLeft(); len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}
	if n := pgtest.QueryValue[int64](t, p.dst, "test", "SELECT count(*) FROM a"); n != 101 {
		t.Errorf("target rows: %d, want 101", n)
	}
	r = p.run("status")
	if r.code != 0 || !strings.Contains(r.stdout, "phase      aborted") {
		t.Errorf("status after abort: %s", r)
	}
}

// TestAbortSourceDown: with the source stopped, abort does the target's
// part, prints what is left on the source with the statements that drop
// it, and exits 1; once the source is back, abort drops it and exits 0.
func TestAbortSourceDown(t *testing.T) {
	p := &pair{t: t}
	p.src = pgtest.Start(t, 15, func(o *pgserver.Options) { o.Keep = true })
	t.Cleanup(func() { p.src.Remove() })
	p.dst = pgtest.Start(t, 15)
	pgtest.CreateDB(t, p.src, "meta")
	pgtest.CreateDB(t, p.dst, "test")
	pgtest.Exec(t, p.src, "meta", "CREATE ROLE replicator LOGIN REPLICATION PASSWORD '"+pgtest.Password()+"'; CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t SELECT generate_series(1, 10); GRANT SELECT ON t TO replicator")
	t.Setenv("PGPASSFILE", pgtest.PassFile(t))
	p.dir = t.TempDir()
	p.config = p.dir + "/migration.yml"
	p.writeConfig()
	p.must("migrate")
	if err := p.src.Stop(); err != nil {
		t.Fatal(err)
	}
	r := p.run("abort")
	if r.code != ExitError || !strings.Contains(r.stdout, `target: subscription "sub_pg_meta_meta" dropped`) ||
		!strings.Contains(r.stdout, "left on the source: replication slot sub_pg_meta_meta (it keeps WAL until dropped); run there: SELECT pg_catalog.pg_drop_replication_slot('sub_pg_meta_meta');") ||
		!strings.Contains(r.stdout, `left on the source: publication pub_pg_meta_meta (if it exists); run there: DROP PUBLICATION IF EXISTS "pub_pg_meta_meta";`) ||
		!strings.Contains(r.stderr, "source: unreachable, so ") || !strings.Contains(r.stderr, "run pgmove abort again") {
		t.Fatalf("abort with the source down: %s", r)
	}
	if n := pgtest.QueryValue[int64](t, p.dst, "test", "SELECT count(*) FROM pg_subscription"); n != 0 {
		t.Errorf("%d subscription(s) left on the target", n)
	}
	if r := p.run("status"); strings.Contains(r.stdout, "phase      aborted") {
		t.Errorf("status says aborted with the source's part not done: %s", r)
	}
	if err := p.src.Restart(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	r = p.must("abort")
	if !strings.Contains(r.stdout, `source: replication slot "sub_pg_meta_meta" dropped`) || !strings.Contains(r.stdout, `source: publication "pub_pg_meta_meta" dropped`) {
		t.Errorf("abort with the source back: %s", r)
	}
	if left := p.objectsLeft(); len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}
	if n := pgtest.QueryValue[int64](t, p.dst, "test", "SELECT count(*) FROM t"); n != 10 {
		t.Errorf("target rows: %d, want 10", n)
	}
}

// TestAbortTargetDown: with the target stopped, abort drops the source's
// publication and slot, prints the target's subscription with the
// statements that drop it, and exits 1; once the target is back, abort
// drops the subscription (its slot already gone: detached first) and
// exits 0. A 14 target: its DROP SUBSCRIPTION fails on a missing slot.
func TestAbortTargetDown(t *testing.T) {
	p := &pair{t: t}
	p.src = pgtest.Start(t, 15)
	p.dst = pgtest.Start(t, 14, func(o *pgserver.Options) { o.Keep = true })
	t.Cleanup(func() { p.dst.Remove() })
	pgtest.CreateDB(t, p.src, "meta")
	pgtest.CreateDB(t, p.dst, "test")
	pgtest.Exec(t, p.src, "meta", "CREATE ROLE replicator LOGIN REPLICATION PASSWORD '"+pgtest.Password()+"'; CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t SELECT generate_series(1, 10); GRANT SELECT ON t TO replicator")
	t.Setenv("PGPASSFILE", pgtest.PassFile(t))
	p.dir = t.TempDir()
	p.config = p.dir + "/migration.yml"
	p.writeConfig()
	p.must("migrate")
	if err := p.dst.Stop(); err != nil {
		t.Fatal(err)
	}
	r := p.run("abort")
	if r.code != ExitError || !strings.Contains(r.stdout, `source: replication slot "sub_pg_meta_meta" dropped`) ||
		!strings.Contains(r.stdout, `left on the target: subscription sub_pg_meta_meta (if it exists); run there: ALTER SUBSCRIPTION "sub_pg_meta_meta" DISABLE; ALTER SUBSCRIPTION "sub_pg_meta_meta" SET (slot_name = NONE); DROP SUBSCRIPTION IF EXISTS "sub_pg_meta_meta";`) ||
		!strings.Contains(r.stderr, "target: unreachable, so ") {
		t.Fatalf("abort with the target down: %s", r)
	}
	if n := pgtest.QueryValue[int64](t, p.src, "meta", "SELECT (SELECT count(*) FROM pg_replication_slots) + (SELECT count(*) FROM pg_publication)"); n != 0 {
		t.Errorf("%d slot(s) and publication(s) left on the source", n)
	}
	if err := p.dst.Restart(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	r = p.must("abort")
	if !strings.Contains(r.stdout, `target: subscription "sub_pg_meta_meta" dropped`) {
		t.Errorf("abort with the target back: %s", r)
	}
	if left := p.objectsLeft(); len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}
	if n := pgtest.QueryValue[int64](t, p.dst, "test", "SELECT count(*) FROM t"); n != 10 {
		t.Errorf("target rows: %d, want 10", n)
	}
}
