package schema

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgmove/pgmove/internal/cluster"
	"github.com/pgmove/pgmove/internal/config"
	"github.com/pgmove/pgmove/internal/fixture"
	"github.com/pgmove/pgmove/internal/pgserver"
	"github.com/pgmove/pgmove/internal/pgtest"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// TestDiff restores the fixture from an old source into a newer target the
// way copy-schema does and expects no difference; then it makes three
// changes and expects exactly those, with fixes that remove them; then it
// rebuilds the whole fixture on an empty database from Diff's fixes alone.
func TestDiff(t *testing.T) {
	for _, pair := range [][2]int{{13, 18}, {15, 17}} {
		t.Run(fmt.Sprintf("%d-to-%d", pair[0], pair[1]), func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			srv, dsrv := pgtest.Start(t, pair[0]), pgtest.Start(t, pair[1])
			pgtest.CreateDB(t, srv, "meta")
			pgtest.CreateDB(t, dsrv, "test")
			pgtest.CreateDB(t, dsrv, "empty")
			if err := fixture.Load(ctx, pgtest.Connect(t, srv, "meta"), pair[0]); err != nil {
				t.Fatal(err)
			}
			restoreSchema(t, ctx, srv, "meta", dsrv, "test")
			src := connect(t, srv, "meta", config.Source)
			dst := connect(t, dsrv, "test", config.Target)

			start := time.Now()
			ds, err := Diff(ctx, src, dst)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("diff after restore: %v", time.Since(start).Round(time.Millisecond))
			if b := Blocking(ds); len(b) > 0 {
				t.Fatalf("differences right after the restore:\n%s", report(b))
			}
			for _, d := range ds {
				if d.Kind != "extension" {
					t.Errorf("a warning that is not an extension version:\n%s", report([]Difference{d}))
				}
			}
			t.Logf("warnings:\n%s", report(ds))

			pgtest.Exec(t, srv, "meta", `ALTER TABLE fixture.products ADD COLUMN weight_kg numeric(8,3) NOT NULL DEFAULT 0.5`)
			pgtest.Exec(t, dsrv, "test", `DROP INDEX fixture.products_tags`)
			pgtest.Exec(t, srv, "meta", `CREATE OR REPLACE FUNCTION fixture.price_with_tax(amount numeric) RETURNS numeric
				LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$ SELECT round(amount * 1.25, 2) $$`)
			ds, err = Diff(ctx, src, dst)
			if err != nil {
				t.Fatal(err)
			}
			got := Blocking(ds)
			want := []Difference{
				{Kind: "function", Object: "fixture.price_with_tax(amount numeric)"},
				{Kind: "column", Object: "fixture.products.weight_kg", Source: "numeric(8,3) NOT NULL DEFAULT 0.5",
					Fix: `ALTER TABLE "fixture"."products" ADD COLUMN "weight_kg" numeric(8,3) NOT NULL DEFAULT 0.5;`},
				{Kind: "index", Object: "fixture.products_tags", Source: "CREATE INDEX products_tags ON fixture.products USING gin (tags)",
					Fix: "CREATE INDEX products_tags ON fixture.products USING gin (tags);"},
			}
			if len(got) != len(want) {
				t.Fatalf("want %d differences, got %d:\n%s", len(want), len(got), report(got))
			}
			for i, w := range want {
				g := got[i]
				if g.Kind != w.Kind || g.Object != w.Object {
					t.Errorf("difference %d: got %s %s, want %s %s", i, g.Kind, g.Object, w.Kind, w.Object)
				}
				if w.Fix != "" && (g.Source != w.Source || g.Target != "" || g.Fix != w.Fix) {
					t.Errorf("difference %d:\n%s\nwant source %q, fix %q", i, report([]Difference{g}), w.Source, w.Fix)
				}
			}
			if f := got[0]; !strings.HasPrefix(f.Fix, "CREATE OR REPLACE FUNCTION fixture.price_with_tax(amount numeric)") ||
				!strings.Contains(f.Fix, "1.25") || !strings.Contains(f.Target, "1.2,") {
				t.Errorf("function fix:\n%s", report([]Difference{f}))
			}
			var text bytes.Buffer
			WriteDiff(&text, ds)
			t.Logf("compare --schema would print:\n%s", text.String())

			applyFixes(t, ctx, dst, ds)
			if ds, err = Diff(ctx, src, dst); err != nil {
				t.Fatal(err)
			} else if b := Blocking(ds); len(b) > 0 {
				t.Errorf("differences left after the fixes:\n%s", report(b))
			}

			// Every object of the fixture, made from fixes alone.
			empty := connect(t, dsrv, "empty", config.Target)
			ds, err = Diff(ctx, src, empty)
			if err != nil {
				t.Fatal(err)
			}
			applyFixes(t, ctx, empty, ds)
			if ds, err = Diff(ctx, src, empty); err != nil {
				t.Fatal(err)
			} else if b := Blocking(ds); len(b) > 0 {
				t.Errorf("differences left after rebuilding an empty database from the fixes:\n%s", report(b))
			}
		})
	}
}

