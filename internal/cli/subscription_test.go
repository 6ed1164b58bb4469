package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pgmove/pgmove/internal/catalog"
	"github.com/pgmove/pgmove/internal/cluster"
	"github.com/pgmove/pgmove/internal/config"
	"github.com/pgmove/pgmove/internal/pgserver"
	"github.com/pgmove/pgmove/internal/pgtest"
	"github.com/pgmove/pgmove/internal/replication"
)

// subOptions reads the target's subscription settings as text:
// substream, subbinary, and subrunasowner (16+, else "-").
func subOptions(t *testing.T, dst *pgserver.Server) (stream, binary, runAsOwner string) {
	t.Helper()
	row := pgtest.QueryRows(t, dst, "test", `SELECT substream::text, subbinary::text FROM pg_subscription`)
	if len(row) != 1 {
		t.Fatalf("want one subscription on the target, got %d", len(row))
	}
	runAsOwner = "-"
	if dst.Major >= 16 {
		runAsOwner = pgtest.QueryValue[string](t, dst, "test", `SELECT subrunasowner::text FROM pg_subscription`)
	}
	return row[0][0].(string), row[0][1].(string), runAsOwner
}

// TestSubscriptionOptions16To18: between two 16+ servers the subscription
// streams in parallel, in binary (every column's type allows it) and with
// run_as_owner = false, each stated; changes of every kind of column
// replicate in that format.
func TestSubscriptionOptions16To18(t *testing.T) {
	p := newPair(t, 16, 18)
	pgtest.Exec(t, p.src, "meta", `CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
		CREATE DOMAIN positive AS integer CHECK (VALUE > 0);
		CREATE TABLE items (id bigint PRIMARY KEY, n numeric(12,3), s text, a integer[], ts timestamptz,
			m mood, r int4range, j jsonb, u uuid, b bytea, d positive, c character(8));
		INSERT INTO items SELECT g, g / 7.0, 'item ' || g, ARRAY[g, g + 1], '2026-01-01'::timestamptz + g * interval '1 hour',
			(ARRAY['sad','ok','happy']::mood[])[g % 3 + 1], int4range(g, g + 10), jsonb_build_object('g', g),
			md5(g::text)::uuid, decode(md5(g::text), 'hex'), g, 'c' || g FROM generate_series(1, 500) g;
		GRANT SELECT ON ALL TABLES IN SCHEMA public TO replicator`)
	p.must("migrate")
	if stream, binary, owner := subOptions(t, p.dst); stream != "p" || binary != "true" || owner != "false" {
		t.Errorf("subscription on 18 from 16: streaming %q, binary %s, run_as_owner %s; want p, true, false", stream, binary, owner)
	}
	pgtest.Exec(t, p.src, "meta", `INSERT INTO items VALUES (1001, 1.5, 'new', '{7,8}', now(), 'happy', '[1,2)', '{"x": [1]}',
			gen_random_uuid(), '\x00ff', 9, 'ab');
		UPDATE items SET n = n * 2, s = s || ' changed', a = a || 0, m = 'ok', j = j || '{"u": true}' WHERE id % 5 = 0;
		DELETE FROM items WHERE id % 11 = 0`)
	p.must("progress", "--wait", "--timeout", "2m")
	assertSameRows(t, p.src, p.dst, "items")
	if r := p.must("compare", "--checksum"); !strings.Contains(r.stdout, "equal:") {
		t.Errorf("compare: %s", r)
	}

	// What makes binary unsafe, judged on the same two servers: a type
	// whose binary form carries OIDs of the cluster (an array of an enum, a
	// composite), no binary I/O (aclitem), or other types on each side.
	ddl := `CREATE TYPE pair2 AS (x integer, y text);
		CREATE TABLE b_enum_array (id int PRIMARY KEY, v mood[]);
		CREATE TABLE b_composite (id int PRIMARY KEY, v pair2);
		CREATE TABLE b_no_binary_io (id int PRIMARY KEY, v aclitem);`
	pgtest.Exec(t, p.src, "meta", ddl+"CREATE TABLE b_types_differ (id int PRIMARY KEY, v smallint)")
	pgtest.Exec(t, p.dst, "test", ddl+"CREATE TABLE b_types_differ (id int PRIMARY KEY, v integer)")
	src, dst := conn(t, p.src, "meta", config.Source), conn(t, p.dst, "test", config.Target)
	for _, c := range []struct{ table, why string }{
		{"items", ""},
		{"b_enum_array", "type mood[]"},
		{"b_composite", "type pair2"},
		{"b_no_binary_io", "type aclitem"},
		{"b_types_differ", "smallint on the source, integer on the target"},
	} {
		ok, why, err := replication.BinarySafe(context.Background(), src, dst, []catalog.QualifiedName{{Schema: "public", Name: c.table}})
		if err != nil {
			t.Fatal(err)
		}
		if ok != (c.why == "") || !strings.Contains(why, c.why) {
			t.Errorf("binary for %s: %v (%q), want %v (%q)", c.table, ok, why, c.why == "", c.why)
		}
	}

	// A table that joins the publication with such a type turns the
	// subscription back to text before PostgreSQL copies it.
	for _, side := range []struct {
		s  *pgserver.Server
		db string
	}{{p.src, "meta"}, {p.dst, "test"}} {
		pgtest.Exec(t, side.s, side.db, "DROP TABLE b_enum_array, b_composite, b_types_differ; DROP TYPE pair2")
	}
	pgtest.Exec(t, p.src, "meta", `INSERT INTO b_no_binary_io SELECT g, makeaclitem('postgres'::regrole, 'postgres'::regrole, 'SELECT', g % 2 = 0)
		FROM generate_series(1, 10) g;
		GRANT SELECT ON b_no_binary_io TO replicator`)
	p.must("create-pub")
	p.must("create-sub")
	if _, binary, _ := subOptions(t, p.dst); binary != "false" {
		t.Errorf("after an aclitem table joined: binary %s, want false", binary)
	}
	pgtest.Exec(t, p.src, "meta", `INSERT INTO b_no_binary_io VALUES (11, makeaclitem('postgres'::regrole, 'postgres'::regrole, 'UPDATE', false));
		UPDATE items SET s = 'after' WHERE id = 1`)
	p.must("progress", "--wait", "--timeout", "2m")
	assertSameRows(t, p.src, p.dst, "items", "b_no_binary_io")
}

