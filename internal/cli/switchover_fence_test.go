package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgmove/pgmove/internal/pgserver"
	"github.com/pgmove/pgmove/internal/pgtest"
)

// appRoles are the application's roles of the --fence database tests; both
// write straight to the database, no pgbouncer in between.
var appRoles = []string{"app_rw", "app_batch"}

// fencePair is a migrated pair whose application roles exist (with LOGIN)
// on both sides, and a file the application reads, at every connect, to
// know where the database is: the --switch-hook rewrites it.
func fencePair(t *testing.T, src, dst int) (p *pair, where string) {
	t.Helper()
	p = newPair(t, src, dst)
	pgtest.Exec(t, p.src, "meta", `CREATE TABLE probe (id bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT now(), note text);
		CREATE TABLE load (id bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT now(), note text);
		GRANT SELECT ON ALL TABLES IN SCHEMA public TO replicator`)
	grants := "GRANT INSERT, SELECT ON ALL TABLES IN SCHEMA public TO app_rw, app_batch; GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO app_rw, app_batch"
	for _, s := range []*pgserver.Server{p.src, p.dst} {
		for _, role := range appRoles {
			pgtest.Exec(t, s, "postgres", fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD '%s'", role, pgtest.Password()))
		}
	}
	pgtest.Exec(t, p.src, "meta", grants)
	p.must("migrate")
	pgtest.Exec(t, p.dst, "test", grants)
	where = filepath.Join(t.TempDir(), "where")
	if err := os.WriteFile(where, []byte(fmt.Sprintf("127.0.0.1 %d meta", p.src.Port)), 0o644); err != nil {
		t.Fatal(err)
	}
	return p, where
}

// appURL is where the application connects now, as role, read from the file.
func appURL(where, role string) func() string {
	return func() string {
		b, _ := os.ReadFile(where)
		f := strings.Fields(string(b))
		if len(f) != 3 {
			return "postgres://nowhere"
		}
		return fmt.Sprintf("postgres://%s:%s@%s:%s/%s?sslmode=disable&connect_timeout=5", role, pgtest.Password(), f[0], f[1], f[2])
	}
}

// canLogin says whether role may log in on the server.
func canLogin(t *testing.T, s *pgserver.Server, db, role string) bool {
	t.Helper()
	return pgtest.QueryValue[bool](t, s, db, "SELECT rolcanlogin FROM pg_roles WHERE rolname = $1", role)
}

// refusedLogin says whether role's login to the server is refused.
func refusedLogin(t *testing.T, s *pgserver.Server, db, role string) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, fmt.Sprintf("postgres://%s:%s@127.0.0.1:%d/%s?sslmode=disable", role, pgtest.Password(), s.Port, db))
	if err == nil {
		c.Close(ctx)
		return false
	}
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == pgerrcode.InvalidAuthorizationSpecification
}

