package cli

import (
	"context"
	"strings"
	"testing"

	"github.com/pgmove/pgmove/internal/pgserver"
	"github.com/pgmove/pgmove/internal/pgtest"
)

// TestRemoveSubSourceDown: with the source down, remove-sub still drops the
// subscription (detaching its slot) and names the statement that drops the
// orphaned slot; once the source is back, cleanup drops it.
func TestRemoveSubSourceDown(t *testing.T) {
	p := &pair{t: t}
	p.src = pgtest.Start(t, 15, func(o *pgserver.Options) { o.Keep = true })
	t.Cleanup(func() { p.src.Remove() })
	p.dst = pgtest.Start(t, 16)
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
	// The target's part is done, but the slot keeps WAL on the source:
	// exit 1, so scripts notice.
	r := p.run("remove-sub")
	if r.code != ExitError || !strings.Contains(r.stderr, `source: unreachable, so replication slot(s) sub_pg_meta_meta remain on the source`) ||
		!strings.Contains(r.stdout, `subscription "sub_pg_meta_meta" dropped`) ||
		!strings.Contains(r.stdout, "SELECT pg_catalog.pg_drop_replication_slot('sub_pg_meta_meta');") {
		t.Fatalf("remove-sub with the source down: %s", r)
	}
	if n := pgtest.QueryValue[int64](t, p.dst, "test", "SELECT count(*) FROM pg_subscription"); n != 0 {
		t.Errorf("%d subscription(s) left on the target", n)
	}
	r = p.run("cleanup") // still down: says what to drop later, exit 1
	if r.code != ExitError || !strings.Contains(r.stdout, "source was unreachable") || !strings.Contains(r.stderr, "pg_drop_replication_slot('sub_pg_meta_meta')") {
		t.Errorf("cleanup with the source down: %s", r)
	}

	if err := p.src.Restart(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	r = p.must("cleanup")
	if !strings.Contains(r.stdout, `replication slot "sub_pg_meta_meta" dropped`) {
		t.Errorf("cleanup with the source back: %s", r)
	}
	if left := p.objectsLeft(); len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}
}
