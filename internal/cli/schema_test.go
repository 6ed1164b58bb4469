package cli

import (
	"fmt"
	"strings"
	"testing"

	"github.com/pgmove/pgmove/internal/pgserver"
	"github.com/pgmove/pgmove/internal/pgtest"
)

// largeSchema is a schema nobody here wrote, after PostgreSQL's regression
// database: a three-level inheritance tree whose root gains a column after
// the children exist (so b_star is (id, class, aa, bb, a) on the source,
// and a plain dump and restore makes it (id, class, aa, a, bb)), a dropped
// column, an inherited CHECK constraint, a typed table, a cast over a
// custom base type (whose shell type has no OID in the archive), a policy
// for a role the target lacks, and enough tables (over 64) for the
// parallel table restore pgmove used to run.
const largeSchema = `
CREATE TABLE a_star (id int PRIMARY KEY, class char, a int4);
CREATE TABLE b_star (b text) INHERITS (a_star);
CREATE TABLE c_star (c name) INHERITS (a_star);
CREATE TABLE d_star (d float8) INHERITS (b_star, c_star);
ALTER TABLE b_star ADD PRIMARY KEY (id);
ALTER TABLE c_star ADD PRIMARY KEY (id);
ALTER TABLE d_star ADD PRIMARY KEY (id);
ALTER TABLE a_star RENAME COLUMN a TO aa;
ALTER TABLE b_star RENAME COLUMN b TO bb;
ALTER TABLE b_star ADD COLUMN junk int;
ALTER TABLE b_star DROP COLUMN junk;
ALTER TABLE a_star ADD COLUMN a int4 NOT NULL DEFAULT 1;
ALTER TABLE a_star ADD CONSTRAINT a_pos CHECK (a > 0);
INSERT INTO a_star VALUES (1, 'a', 10, 2);
INSERT INTO b_star (id, class, aa, bb, a) VALUES (2, 'b', 20, 'bee', 3);
INSERT INTO c_star (id, class, aa, c, a) VALUES (3, 'c', 30, 'sea', 4);
INSERT INTO d_star (id, class, aa, bb, c, d, a) VALUES (4, 'd', 40, 'dee', 'dc', 4.5, 5);

CREATE TYPE person_t AS (id int, name text);
CREATE TABLE persons OF person_t (PRIMARY KEY (id));
INSERT INTO persons VALUES (1, 'ann'), (2, 'bob');

CREATE TYPE casttesttype;
CREATE FUNCTION casttesttype_in(cstring) RETURNS casttesttype AS 'textin' LANGUAGE internal STRICT IMMUTABLE;
CREATE FUNCTION casttesttype_out(casttesttype) RETURNS cstring AS 'textout' LANGUAGE internal STRICT IMMUTABLE;
CREATE TYPE casttesttype (internallength = variable, input = casttesttype_in, output = casttesttype_out, alignment = int4);
CREATE FUNCTION casttestfunc(casttesttype) RETURNS int4 LANGUAGE SQL AS $$ SELECT 1; $$;
CREATE CAST (casttesttype AS int4) WITH FUNCTION casttestfunc(casttesttype);
CREATE TABLE casts (id int PRIMARY KEY, v casttesttype);
INSERT INTO casts VALUES (1, 'one'), (2, 'two');

CREATE ROLE regress_rls_group1 NOLOGIN;
CREATE POLICY p1 ON persons TO regress_rls_group1 USING (true);
ALTER TABLE persons ENABLE ROW LEVEL SECURITY;
CREATE ROLE regress_owner NOLOGIN;
CREATE ROLE regress_reader NOLOGIN;
CREATE TABLE owned (id int PRIMARY KEY);
ALTER TABLE owned OWNER TO regress_owner;
GRANT SELECT ON owned TO regress_reader;

DO $$ BEGIN FOR i IN 1..70 LOOP
	EXECUTE format('CREATE TABLE filler_%s (id int PRIMARY KEY)', i);
	EXECUTE format('INSERT INTO filler_%s VALUES (%s)', i, i);
END LOOP; END $$;
`

// columnOrders is every user table's live columns in attnum order, with
// their inheritance flags (attislocal, attinhcount), and its CHECK
// constraints with theirs.
func columnOrders(t *testing.T, s *pgserver.Server, db string) map[string]string {
	t.Helper()
	rows := pgtest.QueryRows(t, s, db, `
		SELECT c.oid::regclass::text,
		       (SELECT string_agg(a.attname || ':' || a.attislocal || ':' || a.attinhcount, ', ' ORDER BY a.attnum)
		        FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped),
		       COALESCE((SELECT string_agg(k.conname || ':' || k.conislocal || ':' || k.coninhcount, ', ' ORDER BY k.conname)
		        FROM pg_constraint k WHERE k.conrelid = c.oid AND k.contype = 'c'), '')
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pgmove') AND n.nspname !~ '^pg_toast'`) // pgmove: the copy ledger
	out := map[string]string{}
	for _, r := range rows {
		out[r[0].(string)] = r[1].(string) + " | " + r[2].(string)
	}
	return out
}

