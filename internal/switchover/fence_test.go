package switchover

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"

	"github.com/pgmove/pgmove/internal/cluster"
	"github.com/pgmove/pgmove/internal/config"
	"github.com/pgmove/pgmove/internal/pgtest"
)

// TestFencePoint: on a primary committing asynchronously (the test servers
// run synchronous_commit = off, as many production ones do), the fence LSN
// lies past the commit record of every transaction already acknowledged,
// although such a commit is acknowledged before its record is written. A
// fence read from pg_current_wal_lsn() alone, the write position, trailed
// acknowledged commits: a replica confirming it lacked them (rows lost on a
// rollback under load). Also without the privilege for the flush message.
func TestFencePoint(t *testing.T) {
	s := pgtest.Start(t, 15)
	pgtest.Exec(t, s, "postgres", "CREATE TABLE t (id int); CREATE ROLE plain LOGIN PASSWORD '"+pgtest.Password()+"'; GRANT INSERT ON t TO plain")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	app := pgtest.Connect(t, s, "postgres")
	for _, user := range []string{"postgres", "plain"} {
		cfg, err := s.ConnConfig("postgres")
		if err != nil {
			t.Fatal(err)
		}
		cfg.User = user
		pc, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		c := &cluster.Conn{Conn: pc, Side: config.Source}
		trailed := 0
		for i := range 200 {
			var acked string
			// Acknowledged asynchronously: the commit record is inserted,
			// maybe not written; the insert position after it is past it.
			if _, err := app.Exec(ctx, "INSERT INTO t VALUES ($1)", i); err != nil {
				t.Fatal(err)
			}
			if err := app.QueryRow(ctx, "SELECT pg_current_wal_insert_lsn()::text").Scan(&acked); err != nil {
				t.Fatal(err)
			}
			var written string
			if err := c.QueryRow(ctx, "SELECT pg_current_wal_lsn()::text").Scan(&written); err != nil {
				t.Fatal(err)
			}
			if lsn(t, written) < lsn(t, acked) {
				trailed++
			}
			fence, err := fencePoint(ctx, c)
			if err != nil {
				t.Fatal(err)
			}
			if lsn(t, fence) < lsn(t, acked) {
				t.Fatalf("as %s: fence LSN %s is before the acknowledged commit's end %s", user, fence, acked)
			}
		}
		t.Logf("as %s: the write position trailed an acknowledged commit %d times in 200", user, trailed)
		c.Close()
	}
}

func lsn(t *testing.T, s string) pglogrepl.LSN {
	t.Helper()
	l, err := pglogrepl.ParseLSN(s)
	if err != nil {
		t.Fatal(err)
	}
	return l
}
