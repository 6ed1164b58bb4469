package cli

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/pgmove/pgmove/internal/pgserver"
	"github.com/pgmove/pgmove/internal/pgtest"
)

// TestRolesAndGrants: --with-roles creates the source's roles on the target
// (without passwords), --with-grants restores owners and privileges.
func TestRolesAndGrants(t *testing.T) {
	p := newPair(t, 15, 18)
	pgtest.Exec(t, p.src, "meta", `
		CREATE ROLE app_owner NOLOGIN;
		CREATE ROLE "App Reader" LOGIN PASSWORD 'reader-secret' CONNECTION LIMIT 7;
		CREATE ROLE app_group NOLOGIN;
		GRANT app_group TO "App Reader";
		ALTER ROLE "App Reader" SET work_mem = '8MB';
		CREATE SCHEMA app AUTHORIZATION app_owner;
		CREATE TABLE app.orders (id int PRIMARY KEY, total numeric);
		ALTER TABLE app.orders OWNER TO app_owner;
		GRANT USAGE ON SCHEMA app TO app_group;
		GRANT SELECT ON app.orders TO app_group;
		INSERT INTO app.orders SELECT g, g FROM generate_series(1, 10) g;
		GRANT USAGE ON SCHEMA app TO replicator;
		GRANT SELECT ON ALL TABLES IN SCHEMA app TO replicator`)
	r := p.must("migrate", "--with-roles", "--with-grants")
	if !strings.Contains(r.stdout, "roles: 4 created on the target") {
		t.Errorf("roles: %s", r)
	}
	owner := pgtest.QueryValue[string](t, p.dst, "test", "SELECT tableowner::text FROM pg_tables WHERE schemaname = 'app' AND tablename = 'orders'")
	if owner != "app_owner" {
		t.Errorf("owner on the target: %q", owner)
	}
	if !pgtest.QueryValue[bool](t, p.dst, "test", `SELECT has_table_privilege('App Reader', 'app.orders', 'SELECT')`) {
		t.Error("the grant through app_group did not arrive")
	}
	if limit := pgtest.QueryValue[int32](t, p.dst, "test", `SELECT rolconnlimit FROM pg_roles WHERE rolname = 'App Reader'`); limit != 7 {
		t.Errorf("connection limit: %d", limit)
	}
	if pw := pgtest.QueryValue[bool](t, p.dst, "test", `SELECT rolpassword IS NULL FROM pg_authid WHERE rolname = 'App Reader'`); !pw {
		t.Error("the password was copied without --with-role-passwords")
	}
	p.must("progress", "--wait")
	assertSameRows(t, p.src, p.dst, "app.orders")
}