// writesTo waits until both roles commit on the server: the application
// found its way there.
func writesTo(t *testing.T, s *pgserver.Server, db, what string) {
	t.Helper()
	// Rows the other side replicated here are older than now.
	since := pgtest.QueryValue[time.Time](t, s, db, "SELECT now()")
	deadline := time.Now().Add(15 * time.Second)
	for {
		ok := true
		for _, role := range appRoles {
			n := pgtest.QueryValue[int64](t, s, db, "SELECT count(*) FROM load WHERE note = $1 AND at > $2", role, since)
			if n == 0 {
				ok = false
			}
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: the application roles do not write to %s", what, db)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestSwitchoverFenceDatabase moves two application roles writing straight
// to the source (repointed by a --switch-hook) with --fence database: the
// roles lose LOGIN and their sessions end for the pause; after the
// switchover they stay NOLOGIN on the old primary, after the rollback they
// can log in to the source again (and not to the target); an abandoned
// switch gives LOGIN back. No acknowledged commit is lost.
func TestSwitchoverFenceDatabase(t *testing.T) {
	p, where := fencePair(t, 15, 17)
	var writers []*appWriter
	for _, role := range appRoles {
		for range 2 {
			writers = append(writers, startAppWriterAt(t, appURL(where, role), "load", role, 2*time.Millisecond))
		}
	}
	defer func() {
		for _, w := range writers {
			w.stop()
		}
	}()
	hook := fmt.Sprintf(`printf '%%s %%s %%s' "$PGMOVE_HOST" "$PGMOVE_PORT" "$PGMOVE_DBNAME" > %s`, where)
	flags := []string{"--fence", "database", "--app-role", "app_rw", "--app-role", "app_batch", "--switch-hook", hook}
	time.Sleep(time.Second)

	r := p.must(append([]string{"switchover"}, flags...)...)
	t.Logf("switchover: %s", strings.TrimSpace(r.stdout))
	writesTo(t, p.dst, "test", "after the switchover")
	for _, role := range appRoles {
		if !refusedLogin(t, p.src, "meta", role) {
			t.Errorf("after the switchover, %s can log in to the old primary", role)
		}
		if !canLogin(t, p.dst, "test", role) {
			t.Errorf("after the switchover, %s cannot log in to the target", role)
		}
	}
	waitEqual(t, p, "load", false)

	r = p.must(append([]string{"rollback"}, flags...)...)
	t.Logf("rollback: %s", strings.TrimSpace(r.stdout))
	writesTo(t, p.src, "meta", "after the rollback")
	for _, role := range appRoles {
		if !canLogin(t, p.src, "meta", role) {
			t.Errorf("after the rollback, %s cannot log in to the source", role)
		}
		if !refusedLogin(t, p.dst, "test", role) {
			t.Errorf("after the rollback, %s can log in to the target, which is the replica again", role)
		}
	}

	// Abandoned: the target's apply waits on a lock and cannot reach the fence.
	pgtest.Exec(t, p.dst, "test", "ALTER SUBSCRIPTION sub_pg_meta_meta SET (synchronous_commit = on)")
	time.Sleep(time.Second)
	for end := time.Now().Add(30 * time.Second); pgtest.QueryValue[int64](t, p.dst, "test",
		"SELECT count(*) FROM pg_stat_subscription WHERE subname = 'sub_pg_meta_meta' AND pid IS NOT NULL AND relid IS NULL") == 0; {
		if time.Now().After(end) {
			t.Fatal("the apply worker did not restart")
		}
		time.Sleep(100 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	lock := pgtest.Connect(t, p.dst, "test")
	if _, err := lock.Exec(ctx, "BEGIN; LOCK TABLE load IN SHARE MODE"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	r = p.run(append([]string{"switchover", "--max-pause", "500ms", "--max-lag", "1GB"}, flags...)...)
	if r.code != 1 || !strings.Contains(r.stderr, "abandoned, nothing switched") {
		t.Fatalf("a switchover whose target cannot catch up: %s", r)
	}
	if _, err := lock.Exec(ctx, "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	for _, role := range appRoles {
		if !canLogin(t, p.src, "meta", role) {
			t.Errorf("after the abandoned switch, %s cannot log in to the source", role)
		}
	}
	writesTo(t, p.src, "meta", "after the abandoned switch")

	failed := 0
	for _, w := range writers {
		w.stop()
		failed += len(w.failed)
	}
	waitEqual(t, p, "load", true)
	acked := 0
	for _, w := range writers {
		acked += len(w.acked)
		for _, s := range []struct {
			srv *pgserver.Server
			db  string
		}{{p.src, "meta"}, {p.dst, "test"}} {
			if lost := w.missing(t, s.srv, s.db); len(lost) > 0 {
				t.Errorf("%s: %d acknowledged row(s) missing on %s (first %d)", w.note, len(lost), s.db, lost[0])
			}
		}
	}
	// The fence ends the roles' sessions: their transactions in flight
	// fail (unacknowledged), and they reconnect once pointed elsewhere.
	t.Logf("%d commits acknowledged, %d failed while fenced", acked, failed)
}