// TestLargeSchema: the regression-like schema migrates with the default
// --jobs through migrate: check first blocks on the policy's missing role
// with the fix; once the role exists, the schema restores in dependency
// order, every table keeps the source's column order, compare --schema is
// equal and the rows are the same.
func TestLargeSchema(t *testing.T) {
	for _, pv := range [][2]int{{13, 15}, {15, 17}} {
		t.Run(fmt.Sprintf("%d-to-%d", pv[0], pv[1]), func(t *testing.T) {
			p := newPair(t, pv[0], pv[1])
			pgtest.Exec(t, p.src, "meta", largeSchema)
			grantReplicator(t, p.src)

			r := p.run("migrate")
			if r.code != ExitProblems || !strings.Contains(r.stdout, "regress_rls_group1") ||
				!strings.Contains(r.stdout, `CREATE ROLE "regress_rls_group1"`) || !strings.Contains(r.stdout, "--with-roles") {
				t.Fatalf("migrate should block on the policy's role missing on the target, with the fix: %s", r)
			}
			if n := p.targetTables(); n != 0 {
				t.Fatalf("the blocked migrate restored %d table(s)", n)
			}
			if left := p.objectsLeft(); len(left) > 0 {
				t.Fatalf("the blocked migrate left %v", left)
			}

			// What the restore carries decides which roles must exist:
			// owners with --with-owners, grantees with --with-grants, none
			// with --with-roles (it creates them).
			for _, c := range []struct {
				flag           string
				owner, grantee bool
			}{{"--with-owners", true, false}, {"--with-grants", true, true}} {
				r := p.run("check", "--no-probe", c.flag)
				if r.code != ExitProblems || strings.Contains(r.stdout, "regress_owner") != c.owner || strings.Contains(r.stdout, "regress_reader") != c.grantee ||
					(c.owner && !strings.Contains(r.stdout, `owner of table owned`)) {
					t.Errorf("check %s: %s", c.flag, r)
				}
			}
			if r := p.run("check", "--no-probe", "--with-roles", "--with-grants"); r.code != 0 || strings.Contains(r.stdout, "missing on the target") {
				t.Errorf("check --with-roles should find no missing role: %s", r)
			}

			pgtest.Exec(t, p.dst, "test", "CREATE ROLE regress_rls_group1 NOLOGIN")
			if r := p.run("check", "--no-probe"); r.code != 0 || strings.Contains(r.stdout, "regress_owner") {
				t.Fatalf("without --with-owners, owners are not restored and their roles need not exist: %s", r)
			}
			// A restore that fails midway (a type on the target holds the
			// name of a table to create) leaves nothing behind, so the
			// next migrate starts clean once the cause is gone.
			pgtest.Exec(t, p.dst, "test", "CREATE TYPE filler_50 AS (x int)")
			r = p.run("migrate")
			if r.code != 1 || !strings.Contains(r.stderr, "filler_50") {
				t.Fatalf("migrate should stop on the type holding filler_50's name: %s", r)
			}
			if n := p.targetTables(); n != 0 {
				t.Fatalf("the failed schema restore left %d table(s) on the target: %s", n, r)
			}
			pgtest.Exec(t, p.dst, "test", "DROP TYPE filler_50")
			p.must("migrate")
			p.must("progress", "--wait")
			if r := p.run("compare", "--schema"); r.code != 0 {
				t.Errorf("compare --schema: %s", r)
			}
			src, dst := columnOrders(t, p.src, "meta"), columnOrders(t, p.dst, "test")
			if len(src) != len(dst) {
				t.Errorf("%d tables on the source, %d on the target", len(src), len(dst))
			}
			for tbl, cols := range src {
				if dst[tbl] != cols {
					t.Errorf("%s: source columns %s, target %s", tbl, cols, dst[tbl])
				}
			}
			assertSameRows(t, p.src, p.dst, "a_star", "b_star", "c_star", "d_star", "persons", "casts", "filler_70")
			if got := pgtest.QueryValue[string](t, p.dst, "test", "SELECT string_agg(v::int4::text, ',' ORDER BY id) FROM casts"); got != "1,1" {
				t.Errorf("the cast on the target: %q", got)
			}
			p.must("cleanup")

			// copy-schema on its own (one transaction, no --jobs) keeps the
			// column order too.
			pgtest.CreateDB(t, p.dst, "test2")
			if r := pgmove(t, "--src", fmt.Sprintf("postgres://postgres@127.0.0.1:%d/meta", p.src.Port),
				"--dst", fmt.Sprintf("postgres://postgres@127.0.0.1:%d/test2", p.dst.Port), "copy-schema"); r.code != 0 {
				t.Fatalf("copy-schema into test2: %s", r)
			}
			if got := columnOrders(t, p.dst, "test2"); fmt.Sprint(got) != fmt.Sprint(src) {
				t.Errorf("copy-schema: source columns %v, target %v", src, got)
			}

			// A target whose child has another column order (made by a
			// plain dump and restore, say): check warns, since replication
			// goes on, and compare --schema reports the difference.
			pgtest.Exec(t, p.src, "meta", `CREATE TABLE ord_p (id int PRIMARY KEY); CREATE TABLE ord_c (b int) INHERITS (ord_p);
				ALTER TABLE ord_c ADD PRIMARY KEY (id); ALTER TABLE ord_p ADD COLUMN z int`)
			pgtest.Exec(t, p.dst, "test", `CREATE TABLE ord_p (id int PRIMARY KEY, z int); CREATE TABLE ord_c (b int) INHERITS (ord_p);
				ALTER TABLE ord_c ADD PRIMARY KEY (id)`)
			r = p.run("check", "--no-probe")
			if !strings.Contains(r.stdout, "WARNING target public.ord_c: columns in another order than on the source") || strings.Contains(r.stdout, "ERROR   target public.ord_c") {
				t.Errorf("check should warn about ord_c's column order, and not block on it: %s", r)
			}
			r = p.run("compare", "--schema")
			if r.code != ExitProblems || !strings.Contains(r.stdout, `columns in order: id, b, z`) || !strings.Contains(r.stdout, `columns in order: id, z, b`) {
				t.Errorf("compare --schema should report ord_c's column order: %s", r)
			}
		})
	}
}