// TestSubscriptionStreamingOff13To18: a 13 source cannot stream
// in-progress transactions; the subscription on 18, whose default is
// streaming = parallel, says off, and replicates.
func TestSubscriptionStreamingOff13To18(t *testing.T) {
	p := newPair(t, 13, 18)
	pgtest.Exec(t, p.src, "meta", `CREATE TABLE items (id bigint PRIMARY KEY, s text);
		INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 100) g;
		GRANT SELECT ON ALL TABLES IN SCHEMA public TO replicator`)
	p.must("migrate")
	if stream, binary, owner := subOptions(t, p.dst); stream != "f" || binary != "false" || owner != "false" {
		t.Errorf("subscription on 18 from 13: streaming %q, binary %s, run_as_owner %s; want f, false, false", stream, binary, owner)
	}
	pgtest.Exec(t, p.src, "meta", `UPDATE items SET s = s || '!' WHERE id % 3 = 0; INSERT INTO items VALUES (101, 'new')`)
	p.must("progress", "--wait", "--timeout", "2m")
	assertSameRows(t, p.src, p.dst, "items")
}

// conn opens a pgmove connection to db as the superuser.
func conn(t *testing.T, s *pgserver.Server, db string, side config.Side) *cluster.Conn {
	t.Helper()
	cfg, err := s.ConnConfig(db)
	if err != nil {
		t.Fatal(err)
	}
	c, err := cluster.ConnectConfig(context.Background(), config.Endpoint{Side: side, DB: db}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// TestNonSuperuserTargetOwner: a target owner that is not a superuser,
// member of pg_create_subscription and owner of the target database, runs
// copy-schema and create-sub (the snapshot copy and its subscription) on a
// 16 target; check names what it lacks first: pg_create_subscription on 16,
// a superuser on 15.
func TestNonSuperuserTargetOwner(t *testing.T) {
	p := newPair(t, 15, 16)
	pgtest.Exec(t, p.src, "meta", `CREATE TABLE items (id bigint PRIMARY KEY, s text NOT NULL);
		CREATE TABLE notes (id bigint PRIMARY KEY, item bigint, note text);
		INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 200) g;
		INSERT INTO notes SELECT g, g, 'note ' || g FROM generate_series(1, 50) g;
		GRANT SELECT ON ALL TABLES IN SCHEMA public TO replicator`)
	owner := func(dst *pgserver.Server) {
		pgtest.Exec(t, dst, "test", fmt.Sprintf(`CREATE ROLE app_owner LOGIN PASSWORD '%s';
			ALTER DATABASE test OWNER TO app_owner`, pgtest.Password()))
	}
	owner(p.dst)
	dstURL := func() string {
		return fmt.Sprintf("dst_url: postgres://app_owner@127.0.0.1:%d/test\n", p.dst.Port)
	}
	p.writeConfig(dstURL())

	r := p.run("check")
	if r.code != ExitProblems || !strings.Contains(r.stdout, "lacks the privileges of pg_create_subscription") ||
		!strings.Contains(r.stdout, `GRANT pg_create_subscription TO "app_owner";`) {
		t.Fatalf("check on 16 without pg_create_subscription: %s", r)
	}
	pgtest.Exec(t, p.dst, "test", "GRANT pg_create_subscription TO app_owner")
	// Without a password for the replication user, the non-superuser's
	// subscription could not log in (password_required).
	pw := strings.NewReplacer(`\`, `\\`, `:`, `\:`).Replace(pgtest.Password())
	noRepl := filepath.Join(t.TempDir(), "pgpass")
	if err := os.WriteFile(noRepl, []byte("127.0.0.1:*:*:postgres:"+pw+"\n127.0.0.1:*:*:app_owner:"+pw+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	withRepl := os.Getenv("PGPASSFILE")
	t.Setenv("PGPASSFILE", noRepl)
	r = p.run("check")
	if r.code != ExitProblems || !strings.Contains(r.stdout, "must log in to the source with a password (password_required)") {
		t.Fatalf("check without the replication user's password: %s", r)
	}
	t.Setenv("PGPASSFILE", withRepl)
	p.must("check")
	p.must("copy-schema")
	p.must("create-pub")
	p.must("create-sub")
	if o := pgtest.QueryValue[string](t, p.dst, "test", `SELECT subowner::regrole::text FROM pg_subscription`); o != "app_owner" {
		t.Errorf("subscription owner %q, want app_owner", o)
	}
	pgtest.Exec(t, p.src, "meta", `UPDATE items SET s = s || '!' WHERE id % 3 = 0; INSERT INTO items VALUES (201, 'new');
		INSERT INTO notes VALUES (51, 201, 'new note'); DELETE FROM notes WHERE id = 1`)
	p.must("progress", "--wait", "--timeout", "2m")
	assertSameRows(t, p.src, p.dst, "items", "notes")
	p.must("cleanup")
	if left := p.objectsLeft(); len(left) > 0 {
		t.Errorf("cleanup left %v", left)
	}

	// On 15, only a superuser can subscribe: check says so and what to do.
	p.dst = pgtest.Start(t, 15)
	pgtest.CreateDB(t, p.dst, "test")
	owner(p.dst)
	p.writeConfig(dstURL())
	r = p.run("check")
	if r.code != ExitProblems || !strings.Contains(r.stdout, "PostgreSQL 15 lets only superusers create subscriptions") ||
		!strings.Contains(r.stdout, "connect to the target as a superuser") {
		t.Fatalf("check on 15 as a non-superuser: %s", r)
	}
}
