package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pgmove/pgmove/internal/pgtest"
)

// assertOneLineError checks that a failed run ends in one line on stderr,
// "pgmove: <side>: ...", that mentions want (the fix), with a non-zero exit
// code.
func assertOneLineError(t *testing.T, r result, code int, side string, want ...string) {
	t.Helper()
	if r.code != code {
		t.Fatalf("exit %d, want %d: %s", r.code, code, r)
	}
	lines := strings.Split(strings.TrimRight(r.stderr, "\n"), "\n")
	last := lines[len(lines)-1]
	if !strings.HasPrefix(last, "pgmove: "+side) {
		t.Fatalf("last stderr line should start with %q: %s", "pgmove: "+side, r)
	}
	for _, w := range want {
		if !strings.Contains(last, w) {
			t.Errorf("error line lacks %q: %s", w, last)
		}
	}
	if strings.Contains(r.stdout+r.stderr, pgtest.Password()) {
		t.Errorf("the password appears in pgmove's output: %s", r)
	}
}

// assertNothingLeft checks that a failed migrate left no object on either server.
func (p *pair) assertNothingLeft(t *testing.T) {
	t.Helper()
	if left := p.objectsLeft(); len(left) > 0 {
		t.Errorf("objects left behind: %v", left)
	}
	if n := p.targetTables(); n > 0 {
		t.Errorf("%d table(s) left on the target", n)
	}
}

func TestBadInput(t *testing.T) {
	p := newPair(t, 15, 15)
	pgtest.Exec(t, p.src, "meta", `CREATE TABLE accounts (id bigserial PRIMARY KEY, owner text NOT NULL, balance numeric);
		INSERT INTO accounts (owner, balance) SELECT 'o' || g, g FROM generate_series(1, 100) g;
		GRANT SELECT ON ALL TABLES IN SCHEMA public TO replicator`)
	src := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/meta", p.src.Port)
	dst := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/test", p.dst.Port)

	t.Run("unreachable host", func(t *testing.T) {
		r := pgmove(t, "--src", "postgres://postgres@127.0.0.1:1/meta", "--dst", dst, "migrate")
		assertOneLineError(t, r, ExitProblems, "source:", "cannot reach 127.0.0.1:1", "connection refused", "the host and port in --src")
		p.assertNothingLeft(t)
	})
	t.Run("wrong password", func(t *testing.T) {
		bad := filepath.Join(t.TempDir(), "pgpass")
		os.WriteFile(bad, []byte(fmt.Sprintf("127.0.0.1:%d:*:*:wrong\n127.0.0.1:%d:*:*:%s\n", p.src.Port, p.dst.Port, pgtest.Password())), 0o600)
		t.Setenv("PGPASSFILE", bad)
		r := pgmove(t, "--src", src, "--dst", dst, "migrate")
		assertOneLineError(t, r, ExitProblems, "source:", "password authentication failed", ".pgpass")
		p.assertNothingLeft(t)
	})
	t.Run("missing database", func(t *testing.T) {
		r := pgmove(t, "--src", src, "--dst", strings.TrimSuffix(dst, "test")+"nosuch", "migrate")
		assertOneLineError(t, r, ExitProblems, "target:", `database "nosuch" does not exist`, "the database name in --dst")
		p.assertNothingLeft(t)
	})
	t.Run("password in the URL", func(t *testing.T) {
		r := pgmove(t, "--src", "postgres://postgres:s3cret@127.0.0.1/meta", "--dst", dst, "check")
		assertOneLineError(t, r, ExitUsage, "source:", "holds a password", ".pgpass")
		if strings.Contains(r.stderr, "s3cret") {
			t.Errorf("the password was printed: %s", r)
		}
	})
	t.Run("password in a pgbouncer URL", func(t *testing.T) {
		r := p.run("switchover", "--pgbouncer", "postgres://admin:s3cret@127.0.0.1:6432/pgbouncer")
		assertOneLineError(t, r, ExitUsage, "--pgbouncer:", "holds a password", ".pgpass")
		if strings.Contains(r.stderr, "s3cret") {
			t.Errorf("the password was printed: %s", r)
		}
		p.assertNothingLeft(t)
	})
	t.Run("role without REPLICATION", func(t *testing.T) {
		pgtest.Exec(t, p.src, "meta", "ALTER ROLE replicator NOREPLICATION")
		defer pgtest.Exec(t, p.src, "meta", "ALTER ROLE replicator REPLICATION")
		r := p.run("migrate")
		assertOneLineError(t, r, ExitProblems, "source:", "REPLICATION", `ALTER ROLE "replicator" REPLICATION;`)
		p.assertNothingLeft(t)
	})
	t.Run("table without primary key", func(t *testing.T) {
		pgtest.Exec(t, p.src, "meta", "CREATE TABLE audit_log (at timestamptz, what text)")
		defer pgtest.Exec(t, p.src, "meta", "DROP TABLE audit_log")
		r := p.run("migrate")
		assertOneLineError(t, r, ExitProblems, "source:", "public.audit_log", "REPLICA IDENTITY FULL")
		p.assertNothingLeft(t)
		// create-pub alone refuses too, and says so on one line.
		r = p.run("create-pub")
		assertOneLineError(t, r, ExitError, "source:", "audit_log", "REPLICA IDENTITY")
		p.assertNothingLeft(t)
	})
	t.Run("malformed YAML", func(t *testing.T) {
		bad := filepath.Join(t.TempDir(), "migration.yml")
		os.WriteFile(bad, []byte("src_ip: 127.0.0.1\nsrc_db: [meta\n"), 0o644)
		r := pgmove(t, "-c", bad, "check")
		assertOneLineError(t, r, ExitUsage, "migration.yml:", "malformed YAML")
	})
	t.Run("unknown key", func(t *testing.T) {
		bad := filepath.Join(t.TempDir(), "migration.yml")
		os.WriteFile(bad, []byte("src_ip: 127.0.0.1\nsrc_db: meta\nsrc_hots: x\n"), 0o644)
		r := pgmove(t, "-c", bad, "check")
		assertOneLineError(t, r, ExitUsage, "migration.yml:3:", `unknown key "src_hots"`, "did you mean")
	})
	t.Run("incomplete YAML", func(t *testing.T) {
		bad := filepath.Join(t.TempDir(), "migration.yml")
		os.WriteFile(bad, []byte(fmt.Sprintf("src_ip: 127.0.0.1\nsrc_db: meta\nsrc_port: %d\n", p.src.Port)), 0o644)
		r := pgmove(t, "-c", bad, "check")
		assertOneLineError(t, r, ExitUsage, "target:", "no connection given", "dst_ip")
	})
	t.Run("second pgmove refused", func(t *testing.T) {
		s, err := newSession(&globals{configFile: p.config, stdout: os.Stdout, stderr: os.Stderr}, "test")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.connect(context.Background(), false, true); err != nil {
			t.Fatal(err)
		}
		if err := s.begin(context.Background()); err != nil {
			t.Fatal(err)
		}
		defer s.close()
		r := p.run("create-pub")
		assertOneLineError(t, r, ExitError, "another pgmove", "is working on this migration")
		p.assertNothingLeft(t)
	})
}

