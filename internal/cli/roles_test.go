package cli

import (
	"strings"
	"testing"

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