func connect(t *testing.T, s *pgserver.Server, db string, side config.Side) *cluster.Conn {
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

// restoreSchema copies a database's schema with pgmove's own pg_dump and
// pg_restore steps.
func restoreSchema(t *testing.T, ctx context.Context, from *pgserver.Server, fromDB string, to *pgserver.Server, toDB string) {
	t.Helper()
	dump, restore, err := Tools(ctx, from.Major)
	if err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "PGPASSFILE="+pgtest.PassFile(t))
	a, err := Dump(ctx, dump, restore, cluster.ChildConn{Conninfo: from.DSN(fromDB), Env: env}, t.TempDir(), DumpOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Restore(ctx, cluster.ChildConn{Conninfo: to.DSN(toDB), Env: env}, RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
}

// applyFixes runs every fix on the target in one transaction.
func applyFixes(t *testing.T, ctx context.Context, c *cluster.Conn, ds []Difference) {
	t.Helper()
	tx, err := c.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(ctx, Script(ds)); err != nil {
		t.Fatalf("run the fixes: %v\n%s", err, Script(ds))
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
}

func report(ds []Difference) string {
	var b bytes.Buffer
	WriteDiff(&b, ds)
	return b.String()
}

// TestCompareOffline compares hand-made catalogues covering every kind and
// fix, and the report a DBA reads, against testdata/diff.golden.
func TestCompareOffline(t *testing.T) {
	src, dst := offlineCatalogues()
	ds := compareSchemas(src, dst)
	var b bytes.Buffer
	WriteDiff(&b, ds)
	b.WriteString("\n---- script\n")
	b.WriteString(Script(ds))
	golden(t, "diff.golden", b.Bytes())
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (go test -update rewrites it):\n%s", path, strings.Join(lineDiff(strings.Split(string(want), "\n"), strings.Split(string(got), "\n")), "\n"))
	}
}

func newInfo(version int) *schemaInfo {
	return &schemaInfo{
		version: version, schemas: map[string]int64{}, extensions: map[string]extension{}, extVersions: map[string]map[string]bool{},
		collations: map[qname]*collationDef{}, types: map[qname]*typeDef{}, sequences: map[qname]*sequenceDef{},
		tables: map[qname]*tableDef{}, columns: map[qname][]*columnDef{}, constraints: map[member]*constraintDef{},
		indexes: map[qname]*indexDef{}, views: map[qname]*viewDef{}, functions: map[funcKey]*functionDef{},
		triggers: map[member]*triggerDef{}, policies: map[member]*policyDef{},
	}
}

// offlineCatalogues builds a source and a target that differ in every way
// Diff knows; OIDs give the order.
func offlineCatalogues() (src, dst *schemaInfo) {
	src, dst = newInfo(150000), newInfo(160000)
	app, old := qname{"app", "orders"}, qname{"app", "legacy"}
	src.schemas["app"], dst.schemas["app"] = 1, 1
	src.schemas["New Schema"] = 2
	dst.schemas["leftover"] = 3

	src.extensions["hstore"] = extension{name: "hstore", version: "1.7", schema: "public", oid: 10}
	dst.extensions["hstore"] = extension{name: "hstore", version: "1.8", schema: "public", oid: 10}
	src.extensions["citext"] = extension{name: "citext", version: "1.6", schema: "ext", oid: 11}
	dst.extensions["citext"] = extension{name: "citext", version: "1.4", schema: "ext", oid: 11}
	dst.extVersions["citext"] = map[string]bool{"1.4": true, "1.5": true, "1.6": true}
	src.extensions["ltree"] = extension{name: "ltree", version: "1.2", schema: "public", oid: 12}
	dst.extVersions["ltree"] = map[string]bool{"1.2": true, "1.3": true}

	src.collations[qname{"app", "ci"}] = &collationDef{provider: "i", locale: "und-u-ks-level2", oid: 15}

	mood := qname{"app", "mood"}
	src.types[mood] = &typeDef{kind: "e", labels: []string{"sad", "meh", "ok", "happy"}, oid: 20}
	dst.types[mood] = &typeDef{kind: "e", labels: []string{"sad", "ok"}, oid: 20}
	zip := qname{"app", "zip"}
	src.types[zip] = &typeDef{kind: "d", base: "text", defaultExpr: "'00000'::text", notNull: true,
		checks: []string{`zip_format CHECK ((VALUE ~ '^\d{5}$'::text))`}, oid: 21}
	dst.types[zip] = &typeDef{kind: "d", base: "text", checks: []string{`zip_format CHECK ((VALUE ~ '^\d+$'::text))`}, oid: 21}
	addr := qname{"app", "address"}
	src.types[addr] = &typeDef{kind: "c", attributes: []string{"street text", "city text", `"Zip Code" app.zip`}, oid: 22}
	dst.types[addr] = &typeDef{kind: "c", attributes: []string{"street character varying(40)", "city text"}, oid: 22}
	src.types[qname{"app", "span"}] = &typeDef{kind: "r", base: "double precision", rangeOptions: "SUBTYPE_DIFF = float8mi", oid: 23}

	fk := funcKey{"app", "tax", "amount numeric"}
	src.functions[fk] = &functionDef{kind: "f", def: "CREATE OR REPLACE FUNCTION app.tax(amount numeric)\n RETURNS numeric\n LANGUAGE sql\nAS $function$ SELECT amount * 1.25 $function$\n", oid: 30}
	dst.functions[fk] = &functionDef{kind: "f", def: "CREATE OR REPLACE FUNCTION app.tax(amount numeric)\n RETURNS numeric\n LANGUAGE sql\nAS $function$ SELECT amount * 1.2 $function$\n", oid: 30}
	src.functions[funcKey{"app", "concat_all", "text"}] = &functionDef{kind: "a", def: "SFUNC = textcat, STYPE = text, INITCOND = ''", oid: 31}
	dst.functions[funcKey{"app", "gone", ""}] = &functionDef{kind: "p", def: "CREATE OR REPLACE PROCEDURE app.gone()\n LANGUAGE sql\nAS $procedure$ SELECT 1 $procedure$\n", oid: 32}

	seq := qname{"app", "doc_no"}
	src.sequences[seq] = &sequenceDef{typ: "integer", start: 5000, inc: 1, min: 1, max: 2147483647, cache: 1, oid: 40}
	dst.sequences[seq] = &sequenceDef{typ: "bigint", start: 1, inc: 1, min: 1, max: 9223372036854775807, cache: 1, oid: 40}
	src.sequences[qname{"app", "orders_id_seq"}] = &sequenceDef{typ: "bigint", start: 100, inc: 10, min: 1, max: 9223372036854775807, cache: 1,
		owner: member{app, "id"}, identity: true, oid: 41}
	src.sequences[qname{"app", "legacy_n_seq"}] = &sequenceDef{typ: "integer", start: 1, inc: 1, min: 1, max: 2147483647, cache: 1,
		owner: member{old, "n"}, oid: 42}
	dst.sequences[qname{"app", "spare"}] = &sequenceDef{typ: "bigint", start: 1, inc: 1, min: 1, max: 9223372036854775807, cache: 1, oid: 43}

	src.tables[app] = &tableDef{kind: "r", persistence: "p", options: []string{"fillfactor=80"}, rls: true, replIdent: "i", identIndex: "orders_key", oid: 50}
	dst.tables[app] = &tableDef{kind: "r", persistence: "u", options: []string{"autovacuum_enabled=false"}, replIdent: "d", oid: 50}
	src.tables[old] = &tableDef{kind: "r", persistence: "p", replIdent: "f", oid: 51}
	parts := qname{"app", "events"}
	src.tables[parts] = &tableDef{kind: "p", persistence: "p", partKey: "RANGE (at)", replIdent: "d", oid: 52}
	src.tables[qname{"app", "events_2024"}] = &tableDef{kind: "r", persistence: "p", partitionOf: "app.events",
		bound: "FOR VALUES FROM ('2024-01-01') TO ('2025-01-01')", replIdent: "d", oid: 53, depth: 1}
	dst.tables[parts] = &tableDef{kind: "p", persistence: "p", partKey: "LIST (at)", replIdent: "d", oid: 52}

	src.columns[app] = []*columnDef{
		{name: "id", typ: "bigint", identity: "a", notNull: true, identityOptions: "SEQUENCE NAME app.orders_id_seq INCREMENT BY 10 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 100 CACHE 1 NO CYCLE", tableOID: 50, num: 1},
		{name: "status", typ: "text", notNull: true, defaultExpr: "'new'::text", collation: `"C"`, tableOID: 50, num: 2},
		{name: "total", typ: "numeric", genExpr: "(price * qty)", generated: "s", tableOID: 50, num: 3},
		{name: "Note", typ: "text", storage: "e", tableOID: 50, num: 4},
		{name: "weight", typ: "numeric(8,3)", notNull: true, defaultExpr: "0.5", tableOID: 50, num: 5},
	}
	dst.columns[app] = []*columnDef{
		{name: "id", typ: "integer", notNull: true, tableOID: 50, num: 1},
		{name: "status", typ: "text", defaultExpr: "'open'::text", tableOID: 50, num: 2},
		{name: "total", typ: "numeric", genExpr: "(price * qty * 2)", generated: "s", tableOID: 50, num: 3},
		{name: "Note", typ: "text", tableOID: 50, num: 4},
		{name: "extra", typ: "jsonb", tableOID: 50, num: 5},
	}
	src.columns[old] = []*columnDef{{name: "n", typ: "integer", notNull: true, defaultExpr: "nextval('app.legacy_n_seq'::regclass)", tableOID: 51, num: 1}}
	shuffled := qname{"app", "shuffled"}
	src.tables[shuffled] = &tableDef{kind: "r", persistence: "p", replIdent: "d", oid: 54}
	dst.tables[shuffled] = &tableDef{kind: "r", persistence: "p", replIdent: "d", oid: 54}
	src.columns[shuffled] = []*columnDef{{name: "a", typ: "integer", tableOID: 54, num: 1}, {name: "b", typ: "text", tableOID: 54, num: 2}}
	dst.columns[shuffled] = []*columnDef{{name: "b", typ: "text", tableOID: 54, num: 1}, {name: "a", typ: "integer", tableOID: 54, num: 3}}
	src.columns[parts] = []*columnDef{{name: "at", typ: "date", notNull: true, tableOID: 52, num: 1}}
	dst.columns[parts] = []*columnDef{{name: "at", typ: "date", notNull: true, tableOID: 52, num: 1}}

	src.constraints[member{app, "orders_key"}] = &constraintDef{typ: "u", def: "UNIQUE (id)", oid: 60}
	src.constraints[member{app, "status_ok"}] = &constraintDef{typ: "c", def: "CHECK ((status = ANY (ARRAY['new'::text, 'paid'::text])))", oid: 61}
	dst.constraints[member{app, "status_ok"}] = &constraintDef{typ: "c", def: "CHECK ((status = ANY (ARRAY['new'::text])))", oid: 61}
	dst.constraints[member{app, "extra_check"}] = &constraintDef{typ: "c", def: "CHECK ((extra IS NOT NULL))", oid: 62}

	src.indexes[qname{"app", "orders_status"}] = &indexDef{table: "orders", def: "CREATE INDEX orders_status ON app.orders USING btree (status)", valid: true, oid: 70}
	src.indexes[qname{"app", "events_at"}] = &indexDef{table: "events", def: "CREATE INDEX events_at ON ONLY app.events USING btree (at)", valid: true, oid: 71}
	dst.indexes[qname{"app", "events_at"}] = &indexDef{table: "events", def: "CREATE INDEX events_at ON ONLY app.events USING btree (at)", valid: false, oid: 71}
	dst.indexes[qname{"app", "orders_old"}] = &indexDef{table: "orders", def: "CREATE INDEX orders_old ON app.orders USING btree (id)", valid: true, oid: 72}

	v := qname{"app", "open_orders"}
	src.views[v] = &viewDef{kind: "v", query: " SELECT id,\n    status\n   FROM app.orders\n  WHERE status = 'new'::text;", options: []string{"security_barrier=true"}, oid: 80}
	dst.views[v] = &viewDef{kind: "v", query: " SELECT id\n   FROM app.orders;", oid: 80}
	mv := qname{"app", "totals"}
	src.views[mv] = &viewDef{kind: "m", query: " SELECT count(*) AS n\n   FROM app.orders;", populated: true, oid: 81}
	dst.views[mv] = &viewDef{kind: "m", query: " SELECT count(*) AS n\n   FROM app.legacy;", populated: true, oid: 81}
	// Same text once the target renders the source's query: equal.
	same := qname{"app", "ids"}
	src.views[same] = &viewDef{kind: "v", query: " SELECT orders.id\n   FROM app.orders;", asTarget: " SELECT id\n   FROM app.orders;", oid: 82}
	dst.views[same] = &viewDef{kind: "v", query: " SELECT id\n   FROM app.orders;", oid: 82}

	audit := member{app, "orders_audit"}
	src.triggers[audit] = &triggerDef{def: "CREATE TRIGGER orders_audit AFTER INSERT ON app.orders FOR EACH ROW EXECUTE FUNCTION app.audit()", enabled: "O", oid: 90}
	dst.triggers[audit] = &triggerDef{def: "CREATE TRIGGER orders_audit AFTER INSERT ON app.orders FOR EACH ROW EXECUTE FUNCTION app.audit()", enabled: "D", oid: 90}
	src.triggers[member{app, "orders_touch"}] = &triggerDef{def: "CREATE TRIGGER orders_touch BEFORE UPDATE ON app.orders FOR EACH ROW EXECUTE FUNCTION app.touch()", enabled: "R", oid: 91}

	src.policies[member{app, "own rows"}] = &policyDef{permissive: "PERMISSIVE", cmd: "ALL", roles: "PUBLIC", qual: "(owner = CURRENT_USER)", oid: 95}
	dst.policies[member{app, "old"}] = &policyDef{permissive: "RESTRICTIVE", cmd: "SELECT", roles: "alice, \"Bob\"", qual: "true", oid: 96}
	return src, dst
}

func TestNormalizeArgs(t *testing.T) {
	for in, want := range map[string]string{
		"":                                    "",
		"IN older_than interval":              "older_than interval",
		"IN a integer, INOUT b text, OUT c x": "a integer, INOUT b text, OUT c x",
		`"IN x" integer, IN "a, b" text`:      `"IN x" integer, "a, b" text`,
		"VARIADIC fixture.floatrange[]":       "VARIADIC fixture.floatrange[]",
	} {
		if got := normalizeArgs(in); got != want {
			t.Errorf("normalizeArgs(%q) = %q, want %q", in, got, want)
		}
	}
	a := "CREATE OR REPLACE PROCEDURE p(IN x integer)\n LANGUAGE sql\nAS $$ SELECT 'IN x' $$"
	b := "CREATE OR REPLACE PROCEDURE p(x integer)\n LANGUAGE sql\nAS $$ SELECT 'IN x' $$"
	if normalizeFunction(a) != normalizeFunction(b) {
		t.Errorf("procedure headers with and without IN should compare equal")
	}
}

func TestCompareVersions(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"1.10", "1.9", 1}, {"1.8", "1.8", 0}, {"1.7", "1.8", -1}, {"2.0", "1.99", 1}, {"1.0-beta", "1.0", 1}, {"3.1.0", "3.1", 1},
	} {
		if got := compareVersions(tc.a, tc.b); got != tc.want {
			t.Errorf("compareVersions(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}

func TestEnumFix(t *testing.T) {
	q := qname{"s", "e"}
	for _, tc := range []struct {
		src, dst []string
		want     string
	}{
		{[]string{"a", "b", "c"}, []string{"a", "c"}, `ALTER TYPE "s"."e" ADD VALUE 'b' AFTER 'a';`},
		{[]string{"a", "b"}, []string{"b"}, `ALTER TYPE "s"."e" ADD VALUE 'a' BEFORE 'b';`},
		{[]string{"a", "b"}, []string{"b", "a"}, ""}, // reordered: no fix
		{[]string{"a"}, []string{"a", "z"}, ""},      // extra label: no fix
		{[]string{"it's"}, []string{}, `ALTER TYPE "s"."e" ADD VALUE 'it''s';`},
	} {
		if got := enumFix(q, tc.src, tc.dst); got != tc.want {
			t.Errorf("enumFix(%q, %q) = %q, want %q", tc.src, tc.dst, got, tc.want)
		}
	}
}

func TestLineDiff(t *testing.T) {
	got := lineDiff([]string{"a", "b", "c"}, []string{"a", "x", "c", "d"})
	want := []string{" a", "-b", "+x", " c", "+d"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("got %q, want %q", got, want)
	}
}