func TestWalLevelReplica(t *testing.T) {
	p := newPair(t, 14, 16)
	pgtest.Exec(t, p.src, "meta", "CREATE TABLE t (id int PRIMARY KEY)")
	if err := p.src.Restart(context.Background(), map[string]string{"wal_level": "replica"}); err != nil {
		t.Fatal(err)
	}
	r := p.run("migrate")
	assertOneLineError(t, r, ExitProblems, "source:", `wal_level is "replica"`, "wal_level = logical", "restart the source")
	p.assertNothingLeft(t)
}

// TestOddIdentifiers migrates schemas and tables whose names need quoting:
// quotes, spaces, upper case, unicode, a reserved word.
func TestOddIdentifiers(t *testing.T) {
	p := newPair(t, 15, 17)
	pgtest.Exec(t, p.src, "meta", `
		CREATE SCHEMA "Odd ""Schema"" ü";
		CREATE TABLE "Odd ""Schema"" ü"."Order Lines" (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "Qty" int, "select" text);
		CREATE TABLE "Odd ""Schema"" ü"."tbl.with.dots" ("ID" bigserial PRIMARY KEY, v text);
		CREATE TABLE public."UPPER" (k text PRIMARY KEY, "Ünïcødé" text);
		INSERT INTO "Odd ""Schema"" ü"."Order Lines" ("Qty", "select") SELECT g, 'x''y' FROM generate_series(1, 50) g;
		INSERT INTO "Odd ""Schema"" ü"."tbl.with.dots" (v) SELECT 'v' || g FROM generate_series(1, 20) g;
		INSERT INTO public."UPPER" VALUES ('a', 'ä'), ('b', '日本');
		GRANT USAGE ON SCHEMA "Odd ""Schema"" ü" TO replicator;
		GRANT SELECT ON ALL TABLES IN SCHEMA "Odd ""Schema"" ü", public TO replicator`)
	p.must("migrate")
	pgtest.Exec(t, p.src, "meta", `INSERT INTO "Odd ""Schema"" ü"."Order Lines" ("Qty") VALUES (999);
		UPDATE public."UPPER" SET "Ünïcødé" = 'ö' WHERE k = 'a'`)
	p.must("progress", "--wait")
	p.must("copy-seq")
	r := p.must("compare", "--checksum")
	if !strings.Contains(r.stdout, "equal: 3 table(s) and 2 sequence(s) match") {
		t.Fatalf("compare: %s", r)
	}
	assertSameRows(t, p.src, p.dst, `"Odd ""Schema"" ü"."Order Lines"`, `"Odd ""Schema"" ü"."tbl.with.dots"`, `public."UPPER"`)
	// Filters with quoted names select exactly those tables.
	r = p.must("check-replica-identity", "--include", `"Odd ""Schema"" ü"."Order Lines"`)
	if !strings.Contains(r.stdout, "1 table(s)") {
		t.Errorf("--include with a quoted name: %s", r)
	}
	p.must("cleanup")
	if left := p.objectsLeft(); len(left) > 0 {
		t.Errorf("cleanup left %v", left)
	}
}
