package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pgmove/pgmove/internal/pgtest"
)

// TestMessages: each message names what the user gave and what was done.
// A wrong password or a missing database is not "unreachable" and gets no
// pg_hba line; errors about --src/--dst URLs name the flag, not config keys;
// create-sub says what it did, and --dry-run what it would do, also when
// the subscription exists; compare escapes a newline in a table's name.
func TestMessages(t *testing.T) {
	p := newPair(t, 15, 17)
	src := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/meta", p.src.Port)
	dst := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/test", p.dst.Port)

	t.Run("connect", func(t *testing.T) {
		wrong := filepath.Join(t.TempDir(), "pgpass")
		text := fmt.Sprintf("127.0.0.1:%d:*:*:wrong\n127.0.0.1:*:*:*:%s\n", p.src.Port, pgtest.Password())
		if err := os.WriteFile(wrong, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		t.Setenv("PGPASSFILE", wrong)
		r := pgmove(t, "--src", src, "--dst", dst, "check")
		if r.code != ExitProblems || !strings.Contains(r.stdout, "(login failed)") || strings.Contains(r.stdout, "unreachable") ||
			strings.Contains(r.stdout, "pg_hba") || !strings.Contains(r.stdout, "password authentication failed") {
			t.Errorf("check with a wrong source password: %s", r)
		}
		t.Setenv("PGPASSFILE", pgtest.PassFile(t))

		nodb := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/nosuch", p.dst.Port)
		r = pgmove(t, "--src", src, "--dst", nodb, "check")
		if r.code != ExitProblems || !strings.Contains(r.stdout, "(no such database)") || strings.Contains(r.stdout, "unreachable") ||
			!strings.Contains(r.stdout, `database "nosuch" does not exist`) || !strings.Contains(r.stdout, "the database name in --dst") || strings.Contains(r.stdout+r.stderr, "dst_db") {
			t.Errorf("check with a missing target database given by --dst: %s", r)
		}
		// With the seed's keys, the key is the fix.
		r = p.run("--dst", "", "check")
		if r.code != 0 {
			t.Fatalf("check: %s", r)
		}
		pgtest.Exec(t, p.dst, "postgres", "ALTER DATABASE test RENAME TO test_moved")
		r = p.run("check")
		pgtest.Exec(t, p.dst, "postgres", "ALTER DATABASE test_moved RENAME TO test")
		if !strings.Contains(r.stdout, "set dst_db to an existing database") {
			t.Errorf("check with dst_db missing on the target: %s", r)
		}

		down := "postgres://postgres@127.0.0.1:1/test"
		r = pgmove(t, "--src", src, "--dst", down, "check")
		if r.code != ExitProblems || !strings.Contains(r.stdout, "(unreachable)") || !strings.Contains(r.stdout, "check the host and port in --dst") || strings.Contains(r.stdout+r.stderr, "dst_ip") {
			t.Errorf("check with an unreachable --dst: %s", r)
		}
		r = pgmove(t, "--src", src, "--dst", down, "create-sub")
		if r.code != ExitError || !strings.Contains(r.stderr, "pgmove: target: cannot reach 127.0.0.1:1") || strings.Contains(r.stderr, "dst_ip") {
			t.Errorf("create-sub with an unreachable --dst: %s", r)
		}
	})

	pgtest.Exec(t, p.src, "meta", `CREATE TABLE "odd
name" (id int PRIMARY KEY); INSERT INTO "odd
name" SELECT generate_series(1, 5);
		GRANT SELECT ON ALL TABLES IN SCHEMA public TO replicator`)
	p.must("migrate")

	t.Run("create-sub", func(t *testing.T) {
		r := p.must("create-sub", "--dry-run")
		if !strings.Contains(r.stdout, `subscription "sub_pg_meta_meta" exists, is enabled and has every published table: a rerun changes nothing`) {
			t.Errorf("create-sub --dry-run of a subscription in order: %s", r)
		}
		pgtest.Exec(t, p.dst, "test", "ALTER SUBSCRIPTION sub_pg_meta_meta DISABLE")
		r = p.must("create-sub", "--dry-run")
		if !strings.Contains(r.stdout, `create-sub would enable it`) || !strings.Contains(r.stdout, "ALTER SUBSCRIPTION") {
			t.Errorf("create-sub --dry-run of a disabled subscription: %s", r)
		}
		r = p.must("create-sub")
		if strings.TrimSpace(r.stdout) != `subscription "sub_pg_meta_meta" enabled` {
			t.Errorf("create-sub of a disabled subscription: %s", r)
		}
		// A table added to the publication: a refresh, and only that.
		pgtest.Exec(t, p.src, "meta", "CREATE TABLE later (id int PRIMARY KEY); INSERT INTO later VALUES (1); GRANT SELECT ON later TO replicator")
		pgtest.Exec(t, p.dst, "test", "CREATE TABLE later (id int PRIMARY KEY)")
		p.must("create-pub")
		r = p.must("create-sub", "--dry-run")
		if !strings.Contains(r.stdout, "create-sub would refresh it for 1 new published table(s)") || strings.Contains(r.stdout, "enable") {
			t.Errorf("create-sub --dry-run with a new published table: %s", r)
		}
		r = p.must("create-sub")
		if strings.TrimSpace(r.stdout) != `subscription "sub_pg_meta_meta" refreshed: 1 new published table(s) get PostgreSQL's initial copy` {
			t.Errorf("create-sub with a new published table: %s", r)
		}
	})

	t.Run("compare", func(t *testing.T) {
		p.waitLagZero()
		r := p.must("compare")
		if !strings.Contains(r.stdout, `[PASS] table    public."odd\nname"  source=5 target=5`) {
			t.Errorf("compare of a table named with a newline: %s", r)
		}
		for _, line := range strings.Split(r.stdout, "\n") {
			if line == `name"  source=5 target=5` || strings.HasPrefix(line, `name"`) {
				t.Errorf("compare printed the newline raw: %s", r)
			}
		}
	})
}
