package pgtest

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgmove/pgmove/internal/pgserver"
)

// timeout bounds each helper's SQL; a hung statement fails the test instead of the whole run.
const timeout = 2 * time.Minute

var (
	password = sync.OnceValue(rand.Text)
	// reap clears servers left running by earlier test processes that were
	// killed (a go test timeout skips t.Cleanup).
	reapOnce sync.Once
)

// Password returns the random password this test process uses for every server it starts.
func Password() string { return password() }

// Start starts a server of the given major for the test and stops and removes
// it in t.Cleanup, logging the end of its log first if the test failed.
// A missing binary is a test failure, never a skip.
func Start(t testing.TB, major int, opts ...func(*pgserver.Options)) *pgserver.Server {
	t.Helper()
	if testing.Short() {
		// make unit: the tests that need no server (make test runs these).
		t.Skip("needs a PostgreSQL server: not run with -short")
	}
	reapOnce.Do(func() {
		reaped, err := pgserver.Reap("")
		if err != nil {
			t.Logf("remove servers left by killed test processes: %v", err)
		}
		if len(reaped) > 0 {
			t.Logf("removed %d servers left by killed test processes", len(reaped))
		}
	})
	o := pgserver.Options{Major: major, Name: serverName(t, major), Password: Password()}
	for _, opt := range opts {
		opt(&o)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	s, err := pgserver.Start(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("postgresql %d on port %d, last lines of %s:\n%s", s.Major, s.Port, s.LogFile, s.LogTail(40))
		}
		if err := s.Stop(); err != nil {
			t.Errorf("stop postgresql %d on port %d: %v", s.Major, s.Port, err)
		}
	})
	return s
}

// PassFile writes a .pgpass file (mode 0600) that gives Password for any
// server on 127.0.0.1 or localhost and returns its path; the caller sets
// PGPASSFILE. The file lives in t.TempDir, so it is gone when the test ends.
func PassFile(t testing.TB) string {
	t.Helper()
	pw := strings.NewReplacer(`\`, `\\`, `:`, `\:`).Replace(Password())
	path := filepath.Join(t.TempDir(), ".pgpass")
	text := "127.0.0.1:*:*:*:" + pw + "\nlocalhost:*:*:*:" + pw + "\n"
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatalf("pgpass file: %v", err)
	}
	return path
}

// Connect opens a connection to db as the superuser over TCP; it is closed in t.Cleanup.
func Connect(t testing.TB, s *pgserver.Server, db string) *pgx.Conn {
	t.Helper()
	conn := connect(t, s, db)
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// Exec runs SQL as the superuser on db, failing the test on error.
func Exec(t testing.TB, s *pgserver.Server, db, sql string, args ...any) {
	t.Helper()
	conn := connect(t, s, db)
	defer conn.Close(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if _, err := conn.Exec(ctx, sql, args...); err != nil {
		t.Fatalf("%s: exec %q: %v", where(s, db), sql, err)
	}
}

// QueryValue runs a query that returns one row of one column and returns that value.
func QueryValue[T any](t testing.TB, s *pgserver.Server, db, sql string, args ...any) T {
	t.Helper()
	conn := connect(t, s, db)
	defer conn.Close(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var v T
	if err := conn.QueryRow(ctx, sql, args...).Scan(&v); err != nil {
		t.Fatalf("%s: query %q: %v", where(s, db), sql, err)
	}
	return v
}

// QueryRows runs a query and returns every row's values as pgx decodes them.
func QueryRows(t testing.TB, s *pgserver.Server, db, sql string, args ...any) [][]any {
	t.Helper()
	conn := connect(t, s, db)
	defer conn.Close(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	rows, err := conn.Query(ctx, sql, args...)
	if err == nil {
		var all [][]any
		all, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) ([]any, error) { return r.Values() })
		if err == nil {
			return all
		}
	}
	t.Fatalf("%s: query %q: %v", where(s, db), sql, err)
	return nil
}

// CreateDB creates a database owned by the superuser.
func CreateDB(t testing.TB, s *pgserver.Server, name string) {
	t.Helper()
	Exec(t, s, "postgres", "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
}

// UseClient18 points pgmove at the PostgreSQL 18 client (PGMOVE_PG_BINDIR)
// for the rest of the test: pg_dump refuses servers newer than itself, and
// the machine's own client is 15. A missing client fails the test.
func UseClient18(t testing.TB) {
	t.Helper()
	d, err := pgserver.ClientDir()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("PGMOVE_PG_BINDIR", d)
}

// Majors returns the majors to test: PGMOVE_TEST_MAJORS (a comma list such as
// "13,17") when set, else def.
func Majors(t testing.TB, def ...int) []int {
	t.Helper()
	env := os.Getenv("PGMOVE_TEST_MAJORS")
	if env == "" {
		return def
	}
	var majors []int
	for _, f := range strings.Split(env, ",") {
		m, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			t.Fatalf("PGMOVE_TEST_MAJORS=%q: %q is not a major version", env, f)
		}
		majors = append(majors, m)
	}
	return majors
}

func connect(t testing.TB, s *pgserver.Server, db string) *pgx.Conn {
	t.Helper()
	cfg, err := s.ConnConfig(db)
	if err != nil {
		t.Fatal(err)
	}
	cfg.RuntimeParams["application_name"] = "pgmove/pgtest"
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("%s: connect: %v", where(s, db), err)
	}
	return conn
}

func where(s *pgserver.Server, db string) string {
	return fmt.Sprintf("postgresql %d on port %d, database %q", s.Major, s.Port, db)
}

// serverName makes a short directory name from the test's name: the unix
// socket path, which includes it, must stay under 108 bytes.
func serverName(t testing.TB, major int) string {
	name := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			return r
		case r >= 'A' && r <= 'Z':
			return r + 'a' - 'A'
		}
		return '-'
	}, strings.TrimPrefix(t.Name(), "Test"))
	if len(name) > 24 {
		name = name[:24]
	}
	name = strings.Trim(name, "-")
	if name == "" {
		name = "pg"
	}
	return fmt.Sprintf("%s-%d", name, major)
}
