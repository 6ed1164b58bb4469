package copy

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/pgmove/pgmove/internal/catalog"
	"github.com/pgmove/pgmove/internal/cluster"
	"github.com/pgmove/pgmove/internal/config"
	"github.com/pgmove/pgmove/internal/pgtest"
)

// TestEmptyProvenPartitioned: a partitioned target relation (rows routed
// to its partitions) is emptied only when the ledger proves every row in
// its partitions, for this migration: without a ledger, or for another
// migration, it is refused and left whole.
func TestEmptyProvenPartitioned(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server")
	}
	srv := pgtest.Start(t, 16)
	pgtest.CreateDB(t, srv, "m")
	pgtest.Exec(t, srv, "m", `CREATE TABLE p (id int) PARTITION BY RANGE (id);
		CREATE TABLE p1 PARTITION OF p FOR VALUES FROM (0) TO (100);
		CREATE TABLE p2 PARTITION OF p FOR VALUES FROM (100) TO (200);
		INSERT INTO p SELECT g FROM generate_series(0, 9) g`)
	t.Setenv("PGPASSFILE", pgtest.PassFile(t))
	u := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/m", srv.Port)
	m, err := config.Resolve(nil, config.Overrides{Src: u, Dst: u})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	src, err := cluster.Connect(ctx, m.Src, "test")
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := cluster.Connect(ctx, m.Dst, "test")
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	snap, err := catalog.TablesWithoutSizes(ctx, dst)
	if err != nil {
		t.Fatal(err)
	}
	d := snap.Find("public", "p")
	if d == nil || d.Kind != 'p' {
		t.Fatalf("public.p: %+v", d)
	}
	_, err = EmptyProven(ctx, src, dst, "mig", []*catalog.Table{d})
	if err == nil || !strings.Contains(err.Error(), "holds 10 row(s)") {
		t.Fatalf("no ledger: %v", err)
	}
	l, err := OpenLedger(ctx, src, dst, "mig", "s")
	if err != nil {
		t.Fatal(err)
	}
	pgtest.Exec(t, srv, "m", "TRUNCATE p")
	pgtest.Exec(t, srv, "m", fmt.Sprintf("BEGIN; INSERT INTO p SELECT g FROM generate_series(50, 150) g; INSERT INTO pgmove.load VALUES (%d, %d, 'p', txid_current() %% 4294967296, 101); COMMIT", l.CopyID, d.OID))
	emptied, err := EmptyProven(ctx, src, dst, "mig", []*catalog.Table{d})
	if err != nil || len(emptied) != 1 {
		t.Fatalf("proven: %v %v", emptied, err)
	}
	if n := pgtest.QueryValue[int64](t, srv, "m", "SELECT count(*) FROM p"); n != 0 {
		t.Fatalf("%d rows left", n)
	}
	pgtest.Exec(t, srv, "m", "INSERT INTO p VALUES (1)")
	_, err = EmptyProven(ctx, src, dst, "other-migration", []*catalog.Table{d})
	if err == nil || !strings.Contains(err.Error(), "public.p holds 1 row(s) pgmove did not load (of 1)") {
		t.Fatalf("another migration's ledger: %v", err)
	}
	if n := pgtest.QueryValue[int64](t, srv, "m", "SELECT count(*) FROM p"); n != 1 {
		t.Fatalf("%d rows left, want 1", n)
	}
}
