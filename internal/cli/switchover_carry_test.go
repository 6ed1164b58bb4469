package cli

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pgmove/pgmove/internal/pgtest"
)

// TestSwitchoverCarries: what replication does not carry crosses with the
// switch (large objects both ways, unlogged tables' rows and materialized
// views to the target; a rollback says it leaves unlogged tables); a
// schema difference that would stop the reverse apply refuses the switch
// before any fence; status says a switchover is done and how the way back
// runs; cleanup after a switchover drops the way back too.
func TestSwitchoverCarries(t *testing.T) {
	p := newPair(t, 15, 17)
	pgtest.Exec(t, p.src, "meta", `CREATE TABLE items (id serial PRIMARY KEY, v text);
		INSERT INTO items (v) SELECT 'i' || g FROM generate_series(1, 100) g;
		CREATE UNLOGGED TABLE cache (k int PRIMARY KEY, v text);
		INSERT INTO cache SELECT g, 'c' || g FROM generate_series(1, 50) g;
		CREATE MATERIALIZED VIEW item_count AS SELECT count(*) AS n FROM items;
		SELECT lo_from_bytea(424242, 'before the migration')`)
	p.must("migrate")

	// A column only the target has stops the reverse apply: refused, and
	// nothing of the way back is made.
	pgtest.Exec(t, p.dst, "test", "ALTER TABLE items ADD COLUMN extra int")
	r := p.run("switchover")
	if r.code == 0 || !strings.Contains(r.stderr, "items") || !strings.Contains(r.stderr, "extra") || !strings.Contains(r.stderr, "compare --schema") {
		t.Fatalf("a switchover with a target-only column: %s", r)
	}
	if n := pgtest.QueryValue[int64](t, p.dst, "test", "SELECT count(*) FROM pg_replication_slots"); n != 0 {
		t.Fatalf("the refused switchover left %d slot(s) on the target", n)
	}
	// The refused preflight puts the apply back as it was.
	syncCommit := "SELECT string_agg(subsynccommit, ',') FROM pg_catalog.pg_subscription"
	if sc := pgtest.QueryValue[string](t, p.dst, "test", syncCommit); sc != "off" {
		t.Errorf("after the refused switchover the subscription's synchronous_commit is %q, want off as before", sc)
	}
	pgtest.Exec(t, p.dst, "test", "ALTER TABLE items DROP COLUMN extra")

	// A transaction holding a table on the target: the way back's
	// publication cannot be made; the preflight says so within its bound
	// instead of hanging, before any fence.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	lock := pgtest.Connect(t, p.dst, "test")
	if _, err := lock.Exec(ctx, "BEGIN; LOCK TABLE items IN SHARE MODE"); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	r = p.run("switchover")
	if r.code == 0 || !strings.Contains(r.stderr, "waited 10s for a lock") || time.Since(began) > 40*time.Second {
		t.Fatalf("a switchover whose preflight waits on a lock (%s): %s", time.Since(began).Round(time.Second), r)
	}
	if _, err := lock.Exec(ctx, "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	if sc := pgtest.QueryValue[string](t, p.dst, "test", syncCommit); sc != "off" {
		t.Errorf("after the preflight's lock wait the subscription's synchronous_commit is %q, want off as before", sc)
	}

	pgtest.Exec(t, p.src, "meta", `INSERT INTO items (v) SELECT 'j' || g FROM generate_series(1, 20) g;
		UPDATE cache SET v = 'changed' WHERE k <= 10; DELETE FROM cache WHERE k > 40;
		SELECT lo_from_bytea(434343, 'written during the migration');
		SELECT lo_put(424242, 0, '\x42'::bytea)`)
	// Materialized views are refreshed early, from the target's data then.
	p.must("progress", "--wait", "--timeout", "30s")
	r = p.must("switchover")
	t.Logf("switchover: %s", strings.TrimSpace(r.stdout))
	if !strings.Contains(r.stdout, "carried early") {
		t.Errorf("the switchover does not say what it carried early: %s", r.stdout)
	}
	for _, q := range []string{
		"SELECT string_agg(loid::text || ':' || encode(lo_get(loid), 'escape'), ',' ORDER BY loid) FROM (SELECT oid AS loid FROM pg_largeobject_metadata) l",
		"SELECT string_agg(k || '=' || v, ',' ORDER BY k) FROM cache",
	} {
		src, dst := pgtest.QueryValue[string](t, p.src, "meta", q), pgtest.QueryValue[string](t, p.dst, "test", q)
		if src != dst {
			t.Errorf("after the switchover, %q: source %s, target %s", q, src, dst)
		}
	}
	if n := pgtest.QueryValue[int64](t, p.dst, "test", "SELECT n FROM item_count"); n != 120 {
		t.Errorf("the target's materialized view says %d items, want 120", n)
	}

	r = p.must("status")
	if !strings.Contains(r.stdout, "switched over") || !strings.Contains(r.stdout, "the way back") {
		t.Errorf("status after a switchover: %s", r)
	}

	// The application writes to the target now.
	pgtest.Exec(t, p.dst, "test", `INSERT INTO items (v) VALUES ('on the target'); SELECT lo_from_bytea(454545, 'written on the target')`)
	r = p.must("rollback")
	t.Logf("rollback: %s", strings.TrimSpace(r.stdout+r.stderr))
	if !strings.Contains(r.stdout+r.stderr, "cache") {
		t.Errorf("the rollback does not name the unlogged table it leaves: %s", r)
	}
	if got := pgtest.QueryValue[string](t, p.src, "meta", "SELECT encode(lo_get(454545), 'escape')"); got != "written on the target" {
		t.Errorf("the target's large object on the source: %q", got)
	}
	if n := pgtest.QueryValue[int64](t, p.src, "meta", "SELECT count(*) FROM items WHERE v = 'on the target'"); n != 1 {
		t.Errorf("the target's row on the source: %d", n)
	}
	// The forward apply worker starts within moments.
	for end := time.Now().Add(15 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		r = p.run("status")
		if r.code == 0 || time.Now().After(end) {
			break
		}
	}
	if r.code != 0 || strings.Contains(r.stdout, "switched over") || !strings.Contains(r.stdout, "replicating") {
		t.Errorf("status after the rollback: %s", r)
	}

	p.must("plan")
	p.assertPrivate()

	// Keep the target: a second switchover, then cleanup ends the way back.
	p.must("switchover")
	p.must("cleanup")
	if left := p.objectsLeft(); len(left) > 0 {
		t.Errorf("cleanup after a switchover left %v", left)
	}
}