// TestNonSuperuserSource migrates with a source role that is no superuser
// (pgmove's connection and the replication user at once) and a target
// owner that is none either. check names each privilege the role lacks and
// the exact statement that gives it: each is taken away in turn, check must
// name it, the statement check printed is run, and check must pass again.
// Then the migration runs as these roles.
func TestNonSuperuserSource(t *testing.T) {
	p := newPair(t, 16, 16)
	pgtest.Exec(t, p.src, "meta", fmt.Sprintf(`
		CREATE ROLE app_owner NOLOGIN;
		CREATE ROLE migrator LOGIN REPLICATION BYPASSRLS PASSWORD '%s';
		REVOKE CONNECT ON DATABASE meta FROM PUBLIC;
		GRANT CONNECT, CREATE ON DATABASE meta TO migrator;
		CREATE SCHEMA app;
		GRANT USAGE ON SCHEMA app TO migrator;
		GRANT app_owner TO migrator;
		CREATE TABLE app.items (id bigserial PRIMARY KEY, s text NOT NULL);
		CREATE TABLE app.notes (id int PRIMARY KEY, item bigint, note text);
		ALTER TABLE app.notes ENABLE ROW LEVEL SECURITY;
		CREATE POLICY mine ON app.notes USING (note <> 'hidden');
		ALTER TABLE app.items OWNER TO app_owner;
		ALTER TABLE app.notes OWNER TO app_owner;
		CREATE SEQUENCE app.counter;
		SELECT setval('app.counter', 77);
		GRANT SELECT ON SEQUENCE app.counter TO migrator;
		INSERT INTO app.items (s) SELECT 'item ' || g FROM generate_series(1, 200) g;
		INSERT INTO app.notes SELECT g, g, CASE WHEN g %% 10 = 0 THEN 'hidden' ELSE 'note ' || g END FROM generate_series(1, 50) g`, pgtest.Password()))
	pgtest.Exec(t, p.dst, "test", fmt.Sprintf(`CREATE ROLE app_owner LOGIN PASSWORD '%s';
		ALTER DATABASE test OWNER TO app_owner;
		GRANT pg_create_subscription TO app_owner`, pgtest.Password()))
	yml, err := os.ReadFile(p.config)
	if err != nil {
		t.Fatal(err)
	}
	// The seed's keys, with the two roles: pgmove connects to the source
	// as migrator, which is also the replication user.
	cfg := strings.Replace(string(yml), "pg_replication_username: replicator", "pg_replication_username: migrator", 1)
	cfg += fmt.Sprintf("src_url: postgres://migrator@127.0.0.1:%d/meta\ndst_url: postgres://app_owner@127.0.0.1:%d/test\n", p.src.Port, p.dst.Port)
	if err := os.WriteFile(p.config, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	p.must("check")

	for _, c := range []struct {
		name   string
		side   *pgserver.Server
		db     string
		revoke string
		says   string // check's message names the privilege
		fix    string // and prints this statement
	}{
		{"LOGIN", p.src, "meta", "ALTER ROLE migrator NOLOGIN", `refused user "migrator"`, `ALTER ROLE "migrator" LOGIN;`},
		{"CONNECT", p.src, "meta", "REVOKE CONNECT ON DATABASE meta FROM migrator", `role "migrator" may not connect to database "meta"`, `GRANT CONNECT ON DATABASE "meta" TO "migrator";`},
		{"REPLICATION", p.src, "meta", "ALTER ROLE migrator NOREPLICATION", "lacks the REPLICATION attribute", `ALTER ROLE "migrator" REPLICATION;`},
		{"CREATE on the database", p.src, "meta", "REVOKE CREATE ON DATABASE meta FROM migrator", "cannot create a publication in database meta (no CREATE privilege)", `GRANT CREATE ON DATABASE "meta" TO "migrator";`},
		{"USAGE on the schema", p.src, "meta", "REVOKE USAGE ON SCHEMA app FROM migrator", "has no USAGE on the schema of 2 table(s)", `GRANT USAGE ON SCHEMA "app" TO "migrator";`},
		{"ownership of the tables", p.src, "meta", "REVOKE app_owner FROM migrator", "does not own 2 published table(s)", `GRANT app_owner TO "migrator";`},
		{"SELECT on a sequence", p.src, "meta", "REVOKE SELECT ON SEQUENCE app.counter FROM migrator", `cannot read 1 sequence(s) (app.counter): pg_dump and copy-seq need SELECT`, `GRANT SELECT ON ALL SEQUENCES IN SCHEMA "app" TO "migrator";`},
		{"BYPASSRLS", p.src, "meta", "ALTER ROLE migrator NOBYPASSRLS", "does not bypass row-level security, enabled on app.notes", `ALTER ROLE "migrator" BYPASSRLS;`},
		{"pg_create_subscription on the target", p.dst, "test", "REVOKE pg_create_subscription FROM app_owner", "lacks the privileges of pg_create_subscription", `GRANT pg_create_subscription TO "app_owner";`},
	} {
		t.Run(c.name, func(t *testing.T) {
			p.t = t
			pgtest.Exec(t, c.side, c.db, c.revoke)
			r := p.run("check")
			if r.code != ExitProblems || !strings.Contains(r.stdout+r.stderr, c.says) || !strings.Contains(r.stdout+r.stderr, c.fix) {
				t.Fatalf("check without %s: want exit 3, %q and the fix %q: %s", c.name, c.says, c.fix, r)
			}
			t.Logf("check without %s: %s", c.name, strings.TrimSpace(r.stderr))
			pgtest.Exec(t, c.side, c.db, c.fix)
			if r := p.run("check"); r.code != 0 {
				t.Fatalf("check after %s: %s", c.fix, r)
			}
		})
	}
	p.t = t

	p.must("migrate")
	pgtest.Exec(t, p.src, "meta", `UPDATE app.items SET s = s || '!' WHERE id % 3 = 0; INSERT INTO app.items (s) VALUES ('new');
		INSERT INTO app.notes VALUES (51, 201, 'hidden'), (52, 201, 'new note'); DELETE FROM app.notes WHERE id = 1`)
	p.must("progress", "--wait", "--timeout", "2m")
	p.must("copy-seq")
	assertSameRows(t, p.src, p.dst, "app.items", "app.notes")
	if v := pgtest.QueryValue[int64](t, p.dst, "test", "SELECT last_value FROM app.counter"); v != 77 {
		t.Errorf("app.counter on the target: %d, want 77", v)
	}
	if n := pgtest.QueryValue[int64](t, p.dst, "test", "SELECT count(*) FROM app.notes WHERE note = 'hidden'"); n != 6 {
		t.Errorf("%d rows the source's policy hides on the target, want 6: BYPASSRLS let the copy see them all", n)
	}
	if o := pgtest.QueryValue[string](t, p.dst, "test", `SELECT subowner::regrole::text FROM pg_subscription`); o != "app_owner" {
		t.Errorf("subscription owner %q, want app_owner", o)
	}
	p.must("cleanup")
	if left := p.objectsLeft(); len(left) > 0 {
		t.Errorf("cleanup left %v", left)
	}
}
