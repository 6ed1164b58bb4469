package schema

import (
	"context"
	"embed"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/pgmove/pgmove/internal/catalog"
	"github.com/pgmove/pgmove/internal/cluster"
)

//go:embed sql/diff_*.sql
var diffSQL embed.FS

// Difference is one way the target's schema differs from the source's.
type Difference struct {
	// Kind is schema, extension, collation, type, function, sequence,
	// table, column, constraint, index, view, trigger or policy.
	Kind string
	// Object is the qualified name as a DBA reads it, e.g. fixture.orders,
	// fixture.orders.status (a column, constraint, trigger or policy of a
	// table), fixture.price_with_tax(amount numeric) (a function with its
	// identity arguments).
	Object string
	// Table is the table a constraint, index, trigger or policy belongs
	// to, as Object names it; "" for other kinds.
	Table string
	// Source and Target are the object's definitions, "" where it is absent.
	Source, Target string
	// Fix is SQL that, run on the target, brings it in line with the source;
	// "" when no statement is safe (it would drop data, or the change needs a
	// rebuild a DBA should plan).
	Fix string
	// Warning marks a difference that does not stop a migration: an
	// extension at another version (each server ships its own versions).
	// Report it; do not fail on it.
	Warning bool
	// Stops says why the apply worker stops on this difference (the target
	// cannot take what the source replicates), "" when it does not.
	Stops string
	// ColumnOrder marks a table whose columns are the same on both sides
	// but in another order: replication maps columns by name, so the apply
	// goes on, while SELECT * and INSERT without a column list behave
	// differently on the target.
	ColumnOrder bool

	order order
}

// order places a difference among those of its kind: objects the source has
// in the source's creation order (OIDs, and for tables the depth in their
// partition or inheritance tree first, for columns their position), then
// those only the target has.
type order struct {
	targetOnly   bool
	major, minor int64
}

func (o order) less(p order) bool {
	if o.targetOnly != p.targetOnly {
		return !o.targetOnly
	}
	if o.major != p.major {
		return o.major < p.major
	}
	return o.minor < p.minor
}

// Diff reads the schema of both sides and lists every difference, ordered so
// that the fixes can run top to bottom on the target. Objects of system
// schemas and objects that belong to an extension are left out; owners,
// privileges and comments are not compared.
//
// What legitimately differs between two major versions of a dump and its
// restore is normalised away: see the notes above normalizeExpr.
func Diff(ctx context.Context, src, dst *cluster.Conn) ([]Difference, error) {
	s, err := readSchema(ctx, src)
	if err != nil {
		return nil, err
	}
	d, err := readSchema(ctx, dst)
	if err != nil {
		return nil, err
	}
	if err := renderViewsLikeTarget(ctx, dst, s, d); err != nil {
		return nil, err
	}
	return compareSchemas(s, d), nil
}

// compareSchemas lists the differences between two catalogues read by
// readSchema, in fix order.
func compareSchemas(s, d *schemaInfo) []Difference {
	var out []Difference
	out = append(out, diffSchemas(s, d)...)
	out = append(out, diffExtensions(s, d)...)
	out = append(out, diffCollations(s, d)...)
	out = append(out, diffTypes(s, d)...)
	out = append(out, diffFunctions(s, d)...)
	out = append(out, diffSequences(s, d)...)
	out = append(out, diffTables(s, d)...)
	out = append(out, diffColumns(s, d)...)
	out = append(out, diffConstraints(s, d)...)
	out = append(out, diffIndexes(s, d)...)
	out = append(out, diffViews(s, d)...)
	out = append(out, diffTriggers(s, d)...)
	out = append(out, diffPolicies(s, d)...)
	rank := map[string]int{}
	for i, k := range kindOrder {
		rank[k] = i
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Kind != out[j].Kind {
			return rank[out[i].Kind] < rank[out[j].Kind]
		}
		if out[i].order != out[j].order {
			return out[i].order.less(out[j].order)
		}
		return out[i].Object < out[j].Object
	})
	return out
}

// kindOrder is the order fixes can run in: containers and types first,
// functions before the tables whose defaults call them, views after the
// columns they read and before the indexes of materialized views, triggers
// and policies last.
var kindOrder = []string{"schema", "extension", "collation", "type", "function", "sequence", "table", "column",
	"view", "constraint", "index", "trigger", "policy"}

// Blocking returns the differences that are not warnings.
func Blocking(ds []Difference) []Difference {
	var out []Difference
	for _, d := range ds {
		if !d.Warning {
			out = append(out, d)
		}
	}
	return out
}

// Script joins the fixes into one script for the target, in order. Function
// bodies are not checked at creation, as pg_restore does, so a function may
// be created before the tables it reads.
func Script(ds []Difference) string {
	var sb strings.Builder
	sb.WriteString("SET check_function_bodies = false;\n")
	for _, d := range ds {
		if d.Fix == "" {
			continue
		}
		fmt.Fprintf(&sb, "-- %s %s\n%s\n", d.Kind, d.Object, d.Fix)
	}
	return sb.String()
}

// ---- reading ----------------------------------------------------------------

// diffSettings pin what the catalogue functions' output depends on: the
// search path decides which names get qualified (pg_catalog only: every
// user object comes out schema-qualified), the rest how constants in
// defaults and expressions print.
const diffSettings = `SET LOCAL search_path = pg_catalog; SET LOCAL quote_all_identifiers = off;
SET LOCAL TimeZone = 'UTC'; SET LOCAL DateStyle = 'ISO, YMD'; SET LOCAL IntervalStyle = 'postgres';
SET LOCAL extra_float_digits = 3; SET LOCAL bytea_output = 'hex'`

// olderCatalogs rewrites the queries, written for the newest catalogue, for
// servers that predate a column: the one place Diff branches on the
// version. Entries apply in order, newest first. (Only 13 and later were
// tested; the older entries follow the release notes.)
var olderCatalogs = []struct {
	before   int
	old, new string
}{
	// 17 renamed colliculocale to colllocale; before 15, an ICU
	// collation's locale was its collcollate.
	{170000, "c.colllocale", "c.colliculocale"},
	{150000, "COALESCE(c.colliculocale, '')", "CASE WHEN c.collprovider = 'i' THEN c.collcollate ELSE '' END"},
	// Column compression arrived in 14.
	{140000, "a.attcompression::text", "''"},
	// tgparentid arrived in 13; before, a partition's clone of its
	// parent's trigger was tgisinternal, which the query leaves out anyway.
	{130000, "t.tgparentid = 0", "true"},
	// Generated columns and nondeterministic collations arrived in 12.
	{120000, "a.attgenerated", `''::pg_catalog."char"`},
	{120000, "c.collisdeterministic", "true"},
	// Constraint clones on partitions (conparentid) and prokind arrived in 11.
	{110000, "k.conparentid = 0", "true"},
	{110000, "p.prokind", "CASE WHEN p.proisagg THEN 'a' WHEN p.proiswindow THEN 'w' ELSE 'f' END"},
}

func diffQuery(version int, name string) string {
	b, err := diffSQL.ReadFile("sql/diff_" + name + ".sql")
	if err != nil {
		panic("schema: missing embedded query diff_" + name)
	}
	q := string(b)
	for _, o := range olderCatalogs {
		if version < o.before {
			q = strings.ReplaceAll(q, o.old, o.new)
		}
	}
	return q
}

// qname is a schema-qualified name.
type qname struct{ schema, name string }

func (q qname) String() string { return catalog.QuoteName(q.schema) + "." + catalog.QuoteName(q.name) }
func (q qname) ident() string  { return pgx.Identifier{q.schema, q.name}.Sanitize() }

// member is something named within a table: a column, constraint, trigger, policy.
type member struct {
	table qname
	name  string
}

func (m member) String() string { return m.table.String() + "." + catalog.QuoteName(m.name) }

type extension struct {
	name, version, schema string
	relocatable           bool
	oid                   int64
}

type collationDef struct {
	provider, locale, collate, ctype string
	deterministic                    bool
	oid                              int64
}

type typeDef struct {
	kind                         string // e enum, d domain, c composite, r range
	labels, checks, attributes   []string
	base, collation, defaultExpr string
	notNull                      bool
	rangeOptions                 string
	oid                          int64
}

type sequenceDef struct {
	typ                         string
	start, inc, min, max, cache int64
	cycle                       bool
	owner                       member // the column that owns it, if any
	identity                    bool
	oid                         int64
}

type tableDef struct {
	kind, persistence, partKey, partitionOf, bound string
	inherits, options                              []string
	rls, forceRLS                                  bool
	replIdent, identIndex                          string
	oid, depth                                     int64
}

type columnDef struct {
	name, typ, defaultExpr, genExpr, generated, identity, collation, storage, compression string
	notNull                                                                               bool
	tableOID, num                                                                         int64
	// The column's NOT NULL constraint on an 18+ side (notNull says
	// whether there is one): its name, and NOT VALID, NO INHERIT.
	notNullName               string
	notNullInvalid, noInherit bool
	// identityOptions names an identity column's sequence and its options,
	// for the statements that make the column.
	identityOptions string
}

type constraintDef struct {
	typ, def string
	oid      int64
}

type indexDef struct {
	table string
	def   string
	valid bool
	oid   int64
}

type viewDef struct {
	kind, query string
	options     []string
	populated   bool
	// asTarget is the source's query as the target's server renders it,
	// set when the two texts differ and the target could parse it.
	asTarget string
	oid      int64
}

type funcKey struct{ schema, name, args string }

func (f funcKey) String() string {
	return catalog.QuoteName(f.schema) + "." + catalog.QuoteName(f.name) + "(" + f.args + ")"
}

type functionDef struct {
	kind, def string
	oid       int64
}

type triggerDef struct {
	def, enabled string
	oid          int64
}

type policyDef struct {
	permissive, cmd, roles, qual, check string
	oid                                 int64
}

// schemaInfo is one side's catalogue, as Diff compares it.
type schemaInfo struct {
	version     int
	schemas     map[string]int64 // name: OID
	extensions  map[string]extension
	extVersions map[string]map[string]bool
	collations  map[qname]*collationDef
	types       map[qname]*typeDef
	sequences   map[qname]*sequenceDef
	tables      map[qname]*tableDef
	columns     map[qname][]*columnDef
	// columnOrder is every live column of a table, inherited ones too, in
	// attnum order (columns holds only a table's own).
	columnOrder map[qname][]string
	constraints map[member]*constraintDef
	indexes     map[qname]*indexDef
	views       map[qname]*viewDef
	functions   map[funcKey]*functionDef
	triggers    map[member]*triggerDef
	policies    map[member]*policyDef
}

// readSchema reads one side's catalogue in a single read-only snapshot.
func readSchema(ctx context.Context, c *cluster.Conn) (*schemaInfo, error) {
	s := &schemaInfo{
		version: c.VersionNum,
		schemas: map[string]int64{}, extensions: map[string]extension{}, extVersions: map[string]map[string]bool{},
		collations: map[qname]*collationDef{}, types: map[qname]*typeDef{}, sequences: map[qname]*sequenceDef{}, tables: map[qname]*tableDef{},
		columns: map[qname][]*columnDef{}, constraints: map[member]*constraintDef{}, indexes: map[qname]*indexDef{},
		views: map[qname]*viewDef{}, functions: map[funcKey]*functionDef{}, triggers: map[member]*triggerDef{},
		policies: map[member]*policyDef{}, columnOrder: map[qname][]string{},
	}
	tx, err := c.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, c.Wrap("read schema", err)
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(ctx, diffSettings); err != nil {
		return nil, c.Wrap("read schema: pin settings", err)
	}
	readers := []struct {
		what, query string
		scan        func(pgx.CollectableRow) error
	}{
		{"schemas", "schemas", func(r pgx.CollectableRow) error {
			var n string
			var oid int64
			err := r.Scan(&n, &oid)
			s.schemas[n] = oid
			return err
		}},
		{"extensions", "extensions", func(r pgx.CollectableRow) error {
			var e extension
			err := r.Scan(&e.name, &e.version, &e.schema, &e.relocatable, &e.oid)
			s.extensions[e.name] = e
			return err
		}},
		{"extension versions", "extension_versions", func(r pgx.CollectableRow) error {
			var n, v string
			err := r.Scan(&n, &v)
			if s.extVersions[n] == nil {
				s.extVersions[n] = map[string]bool{}
			}
			s.extVersions[n][v] = true
			return err
		}},
		{"collations", "collations", func(r pgx.CollectableRow) error {
			var q qname
			c := &collationDef{}
			err := r.Scan(&q.schema, &q.name, &c.provider, &c.locale, &c.collate, &c.ctype, &c.deterministic, &c.oid)
			s.collations[q] = c
			return err
		}},
		{"types", "types", func(r pgx.CollectableRow) error {
			var q qname
			t := &typeDef{}
			err := r.Scan(&q.schema, &q.name, &t.kind, &t.labels, &t.base, &t.collation, &t.defaultExpr, &t.notNull,
				&t.checks, &t.attributes, &t.rangeOptions, &t.oid)
			s.types[q] = t
			return err
		}},
		{"sequences", "sequences", func(r pgx.CollectableRow) error {
			var q qname
			d := &sequenceDef{}
			err := r.Scan(&q.schema, &q.name, &d.typ, &d.start, &d.inc, &d.min, &d.max, &d.cache, &d.cycle, &d.owner.table.schema, &d.owner.table.name, &d.owner.name, &d.identity, &d.oid)
			s.sequences[q] = d
			return err
		}},
		{"tables", "tables", func(r pgx.CollectableRow) error {
			var q qname
			t := &tableDef{}
			err := r.Scan(&q.schema, &q.name, &t.kind, &t.persistence, &t.partKey, &t.partitionOf, &t.bound, &t.inherits,
				&t.options, &t.rls, &t.forceRLS, &t.replIdent, &t.identIndex, &t.oid, &t.depth)
			s.tables[q] = t
			return err
		}},
		{"columns", "columns", func(r pgx.CollectableRow) error {
			var q qname
			c := &columnDef{}
			err := r.Scan(&q.schema, &q.name, &c.name, &c.typ, &c.notNull, &c.defaultExpr, &c.genExpr, &c.generated,
				&c.identity, &c.collation, &c.storage, &c.compression, &c.tableOID, &c.num)
			s.columns[q] = append(s.columns[q], c)
			return err
		}},
		{"column order", "column_order", func(r pgx.CollectableRow) error {
			var q qname
			var names []string
			err := r.Scan(&q.schema, &q.name, &names)
			s.columnOrder[q] = names
			return err
		}},
		{"constraints", "constraints", func(r pgx.CollectableRow) error {
			var m member
			k := &constraintDef{}
			err := r.Scan(&m.table.schema, &m.table.name, &m.name, &k.typ, &k.def, &k.oid)
			s.constraints[m] = k
			return err
		}},
		{"indexes", "indexes", func(r pgx.CollectableRow) error {
			var q qname
			x := &indexDef{}
			err := r.Scan(&q.schema, &q.name, &x.table, &x.def, &x.valid, &x.oid)
			s.indexes[q] = x
			return err
		}},
		{"views", "views", func(r pgx.CollectableRow) error {
			var q qname
			v := &viewDef{}
			err := r.Scan(&q.schema, &q.name, &v.kind, &v.query, &v.options, &v.populated, &v.oid)
			s.views[q] = v
			return err
		}},
		{"functions", "functions", func(r pgx.CollectableRow) error {
			var k funcKey
			f := &functionDef{}
			err := r.Scan(&k.schema, &k.name, &k.args, &f.kind, &f.def, &f.oid)
			k.args = normalizeArgs(k.args)
			s.functions[k] = f
			return err
		}},
		{"triggers", "triggers", func(r pgx.CollectableRow) error {
			var m member
			t := &triggerDef{}
			err := r.Scan(&m.table.schema, &m.table.name, &m.name, &t.def, &t.enabled, &t.oid)
			s.triggers[m] = t
			return err
		}},
		{"policies", "policies", func(r pgx.CollectableRow) error {
			var m member
			p := &policyDef{}
			err := r.Scan(&m.table.schema, &m.table.name, &m.name, &p.permissive, &p.cmd, &p.roles, &p.qual, &p.check, &p.oid)
			s.policies[m] = p
			return err
		}},
	}
	for _, rd := range readers {
		rows, err := tx.Query(ctx, diffQuery(c.VersionNum, rd.query))
		if err != nil {
			return nil, c.Wrap("read schema: list "+rd.what, err)
		}
		if _, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (struct{}, error) { return struct{}{}, rd.scan(r) }); err != nil {
			return nil, c.Wrap("read schema: list "+rd.what, err)
		}
	}
	if c.VersionNum >= 180000 {
		if err := s.readNotNull(ctx, tx); err != nil {
			return nil, c.Wrap("read schema: list NOT NULL constraints", err)
		}
	}
	for q, seq := range s.sequences {
		if !seq.identity {
			continue
		}
		for _, col := range s.columns[seq.owner.table] {
			if col.name == seq.owner.name {
				col.identityOptions = "SEQUENCE NAME " + q.ident() + " " + seq.parameters()
			}
		}
	}
	return s, nil
}

// readNotNull attaches their NOT NULL constraint to the columns of an 18+
// side.
func (s *schemaInfo) readNotNull(ctx context.Context, tx pgx.Tx) error {
	rows, err := tx.Query(ctx, diffQuery(s.version, "not_null"))
	if err != nil {
		return err
	}
	byColumn := map[member]*columnDef{}
	for q, cols := range s.columns {
		for _, c := range cols {
			byColumn[member{q, c.name}] = c
		}
	}
	_, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (struct{}, error) {
		var m member
		var name string
		var invalid, noInherit bool
		if err := r.Scan(&m.table.schema, &m.table.name, &m.name, &name, &invalid, &noInherit); err != nil {
			return struct{}{}, err
		}
		if c := byColumn[m]; c != nil {
			c.notNullName, c.notNullInvalid, c.noInherit = name, invalid, noInherit
		}
		return struct{}{}, nil
	})
	return err
}

// notNullText is what a column's NOT NULL adds to its definition when two
// sides are compared: NOT VALID and NO INHERIT, which only 18 has (an older
// side's NOT NULL flag is a valid, inherited constraint, the same as 18's
// plain one), and the constraint's name when both sides are 18+ (before 18
// it has none).
func (c *columnDef) notNullText(named bool) string {
	if !c.notNull {
		return ""
	}
	var s string
	if c.notNullInvalid {
		s += " NOT VALID"
	}
	if c.noInherit {
		s += " NO INHERIT"
	}
	if named && c.notNullName != "" {
		s += " (constraint " + ident(c.notNullName) + ")"
	}
	return s
}

// notNullFix is the statement that gives the target column the source's NOT
// NULL constraint when only its name or validity differs, or "".
func notNullFix(q qname, sc, dc *columnDef, named bool) string {
	if !sc.notNull || !dc.notNull || sc.noInherit != dc.noInherit {
		return ""
	}
	var acts []string
	if named && sc.notNullName != dc.notNullName && dc.notNullName != "" {
		acts = append(acts, "ALTER TABLE "+q.ident()+" RENAME CONSTRAINT "+ident(dc.notNullName)+" TO "+ident(sc.notNullName)+";")
	}
	switch {
	case sc.notNullInvalid == dc.notNullInvalid:
	case !sc.notNullInvalid && dc.notNullName != "":
		// The source's is enforced on every row: validate the target's.
		name := dc.notNullName
		if named {
			name = sc.notNullName
		}
		acts = append(acts, "ALTER TABLE "+q.ident()+" VALIDATE CONSTRAINT "+ident(name)+";")
	default:
		return "" // weaker on the source than on the target: a DBA decides
	}
	return strings.Join(acts, "\n")
}

// ---- comparing --------------------------------------------------------------

// each calls f for every key of either map, telling which side has it and
// where its difference goes (see order); oid reads a definition's OID.
func each[K comparable, V any](src, dst map[K]V, oid func(V) int64, f func(k K, s, d V, inSrc, inDst bool, o order)) {
	for k, s := range src {
		d, ok := dst[k]
		f(k, s, d, true, ok, order{major: oid(s)})
	}
	for k, d := range dst {
		if _, ok := src[k]; !ok {
			var zero V
			f(k, zero, d, false, true, order{targetOnly: true, major: oid(d)})
		}
	}
}

func ident(name string) string { return pgx.Identifier{name}.Sanitize() }

// literal quotes a string constant whatever standard_conforming_strings says.
func literal(s string) string {
	q := "'" + strings.ReplaceAll(s, "'", "''") + "'"
	if strings.Contains(s, `\`) {
		return "E" + strings.ReplaceAll(q, `\`, `\\`)
	}
	return q
}

func diffSchemas(s, d *schemaInfo) []Difference {
	var out []Difference
	each(s.schemas, d.schemas, func(oid int64) int64 { return oid }, func(n string, _, _ int64, inSrc, inDst bool, o order) {
		switch {
		case inSrc && !inDst:
			out = append(out, Difference{Kind: "schema", Object: catalog.QuoteName(n), Source: "SCHEMA " + ident(n),
				Fix: "CREATE SCHEMA " + ident(n) + ";", order: o})
		case !inSrc && inDst:
			// RESTRICT: it refuses if the schema still holds anything.
			out = append(out, Difference{Kind: "schema", Object: catalog.QuoteName(n), Target: "SCHEMA " + ident(n),
				Fix: "DROP SCHEMA " + ident(n) + " RESTRICT;", order: o})
		}
	})
	return out
}

func (e extension) String() string {
	return fmt.Sprintf("EXTENSION %s VERSION %s SCHEMA %s", ident(e.name), literal(e.version), ident(e.schema))
}

// diffExtensions reports missing extensions and ones in another schema as
// differences, and other versions as warnings: each PostgreSQL release
// ships its own versions of contrib (PostgreSQL 13's hstore is 1.7, 14's is
// 1.8), and pg_restore installs the target's default. The fix updates the
// target only when it is behind and can reach the source's version.
func diffExtensions(s, d *schemaInfo) []Difference {
	var out []Difference
	each(s.extensions, d.extensions, func(e extension) int64 { return e.oid }, func(n string, se, de extension, inSrc, inDst bool, o order) {
		diff := Difference{Kind: "extension", Object: catalog.QuoteName(n), order: o}
		switch {
		case inSrc && !inDst:
			diff.Source = se.String()
			diff.Fix = fmt.Sprintf("CREATE EXTENSION IF NOT EXISTS %s WITH SCHEMA %s;", ident(n), ident(se.schema))
			if d.extVersions[n][se.version] {
				diff.Fix = fmt.Sprintf("CREATE EXTENSION IF NOT EXISTS %s WITH SCHEMA %s VERSION %s;", ident(n), ident(se.schema), literal(se.version))
			}
		case !inSrc && inDst:
			diff.Target = de.String() // dropping could take objects with it: leave it to a DBA
		case se.schema != de.schema:
			diff.Source, diff.Target = se.String(), de.String()
			if de.relocatable {
				diff.Fix = fmt.Sprintf("ALTER EXTENSION %s SET SCHEMA %s;", ident(n), ident(se.schema))
			}
		case se.version != de.version:
			diff.Source, diff.Target, diff.Warning = se.String(), de.String(), true
			if compareVersions(se.version, de.version) > 0 && d.extVersions[n][se.version] {
				diff.Fix = fmt.Sprintf("ALTER EXTENSION %s UPDATE TO %s;", ident(n), literal(se.version))
			}
		default:
			return
		}
		out = append(out, diff)
	})
	return out
}

// compareVersions orders extension versions like "1.10" > "1.9": numeric
// fields compare as numbers, anything else as text.
func compareVersions(a, b string) int {
	as, bs := strings.FieldsFunc(a, isVersionSep), strings.FieldsFunc(b, isVersionSep)
	for i := 0; i < len(as) && i < len(bs); i++ {
		x, y := as[i], bs[i]
		if isDigits(x) && isDigits(y) {
			x, y = strings.TrimLeft(x, "0"), strings.TrimLeft(y, "0")
			if len(x) != len(y) {
				return cmpInt(len(x), len(y))
			}
		}
		if c := strings.Compare(x, y); c != 0 {
			return c
		}
	}
	return cmpInt(len(as), len(bs))
}

func isVersionSep(r rune) bool { return r == '.' || r == '-' || r == '_' }

func isDigits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return s != ""
}

func cmpInt(a, b int) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// definition renders a collation as CREATE COLLATION takes it.
func (c *collationDef) definition(q qname) string {
	var opts []string
	switch c.provider {
	case "i":
		opts = append(opts, "provider = icu", "locale = "+literal(c.locale))
	case "b":
		opts = append(opts, "provider = builtin", "locale = "+literal(c.locale))
	default:
		opts = append(opts, "provider = libc", "lc_collate = "+literal(c.collate), "lc_ctype = "+literal(c.ctype))
	}
	if !c.deterministic {
		opts = append(opts, "deterministic = false")
	}
	return "CREATE COLLATION " + q.ident() + " (" + strings.Join(opts, ", ") + ")"
}

func diffCollations(s, d *schemaInfo) []Difference {
	var out []Difference
	each(s.collations, d.collations, func(c *collationDef) int64 { return c.oid }, func(q qname, sc, dc *collationDef, inSrc, inDst bool, o order) {
		diff := Difference{Kind: "collation", Object: q.String(), order: o}
		switch {
		case inSrc && !inDst:
			diff.Source = sc.definition(q)
			diff.Fix = diff.Source + ";"
		case !inSrc && inDst:
			diff.Target = dc.definition(q)
			diff.Fix = "DROP COLLATION " + q.ident() + ";" // RESTRICT: refuses while a column uses it
		default:
			diff.Source, diff.Target = sc.definition(q), dc.definition(q)
			if diff.Source == diff.Target {
				return
			}
			// Columns and indexes use it: a DBA plans the rebuild.
		}
		out = append(out, diff)
	})
	return out
}

// definition renders a type the way CREATE TYPE / CREATE DOMAIN would.
func (t *typeDef) definition(q qname) string {
	switch t.kind {
	case "e":
		labels := make([]string, len(t.labels))
		for i, l := range t.labels {
			labels[i] = literal(l)
		}
		return fmt.Sprintf("CREATE TYPE %s AS ENUM (%s)", q.ident(), strings.Join(labels, ", "))
	case "d":
		s := fmt.Sprintf("CREATE DOMAIN %s AS %s", q.ident(), t.base)
		if t.collation != "" {
			s += " COLLATE " + t.collation
		}
		if t.defaultExpr != "" {
			s += " DEFAULT " + t.defaultExpr
		}
		if t.notNull {
			s += " NOT NULL"
		}
		for _, c := range t.checks {
			s += " CONSTRAINT " + c
		}
		return s
	case "c":
		return fmt.Sprintf("CREATE TYPE %s AS (%s)", q.ident(), strings.Join(t.attributes, ", "))
	case "r":
		opts := "SUBTYPE = " + t.base
		if t.collation != "" {
			opts += ", COLLATION = " + t.collation
		}
		if t.rangeOptions != "" {
			opts += ", " + t.rangeOptions
		}
		return fmt.Sprintf("CREATE TYPE %s AS RANGE (%s)", q.ident(), opts)
	}
	return "TYPE " + q.ident()
}

func diffTypes(s, d *schemaInfo) []Difference {
	var out []Difference
	each(s.types, d.types, func(t *typeDef) int64 { return t.oid }, func(q qname, st, dt *typeDef, inSrc, inDst bool, o order) {
		diff := Difference{Kind: "type", Object: q.String(), order: o}
		switch {
		case inSrc && !inDst:
			diff.Source = st.definition(q)
			diff.Fix = diff.Source + ";"
		case !inSrc && inDst:
			diff.Target = dt.definition(q)
			diff.Fix = "DROP TYPE " + q.ident() + ";" // RESTRICT: refuses while a column uses it
			if dt.kind == "d" {
				diff.Fix = "DROP DOMAIN " + q.ident() + ";"
			}
		default:
			diff.Source, diff.Target = st.definition(q), dt.definition(q)
			if diff.Source == diff.Target {
				return
			}
			diff.Fix = typeFix(q, st, dt)
			if st.kind == "e" && dt.kind == "e" {
				diff.Stops = enumStops(st.labels, dt.labels)
			}
		}
		out = append(out, diff)
	})
	return out
}

// typeFix changes a type in place where PostgreSQL can: new enum labels,
// domain defaults, NOT NULL and checks, composite attributes added or
// retyped. Anything else needs the type rebuilt: no fix.
func typeFix(q qname, st, dt *typeDef) string {
	if st.kind != dt.kind || st.base != dt.base || st.collation != dt.collation || st.rangeOptions != dt.rangeOptions {
		return ""
	}
	var stmts []string
	switch st.kind {
	case "e":
		return enumFix(q, st.labels, dt.labels)
	case "d":
		alter := "ALTER DOMAIN " + q.ident()
		if st.defaultExpr != dt.defaultExpr {
			if st.defaultExpr == "" {
				stmts = append(stmts, alter+" DROP DEFAULT;")
			} else {
				stmts = append(stmts, alter+" SET DEFAULT "+st.defaultExpr+";")
			}
		}
		if st.notNull != dt.notNull {
			if st.notNull {
				stmts = append(stmts, alter+" SET NOT NULL;")
			} else {
				stmts = append(stmts, alter+" DROP NOT NULL;")
			}
		}
		have := map[string]bool{}
		for _, c := range st.checks {
			have[c] = true
		}
		want := map[string]bool{}
		for _, c := range dt.checks {
			want[c] = true
		}
		for _, c := range dt.checks {
			if !have[c] {
				name, _, _ := cutIdent(c)
				stmts = append(stmts, alter+" DROP CONSTRAINT "+name+";")
			}
		}
		for _, c := range st.checks {
			if !want[c] {
				stmts = append(stmts, alter+" ADD CONSTRAINT "+c+";")
			}
		}
	case "c":
		dst := map[string]string{}
		for _, a := range dt.attributes {
			name, typ, _ := cutIdent(a)
			dst[name] = typ
		}
		src := map[string]bool{}
		for _, a := range st.attributes {
			name, typ, _ := cutIdent(a)
			src[name] = true
			switch t, ok := dst[name]; {
			case !ok:
				stmts = append(stmts, "ALTER TYPE "+q.ident()+" ADD ATTRIBUTE "+a+";")
			case t != typ:
				stmts = append(stmts, "ALTER TYPE "+q.ident()+" ALTER ATTRIBUTE "+name+" TYPE "+typ+";")
			}
		}
		for name := range dst {
			if !src[name] {
				return "" // dropping an attribute drops data
			}
		}
		if !attributesInOrder(st.attributes, dt.attributes) {
			return ""
		}
	default:
		return ""
	}
	return strings.Join(stmts, "\n")
}

// attributesInOrder reports whether the target's attributes come in the
// source's order, so that adding the missing ones at the end matches it.
func attributesInOrder(src, dst []string) bool {
	for i, a := range dst {
		if i >= len(src) {
			return false
		}
		n1, _, _ := cutIdent(a)
		n2, _, _ := cutIdent(src[i])
		if n1 != n2 {
			return false
		}
	}
	return true
}

// cutIdent splits "<identifier> <rest>" where the identifier may be quoted.
func cutIdent(s string) (name, rest string, ok bool) {
	if strings.HasPrefix(s, `"`) {
		for i := 1; i < len(s); i++ {
			if s[i] == '"' {
				if i+1 < len(s) && s[i+1] == '"' {
					i++
					continue
				}
				return s[:i+1], strings.TrimPrefix(s[i+1:], " "), true
			}
		}
		return s, "", false
	}
	name, rest, ok = strings.Cut(s, " ")
	return name, rest, ok
}

// enumFix adds the source's labels the target lacks, each next to a label
// both have, when the target's labels are in the source's order; labels
// cannot be removed or reordered.
func enumFix(q qname, src, dst []string) string {
	pos := map[string]int{}
	for i, l := range src {
		pos[l] = i
	}
	last := -1
	for _, l := range dst {
		p, ok := pos[l]
		if !ok || p < last {
			return ""
		}
		last = p
	}
	have := map[string]bool{}
	for _, l := range dst {
		have[l] = true
	}
	var stmts []string
	for i, l := range src {
		if have[l] {
			continue
		}
		stmt := "ALTER TYPE " + q.ident() + " ADD VALUE " + literal(l)
		if i > 0 {
			stmt += " AFTER " + literal(src[i-1])
		} else if len(src) > 1 {
			stmt += " BEFORE " + literal(src[1])
		}
		stmts = append(stmts, stmt+";")
		have[l] = true
	}
	return strings.Join(stmts, "\n")
}

func (f *functionDef) drop(k funcKey) string {
	what := map[string]string{"p": "PROCEDURE", "a": "AGGREGATE"}[f.kind]
	if what == "" {
		what = "FUNCTION"
	}
	return fmt.Sprintf("DROP %s %s(%s);", what, pgx.Identifier{k.schema, k.name}.Sanitize(), k.args)
}

func (f *functionDef) create(k funcKey) string {
	if f.kind == "a" {
		return fmt.Sprintf("CREATE AGGREGATE %s(%s) (%s);", pgx.Identifier{k.schema, k.name}.Sanitize(), k.args, f.def)
	}
	return strings.TrimRight(f.def, "\n ") + ";"
}

func diffFunctions(s, d *schemaInfo) []Difference {
	var out []Difference
	each(s.functions, d.functions, func(f *functionDef) int64 { return f.oid }, func(k funcKey, sf, df *functionDef, inSrc, inDst bool, o order) {
		diff := Difference{Kind: "function", Object: k.String(), order: o}
		switch {
		case inSrc && !inDst:
			diff.Source = sf.def
			diff.Fix = sf.create(k)
		case !inSrc && inDst:
			diff.Target = df.def
			diff.Fix = df.drop(k)
		default:
			if normalizeFunction(sf.def) == normalizeFunction(df.def) {
				return
			}
			diff.Source, diff.Target = sf.def, df.def
			diff.Fix = sf.create(k) // CREATE OR REPLACE
			if sf.kind == "a" || sf.kind != df.kind {
				diff.Fix = df.drop(k) + "\n" + sf.create(k)
			}
		}
		out = append(out, diff)
	})
	return out
}

func (q *sequenceDef) definition() string {
	s := fmt.Sprintf("AS %s START WITH %d INCREMENT BY %d MINVALUE %d MAXVALUE %d CACHE %d", q.typ, q.start, q.inc, q.min, q.max, q.cache)
	if q.cycle {
		s += " CYCLE"
	} else {
		s += " NO CYCLE"
	}
	switch {
	case q.identity:
		s += " (identity of " + q.owner.String() + ")"
	case q.owner.name != "":
		s += " OWNED BY " + q.owner.String()
	}
	return s
}

func diffSequences(s, d *schemaInfo) []Difference {
	var out []Difference
	each(s.sequences, d.sequences, func(q *sequenceDef) int64 { return q.oid }, func(q qname, ss, ds *sequenceDef, inSrc, inDst bool, o order) {
		diff := Difference{Kind: "sequence", Object: q.String(), order: o}
		switch {
		case inSrc && !inDst:
			diff.Source = ss.definition()
			if ss.identity {
				// An identity sequence comes with its column: the table's or
				// column's fix makes it. Under another name, rename it.
				other, ok := identitySequence(d, ss.owner)
				if !ok {
					return
				}
				diff.Fix = "ALTER SEQUENCE " + other.ident() + " RENAME TO " + ident(q.name) + ";"
				break
			}
			diff.Fix = "CREATE SEQUENCE " + q.ident() + " " + ss.options() + ";"
			if _, ok := d.tables[ss.owner.table]; ok && ss.owner.name != "" {
				// A missing table takes ownership in its own fix.
				diff.Fix += "\n" + ownedBy(q, ss.owner)
			}
		case !inSrc && inDst:
			if ds.identity {
				return // reported with its column, or as the source's name above
			}
			diff.Target = ds.definition() // dropping loses its value: leave it to a DBA
		default:
			diff.Source, diff.Target = ss.definition(), ds.definition()
			if diff.Source == diff.Target {
				return
			}
			var stmts []string
			if ss.options() != ds.options() {
				opts := ss.options()
				if ss.identity { // the column decides an identity sequence's type
					opts = ss.parameters()
				}
				stmts = append(stmts, "ALTER SEQUENCE "+q.ident()+" "+opts+";")
			}
			if ss.owner != ds.owner && !ss.identity && !ds.identity {
				stmts = append(stmts, ownedBy(q, ss.owner))
			}
			diff.Fix = strings.Join(stmts, "\n")
		}
		out = append(out, diff)
	})
	return out
}

// identitySequence finds the sequence of an identity column.
func identitySequence(s *schemaInfo, col member) (qname, bool) {
	for q, seq := range s.sequences {
		if seq.identity && seq.owner == col {
			return q, true
		}
	}
	return qname{}, false
}

// ownedBy ties a sequence to its column (serial), or unties it.
func ownedBy(seq qname, owner member) string {
	if owner.name == "" {
		return "ALTER SEQUENCE " + seq.ident() + " OWNED BY NONE;"
	}
	return "ALTER SEQUENCE " + seq.ident() + " OWNED BY " + pgx.Identifier{owner.table.schema, owner.table.name, owner.name}.Sanitize() + ";"
}

// ownedSequences ties, after a table or column is made, the source's serial
// sequences to it (column "" for every column of the table), in a stable
// order.
func ownedSequences(s *schemaInfo, table qname, column string) string {
	var stmts []string
	for q, seq := range s.sequences {
		if !seq.identity && seq.owner.table == table && (column == "" || seq.owner.name == column) {
			stmts = append(stmts, ownedBy(q, seq.owner))
		}
	}
	sort.Strings(stmts)
	return strings.Join(stmts, "\n")
}

func (q *sequenceDef) options() string { return "AS " + q.typ + " " + q.parameters() }

// parameters are the options but the type, which an identity column's
// sequence takes from its column.
func (q *sequenceDef) parameters() string {
	s := fmt.Sprintf("INCREMENT BY %d MINVALUE %d MAXVALUE %d START WITH %d CACHE %d", q.inc, q.min, q.max, q.start, q.cache)
	if q.cycle {
		return s + " CYCLE"
	}
	return s + " NO CYCLE"
}

var relkindNames = map[string]string{"r": "TABLE", "p": "PARTITIONED TABLE", "f": "FOREIGN TABLE"}

// definition lists what shapes a table besides its columns, one property a
// line.
func (t *tableDef) definition() string {
	var lines []string
	kind := relkindNames[t.kind]
	if t.persistence == "u" {
		kind = "UNLOGGED " + kind
	}
	lines = append(lines, kind)
	if t.partKey != "" {
		lines = append(lines, "PARTITION BY "+t.partKey)
	}
	if t.partitionOf != "" {
		lines = append(lines, "PARTITION OF "+t.partitionOf+" "+t.bound)
	}
	if len(t.inherits) > 0 {
		lines = append(lines, "INHERITS ("+strings.Join(t.inherits, ", ")+")")
	}
	if len(t.options) > 0 {
		lines = append(lines, "WITH ("+strings.Join(t.options, ", ")+")")
	}
	if t.rls {
		lines = append(lines, "ROW LEVEL SECURITY")
	}
	if t.forceRLS {
		lines = append(lines, "FORCE ROW LEVEL SECURITY")
	}
	switch t.replIdent {
	case "f":
		lines = append(lines, "REPLICA IDENTITY FULL")
	case "n":
		lines = append(lines, "REPLICA IDENTITY NOTHING")
	case "i":
		lines = append(lines, "REPLICA IDENTITY USING INDEX "+ident(t.identIndex))
	}
	return strings.Join(lines, "\n")
}

func diffTables(s, d *schemaInfo) []Difference {
	var out []Difference
	each(s.tables, d.tables, func(t *tableDef) int64 { return t.oid }, func(q qname, st, dt *tableDef, inSrc, inDst bool, o order) {
		diff := Difference{Kind: "table", Object: q.String(), order: o}
		if inSrc { // parents before their partitions and children
			diff.order = order{major: st.depth, minor: st.oid}
		}
		switch {
		case inSrc && !inDst:
			diff.Source = st.definition()
			diff.Fix = createTable(q, st, s.columns[q])
			if owned := ownedSequences(s, q, ""); owned != "" {
				diff.Fix += "\n" + owned
			}
		case !inSrc && inDst:
			diff.Target = dt.definition() // dropping loses its rows: leave it to a DBA
		default:
			diff.Source, diff.Target = st.definition(), dt.definition()
			if diff.Source == diff.Target {
				return
			}
			diff.Fix = alterTable(q, st, dt, indexOnTarget(d, q, st.identIndex))
		}
		out = append(out, diff)
	})
	return out
}

// createTable builds CREATE TABLE for a table the target lacks, with its
// own columns; constraints, indexes and triggers come as differences of
// their own.
func createTable(q qname, t *tableDef, cols []*columnDef) string {
	if t.kind == "f" {
		return "" // needs its server and options: pg_dump --table makes it right
	}
	var sb strings.Builder
	sb.WriteString("CREATE ")
	if t.persistence == "u" {
		sb.WriteString("UNLOGGED ")
	}
	sb.WriteString("TABLE " + q.ident())
	if t.partitionOf != "" {
		sb.WriteString(" PARTITION OF " + t.partitionOf)
	} else {
		defs := make([]string, len(cols))
		for i, c := range cols {
			defs[i] = "    " + c.clause()
		}
		sb.WriteString(" (\n" + strings.Join(defs, ",\n") + "\n)")
		if len(t.inherits) > 0 {
			sb.WriteString(" INHERITS (" + strings.Join(t.inherits, ", ") + ")")
		}
	}
	if t.partitionOf != "" {
		sb.WriteString(" " + t.bound)
	}
	if t.partKey != "" {
		sb.WriteString(" PARTITION BY " + t.partKey)
	}
	if len(t.options) > 0 {
		sb.WriteString(" WITH (" + strings.Join(t.options, ", ") + ")")
	}
	sb.WriteString(";")
	for _, c := range cols {
		if st := c.storageClause(); st != "" && t.partitionOf == "" {
			sb.WriteString("\nALTER TABLE " + q.ident() + " ALTER COLUMN " + ident(c.name) + " SET " + st + ";")
		}
	}
	if t.rls {
		sb.WriteString("\nALTER TABLE " + q.ident() + " ENABLE ROW LEVEL SECURITY;")
	}
	if t.forceRLS {
		sb.WriteString("\nALTER TABLE " + q.ident() + " FORCE ROW LEVEL SECURITY;")
	}
	switch t.replIdent {
	case "f":
		sb.WriteString("\nALTER TABLE " + q.ident() + " REPLICA IDENTITY FULL;")
	case "n":
		sb.WriteString("\nALTER TABLE " + q.ident() + " REPLICA IDENTITY NOTHING;")
	}
	// REPLICA IDENTITY USING INDEX comes with the index's fix, once it exists.
	return sb.String()
}

// alterTable changes the table-level properties ALTER TABLE can change;
// another kind, partition key, parent or bound needs a rebuild: no fix.
func alterTable(q qname, st, dt *tableDef, identIndexThere bool) string {
	if st.kind != dt.kind || st.partKey != dt.partKey || st.partitionOf != dt.partitionOf || st.bound != dt.bound {
		return ""
	}
	alter := "ALTER TABLE " + q.ident()
	var stmts []string
	if st.persistence != dt.persistence {
		if st.persistence == "u" {
			stmts = append(stmts, alter+" SET UNLOGGED;")
		} else {
			stmts = append(stmts, alter+" SET LOGGED;")
		}
	}
	if strings.Join(st.inherits, ",") != strings.Join(dt.inherits, ",") {
		have := map[string]bool{}
		for _, p := range dt.inherits {
			have[p] = true
		}
		want := map[string]bool{}
		for _, p := range st.inherits {
			want[p] = true
			if !have[p] {
				stmts = append(stmts, alter+" INHERIT "+p+";")
			}
		}
		for _, p := range dt.inherits {
			if !want[p] {
				stmts = append(stmts, alter+" NO INHERIT "+p+";")
			}
		}
	}
	if strings.Join(st.options, ",") != strings.Join(dt.options, ",") {
		want := map[string]bool{}
		for _, o := range st.options {
			want[optionName(o)] = true
		}
		var reset []string
		for _, o := range dt.options {
			if !want[optionName(o)] {
				reset = append(reset, optionName(o))
			}
		}
		if len(reset) > 0 {
			stmts = append(stmts, alter+" RESET ("+strings.Join(reset, ", ")+");")
		}
		if len(st.options) > 0 {
			stmts = append(stmts, alter+" SET ("+strings.Join(st.options, ", ")+");")
		}
	}
	if st.rls != dt.rls {
		stmts = append(stmts, alter+map[bool]string{true: " ENABLE", false: " DISABLE"}[st.rls]+" ROW LEVEL SECURITY;")
	}
	if st.forceRLS != dt.forceRLS {
		stmts = append(stmts, alter+map[bool]string{true: " FORCE", false: " NO FORCE"}[st.forceRLS]+" ROW LEVEL SECURITY;")
	}
	if st.replIdent != dt.replIdent || st.identIndex != dt.identIndex {
		switch st.replIdent {
		case "f":
			stmts = append(stmts, alter+" REPLICA IDENTITY FULL;")
		case "n":
			stmts = append(stmts, alter+" REPLICA IDENTITY NOTHING;")
		case "i":
			if identIndexThere { // else the index's fix sets it
				stmts = append(stmts, alter+" REPLICA IDENTITY USING INDEX "+ident(st.identIndex)+";")
			}
		default:
			stmts = append(stmts, alter+" REPLICA IDENTITY DEFAULT;")
		}
	}
	return strings.Join(stmts, "\n")
}

// indexOnTarget reports whether the target has the index, on its own or as
// a key constraint's.
func indexOnTarget(d *schemaInfo, table qname, index string) bool {
	if index == "" {
		return false
	}
	if _, ok := d.indexes[qname{table.schema, index}]; ok {
		return true
	}
	k, ok := d.constraints[member{table, index}]
	return ok && (k.typ == "p" || k.typ == "u")
}

// replicaIdentityWith is the statement that makes index the replica
// identity of table, to run right after the index is made, when the source
// uses it so and the target does not (or always, when the fix rebuilds the
// index, which loses the setting).
func replicaIdentityWith(s, d *schemaInfo, table qname, index string, rebuilt bool) string {
	st := s.tables[table]
	if st == nil || st.replIdent != "i" || st.identIndex != index {
		return ""
	}
	if dt := d.tables[table]; !rebuilt && dt != nil && dt.replIdent == "i" && dt.identIndex == index {
		return ""
	}
	return "\nALTER TABLE " + table.ident() + " REPLICA IDENTITY USING INDEX " + ident(index) + ";"
}

func optionName(o string) string { n, _, _ := strings.Cut(o, "="); return n }

var storageNames = map[string]string{"p": "PLAIN", "e": "EXTERNAL", "m": "MAIN", "x": "EXTENDED"}

// definition renders a column as CREATE TABLE would, with its storage.
func (c *columnDef) definition() string {
	s := c.typ
	if c.collation != "" {
		s += " COLLATE " + c.collation
	}
	if st := c.storageClause(); st != "" {
		s += " " + st
	}
	if c.compression != "" {
		s += " COMPRESSION " + compressionName(c.compression)
	}
	return s + c.constraints("")
}

// clause is the column as ADD COLUMN or CREATE TABLE take it (storage is
// set apart: the STORAGE clause there needs PostgreSQL 16).
func (c *columnDef) clause() string {
	s := ident(c.name) + " " + c.typ
	if c.compression != "" {
		s += " COMPRESSION " + compressionName(c.compression)
	}
	if c.collation != "" {
		s += " COLLATE " + c.collation
	}
	return s + c.constraints(c.identityOptions)
}

func (c *columnDef) constraints(identityOptions string) string {
	var s string
	if c.genExpr != "" {
		s += " GENERATED ALWAYS AS (" + c.genExpr + ")"
		if c.generated == "v" {
			s += " VIRTUAL"
		} else {
			s += " STORED"
		}
	}
	switch c.identity {
	case "a":
		s += " GENERATED ALWAYS AS IDENTITY"
	case "d":
		s += " GENERATED BY DEFAULT AS IDENTITY"
	}
	if c.identity != "" && identityOptions != "" {
		s += " (" + identityOptions + ")"
	}
	if c.notNull {
		s += " NOT NULL"
	}
	if c.defaultExpr != "" {
		s += " DEFAULT " + c.defaultExpr
	}
	return s
}

func (c *columnDef) storageClause() string {
	if c.storage == "" {
		return ""
	}
	return "STORAGE " + storageNames[c.storage]
}

func compressionName(c string) string {
	switch c {
	case "p":
		return "pglz"
	case "l":
		return "lz4"
	}
	return c
}

// diffColumns compares the columns of the tables both sides have (a table
// on one side only is its own difference), and their order when both have
// the same ones: a restore keeps it, and SELECT * and INSERT without a
// column list depend on it.
func diffColumns(s, d *schemaInfo) []Difference {
	var out []Difference
	tables := map[qname]bool{}
	for q := range s.columns {
		tables[q] = true
	}
	for q := range d.columns {
		tables[q] = true
	}
	for q := range tables {
		if s.tables[q] == nil || d.tables[q] == nil {
			continue
		}
		scols, dcols := s.columns[q], d.columns[q]
		if names, same := columnOrder(s.allColumns(q), d.allColumns(q)); !same {
			out = append(out, Difference{Kind: "table", Object: q.String(), Source: "columns in order: " + names[0],
				Target: "columns in order: " + names[1], ColumnOrder: true, order: order{major: s.tables[q].depth, minor: s.tables[q].oid}})
		}
		dst := map[string]*columnDef{}
		for _, c := range dcols {
			dst[c.name] = c
		}
		src := map[string]bool{}
		for _, sc := range scols {
			src[sc.name] = true
			m := member{q, sc.name}
			dc := dst[sc.name]
			if dc == nil {
				out = append(out, Difference{Kind: "column", Object: m.String(), Source: sc.definition(), Stops: columnMissingStops(sc),
					Fix: addColumn(q, sc, ownedSequences(s, q, sc.name)), order: order{major: sc.tableOID, minor: sc.num}})
				continue
			}
			named := s.version >= 180000 && d.version >= 180000
			sdef, ddef := sc.definition()+sc.notNullText(named), dc.definition()+dc.notNullText(named)
			if normalizeExpr(sdef) == normalizeExpr(ddef) {
				continue
			}
			fix := alterColumn(q, sc, dc, d.version)
			if normalizeExpr(sc.definition()) == normalizeExpr(dc.definition()) {
				// Only the NOT NULL constraints' kind or name differ.
				fix = notNullFix(q, sc, dc, named)
			}
			out = append(out, Difference{Kind: "column", Object: m.String(), Source: sdef, Target: ddef,
				Stops: columnTypeStops(sc, dc), Fix: fix, order: order{major: sc.tableOID, minor: sc.num}})
		}
		for _, dc := range dcols {
			if !src[dc.name] {
				// Dropping the column loses its data; a DBA decides.
				out = append(out, Difference{Kind: "column", Object: member{q, dc.name}.String(), Target: dc.definition(),
					Stops: columnExtraStops(dc), order: order{targetOnly: true, major: dc.tableOID, minor: dc.num}})
			}
		}
	}
	return out
}

// columnOrder lists both sides' column names in order and tells whether
// the order agrees, when both have the same columns (else the columns
// themselves differ, which is reported instead).
func columnOrder(src, dst []string) (names [2]string, same bool) {
	if len(src) != len(dst) {
		return names, true
	}
	var a, b []string
	have := map[string]bool{}
	for i := range src {
		a, b = append(a, catalog.QuoteName(src[i])), append(b, catalog.QuoteName(dst[i]))
		have[src[i]] = true
	}
	for _, c := range dst {
		if !have[c] {
			return names, true
		}
	}
	names = [2]string{strings.Join(a, ", "), strings.Join(b, ", ")}
	return names, names[0] == names[1]
}

// allColumns is every live column of table q in order, inherited ones
// too; a catalogue built without them (in tests) has the table's own.
func (s *schemaInfo) allColumns(q qname) []string {
	if names, ok := s.columnOrder[q]; ok {
		return names
	}
	var out []string
	for _, c := range s.columns[q] {
		out = append(out, c.name)
	}
	return out
}

func addColumn(q qname, c *columnDef, owned string) string {
	s := "ALTER TABLE " + q.ident() + " ADD COLUMN " + c.clause() + ";"
	if st := c.storageClause(); st != "" {
		s += "\nALTER TABLE " + q.ident() + " ALTER COLUMN " + ident(c.name) + " SET " + st + ";"
	}
	if owned != "" {
		s += "\n" + owned
	}
	return s
}

// alterColumn changes what ALTER COLUMN can: type and collation, default,
// NOT NULL, identity, storage, compression, and a generated expression
// (PostgreSQL 17+ only, SET EXPRESSION). A column becoming generated, or a
// generated one becoming plain before 13, has no safe fix.
func alterColumn(q qname, sc, dc *columnDef, dstVersion int) string {
	col := "ALTER COLUMN " + ident(sc.name)
	var acts []string
	if sc.typ != dc.typ || sc.collation != dc.collation {
		a := col + " TYPE " + sc.typ
		if sc.collation != "" {
			a += " COLLATE " + sc.collation
		}
		if sc.typ != dc.typ {
			a += " USING " + ident(sc.name) + "::" + sc.typ
		}
		acts = append(acts, a)
	}
	if normalizeExpr(sc.genExpr) != normalizeExpr(dc.genExpr) || sc.generated != dc.generated {
		switch {
		case sc.genExpr == "":
			acts = append(acts, col+" DROP EXPRESSION")
		case dc.genExpr != "" && sc.generated == dc.generated && dstVersion >= 170000: // SET EXPRESSION: 17
			acts = append(acts, col+" SET EXPRESSION AS ("+sc.genExpr+")")
		default:
			return ""
		}
	}
	if normalizeExpr(sc.defaultExpr) != normalizeExpr(dc.defaultExpr) {
		if sc.defaultExpr == "" {
			acts = append(acts, col+" DROP DEFAULT")
		} else {
			acts = append(acts, col+" SET DEFAULT "+sc.defaultExpr)
		}
	}
	if sc.identity != dc.identity {
		kind := map[string]string{"a": "ALWAYS", "d": "BY DEFAULT"}[sc.identity]
		switch {
		case sc.identity == "":
			acts = append(acts, col+" DROP IDENTITY")
		case dc.identity == "" && sc.identityOptions != "":
			acts = append(acts, col+" ADD GENERATED "+kind+" AS IDENTITY ("+sc.identityOptions+")")
		case dc.identity == "":
			acts = append(acts, col+" ADD GENERATED "+kind+" AS IDENTITY")
		default:
			acts = append(acts, col+" SET GENERATED "+kind)
		}
	}
	if sc.notNull != dc.notNull {
		if sc.notNull {
			acts = append(acts, col+" SET NOT NULL")
		} else {
			acts = append(acts, col+" DROP NOT NULL")
		}
	}
	if sc.storage != dc.storage && sc.storage != "" {
		acts = append(acts, col+" SET "+sc.storageClause())
	}
	if sc.compression != dc.compression {
		c := compressionName(sc.compression)
		if c == "" {
			c = "DEFAULT"
		}
		acts = append(acts, col+" SET COMPRESSION "+c)
	}
	if len(acts) == 0 {
		return ""
	}
	return "ALTER TABLE " + q.ident() + " " + strings.Join(acts, ", ") + ";"
}

func diffConstraints(s, d *schemaInfo) []Difference {
	var out []Difference
	each(s.constraints, d.constraints, func(k *constraintDef) int64 { return k.oid }, func(m member, sk, dk *constraintDef, inSrc, inDst bool, o order) {
		diff := Difference{Kind: "constraint", Object: m.String(), Table: m.table.String(), order: o}
		alter := "ALTER TABLE " + m.table.ident()
		switch {
		case inSrc && !inDst:
			diff.Source = sk.def
			diff.Fix = alter + " ADD CONSTRAINT " + ident(m.name) + " " + sk.def + ";" + replicaIdentityWith(s, d, m.table, m.name, false)
		case !inSrc && inDst:
			diff.Target = dk.def
			diff.Fix = alter + " DROP CONSTRAINT " + ident(m.name) + ";"
		default:
			if normalizeExpr(sk.def) == normalizeExpr(dk.def) {
				return
			}
			diff.Source, diff.Target = sk.def, dk.def
			diff.Fix = alter + " DROP CONSTRAINT " + ident(m.name) + ", ADD CONSTRAINT " + ident(m.name) + " " + sk.def + ";" +
				replicaIdentityWith(s, d, m.table, m.name, true)
		}
		out = append(out, diff)
	})
	return out
}

func (x *indexDef) definition() string {
	if !x.valid {
		return x.def + " -- INVALID"
	}
	return x.def
}

// create is the statement that makes the index. pg_get_indexdef says ON
// ONLY for a partitioned table's index, which pg_dump then attaches its
// partitions' indexes to; made anew, the index should cascade to the
// partitions instead, or it stays invalid.
func (x *indexDef) create() string {
	return strings.Replace(x.def, " ON ONLY ", " ON ", 1) + ";"
}

func diffIndexes(s, d *schemaInfo) []Difference {
	var out []Difference
	each(s.indexes, d.indexes, func(x *indexDef) int64 { return x.oid }, func(q qname, sx, dx *indexDef, inSrc, inDst bool, o order) {
		diff := Difference{Kind: "index", Object: q.String(), order: o}
		if sx != nil {
			diff.Table = qname{q.schema, sx.table}.String()
		} else if dx != nil {
			diff.Table = qname{q.schema, dx.table}.String()
		}
		switch {
		case inSrc && !inDst:
			diff.Source = sx.definition()
			diff.Fix = sx.create() + replicaIdentityWith(s, d, qname{q.schema, sx.table}, q.name, false)
		case !inSrc && inDst:
			diff.Target = dx.definition()
			diff.Fix = "DROP INDEX " + q.ident() + ";"
		default:
			if normalizeExpr(sx.definition()) == normalizeExpr(dx.definition()) {
				return
			}
			diff.Source, diff.Target = sx.definition(), dx.definition()
			diff.Fix = "DROP INDEX " + q.ident() + ";\n" + sx.create() + replicaIdentityWith(s, d, qname{q.schema, sx.table}, q.name, true)
		}
		out = append(out, diff)
	})
	return out
}

func (v *viewDef) create(q qname) string {
	kind := "VIEW"
	if v.kind == "m" {
		kind = "MATERIALIZED VIEW"
	}
	s := "CREATE " + kind + " " + q.ident()
	if len(v.options) > 0 {
		s += " WITH (" + strings.Join(v.options, ", ") + ")"
	}
	s += " AS\n" + strings.TrimRight(strings.TrimSpace(v.query), ";")
	if v.kind == "m" {
		if v.populated {
			s += "\n  WITH DATA"
		} else {
			s += "\n  WITH NO DATA"
		}
	}
	return s + ";"
}

func (v *viewDef) definition(q qname) string {
	kind := "VIEW"
	if v.kind == "m" {
		kind = "MATERIALIZED VIEW"
	}
	s := kind
	if len(v.options) > 0 {
		s += " WITH (" + strings.Join(v.options, ", ") + ")"
	}
	return s + " AS\n" + strings.TrimRight(strings.TrimSpace(v.query), ";")
}

func (v *viewDef) drop(q qname) string {
	if v.kind == "m" {
		return "DROP MATERIALIZED VIEW " + q.ident() + ";"
	}
	return "DROP VIEW " + q.ident() + ";"
}

func diffViews(s, d *schemaInfo) []Difference {
	var out []Difference
	each(s.views, d.views, func(v *viewDef) int64 { return v.oid }, func(q qname, sv, dv *viewDef, inSrc, inDst bool, o order) {
		diff := Difference{Kind: "view", Object: q.String(), order: o}
		switch {
		case inSrc && !inDst:
			diff.Source = sv.definition(q)
			diff.Fix = sv.create(q)
		case !inSrc && inDst:
			diff.Target = dv.definition(q)
			diff.Fix = dv.drop(q)
		default:
			if sameView(sv, dv) {
				return
			}
			diff.Source, diff.Target = sv.definition(q), dv.definition(q)
			if sv.kind == "v" && dv.kind == "v" {
				diff.Fix = strings.Replace(sv.create(q), "CREATE VIEW", "CREATE OR REPLACE VIEW", 1)
			} else {
				// A materialized view is rebuilt: its indexes go with it and
				// come back as index differences.
				diff.Fix = dv.drop(q) + "\n" + sv.create(q)
			}
		}
		out = append(out, diff)
	})
	return out
}

var triggerStates = map[string]string{"O": "", "D": "DISABLE TRIGGER", "R": "ENABLE REPLICA TRIGGER", "A": "ENABLE ALWAYS TRIGGER"}

func (t *triggerDef) definition() string {
	if st := triggerStates[t.enabled]; st != "" {
		return t.def + "\n-- " + st
	}
	return t.def
}

func (t *triggerDef) state(m member) string {
	st := triggerStates[t.enabled]
	if st == "" {
		st = "ENABLE TRIGGER"
	}
	return "ALTER TABLE " + m.table.ident() + " " + st + " " + ident(m.name) + ";"
}

func diffTriggers(s, d *schemaInfo) []Difference {
	var out []Difference
	each(s.triggers, d.triggers, func(t *triggerDef) int64 { return t.oid }, func(m member, st, dt *triggerDef, inSrc, inDst bool, o order) {
		diff := Difference{Kind: "trigger", Object: m.String(), Table: m.table.String(), order: o}
		drop := "DROP TRIGGER " + ident(m.name) + " ON " + m.table.ident() + ";"
		switch {
		case inSrc && !inDst:
			diff.Source = st.definition()
			diff.Fix = st.def + ";"
			if st.enabled != "O" {
				diff.Fix += "\n" + st.state(m)
			}
		case !inSrc && inDst:
			diff.Target = dt.definition()
			diff.Fix = drop
		default:
			if normalizeExpr(st.def) == normalizeExpr(dt.def) {
				if st.enabled == dt.enabled {
					return
				}
				diff.Fix = st.state(m)
			} else {
				diff.Fix = drop + "\n" + st.def + ";"
				if st.enabled != "O" {
					diff.Fix += "\n" + st.state(m)
				}
			}
			diff.Source, diff.Target = st.definition(), dt.definition()
		}
		out = append(out, diff)
	})
	return out
}

func (p *policyDef) create(m member) string {
	s := "CREATE POLICY " + ident(m.name) + " ON " + m.table.ident() + " AS " + p.permissive + " FOR " + p.cmd
	s += " TO " + p.roles // quoted by the query
	if p.qual != "" {
		s += " USING (" + p.qual + ")"
	}
	if p.check != "" {
		s += " WITH CHECK (" + p.check + ")"
	}
	return s
}

func diffPolicies(s, d *schemaInfo) []Difference {
	var out []Difference
	each(s.policies, d.policies, func(p *policyDef) int64 { return p.oid }, func(m member, sp, dp *policyDef, inSrc, inDst bool, o order) {
		diff := Difference{Kind: "policy", Object: m.String(), Table: m.table.String(), order: o}
		drop := "DROP POLICY " + ident(m.name) + " ON " + m.table.ident() + ";"
		switch {
		case inSrc && !inDst:
			diff.Source = sp.create(m)
			diff.Fix = diff.Source + ";"
		case !inSrc && inDst:
			diff.Target = dp.create(m)
			diff.Fix = drop
		default:
			diff.Source, diff.Target = sp.create(m), dp.create(m)
			if normalizeExpr(diff.Source) == normalizeExpr(diff.Target) {
				return
			}
			diff.Fix = drop + "\n" + diff.Source + ";"
		}
		out = append(out, diff)
	})
	return out
}

// ---- reporting --------------------------------------------------------------

// WriteDiff prints differences for a DBA: one block each, tagged DIFF or
// WARN, with both definitions (a line diff when they span lines) and the
// fix, then a summary line.
func WriteDiff(w io.Writer, ds []Difference) {
	warnings := 0
	for _, d := range ds {
		tag := "DIFF"
		if d.Warning {
			tag = "WARN"
			warnings++
		}
		state := "differs"
		switch {
		case d.Target == "":
			state = "missing on the target"
		case d.Source == "":
			state = "only on the target"
		}
		fmt.Fprintf(w, "[%s] %s %s: %s\n", tag, d.Kind, d.Object, state)
		switch {
		case d.Source != "" && d.Target != "" && (strings.Contains(d.Source, "\n") || strings.Contains(d.Target, "\n")):
			fmt.Fprintln(w, "    --- source")
			fmt.Fprintln(w, "    +++ target")
			for _, l := range lineDiff(trimLines(d.Source), trimLines(d.Target)) {
				fmt.Fprintln(w, "    "+l)
			}
		default:
			if d.Source != "" {
				writeIndented(w, "    source: ", d.Source)
			}
			if d.Target != "" {
				writeIndented(w, "    target: ", d.Target)
			}
		}
		switch {
		case d.Fix != "":
			writeIndented(w, "    fix:    ", d.Fix)
		case !d.Warning:
			fmt.Fprintln(w, "    fix:    none that is safe; change the target by hand")
		}
	}
	blocking := len(ds) - warnings
	switch {
	case len(ds) == 0:
		fmt.Fprintln(w, "schemas equal")
	case blocking == 0:
		fmt.Fprintf(w, "schemas equal but for %d warning(s)\n", warnings)
	default:
		fmt.Fprintf(w, "schemas differ: %d difference(s), %d warning(s)\n", blocking, warnings)
	}
}

func writeIndented(w io.Writer, head, text string) {
	pad := strings.Repeat(" ", len(head))
	for i, l := range trimLines(text) {
		if i == 0 {
			fmt.Fprintln(w, head+l)
		} else {
			fmt.Fprintln(w, pad+l)
		}
	}
}

func trimLines(s string) []string {
	return strings.Split(strings.TrimRight(s, "\n"), "\n")
}

// lineDiff marks each line " " (both), "-" (source only) or "+" (target
// only), from a longest common subsequence.
func lineDiff(a, b []string) []string {
	n, m := len(a), len(b)
	lcs := make([][]int, n+1)
	for i := range lcs {
		lcs[i] = make([]int, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if a[i] == b[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var out []string
	i, j := 0, 0
	for i < n && j < m {
		switch {
		case a[i] == b[j]:
			out = append(out, " "+a[i])
			i++
			j++
		case lcs[i+1][j] >= lcs[i][j+1]:
			out = append(out, "-"+a[i])
			i++
		default:
			out = append(out, "+"+b[j])
			j++
		}
	}
	for ; i < n; i++ {
		out = append(out, "-"+a[i])
	}
	for ; j < m; j++ {
		out = append(out, "+"+b[j])
	}
	return out
}

// ---- normalising ------------------------------------------------------------
//
// Two major versions print the same object differently. What Diff found
// restoring a pg_dump 15 archive of the fixture from 13, 14 and 15 into 15
// to 18, and how it copes:
//
//   - View queries: from 16 on, pg_get_viewdef leaves column names
//     unqualified when the query reads one relation ("SELECT id FROM t"
//     where 15 printed "SELECT t.id FROM t"). Text rules cannot tell that
//     from a real change, so the target renders the source's query itself:
//     renderViewsLikeTarget.
//   - Procedures: from 14 on, argument lists print the IN mode ("(IN x
//     integer)" where 13 printed "(x integer)"), in the identity used as the
//     key and in pg_get_functiondef: normalizeArgs, normalizeFunction.
//   - A range type gets a multirange type and constructor functions from 14
//     on: they depend on the range and are left out (types of kind 'm',
//     functions with an internal dependency).
//   - NOT NULL constraints are rows of pg_constraint from 18 on, with a
//     name, NOT VALID and NO INHERIT; before, a column flag. They are left
//     out of the constraints and compared with their column: against an
//     older side, an 18 side's plain (valid, inherited) one equals the flag
//     and NOT VALID or NO INHERIT is a difference; between two 18 sides the
//     name counts too (notNullText).
//   - Enum sort orders are renumbered by a restore (a label added BEFORE
//     another gets 1.5): labels are compared in order, not by number.
//   - Contrib extensions have other default versions: a warning.
//   - Whitespace is folded everywhere.

// normalizeExpr folds whitespace.
func normalizeExpr(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// normalizeArgs drops the IN mode, the default, from an argument list.
func normalizeArgs(args string) string {
	parts := splitArgs(args)
	for i, p := range parts {
		parts[i] = strings.TrimPrefix(p, "IN ")
	}
	return strings.Join(parts, ", ")
}

// splitArgs splits an argument list at its top-level commas (a default
// value or a quoted name may hold one).
func splitArgs(args string) []string {
	var parts []string
	depth, start, quote := 0, 0, byte(0)
	for i := 0; i < len(args); i++ {
		c := args[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case c == '(' || c == '[':
			depth++
		case c == ')' || c == ']':
			depth--
		case c == ',' && depth == 0:
			parts = append(parts, strings.TrimSpace(args[start:i]))
			start = i + 1
		}
	}
	if rest := strings.TrimSpace(args[start:]); rest != "" || len(parts) > 0 {
		parts = append(parts, rest)
	}
	return parts
}

// normalizeFunction applies normalizeArgs to the argument list in the first
// line of pg_get_functiondef's output, then folds whitespace.
func normalizeFunction(def string) string {
	first, rest, _ := strings.Cut(def, "\n")
	if open := strings.Index(first, "("); open >= 0 {
		if close := strings.LastIndex(first, ")"); close > open {
			first = first[:open+1] + normalizeArgs(first[open+1:close]) + first[close:]
		}
	}
	return normalizeExpr(first + "\n" + rest)
}

// sameView compares two views, using the target's rendering of the source's
// query when there is one.
func sameView(sv, dv *viewDef) bool {
	if sv.kind != dv.kind || strings.Join(sv.options, ",") != strings.Join(dv.options, ",") {
		return false
	}
	if normalizeExpr(sv.query) == normalizeExpr(dv.query) {
		return true
	}
	return sv.asTarget != "" && normalizeExpr(sv.asTarget) == normalizeExpr(dv.query)
}

// renderViewsLikeTarget asks the target's server how it would print each
// source view query that reads differently from the target's: it creates the
// query as a temporary view and reads it back, in a transaction it rolls
// back. A query the target cannot parse (it lacks a table, say) keeps its
// text, and the views differ.
func renderViewsLikeTarget(ctx context.Context, dst *cluster.Conn, s, d *schemaInfo) error {
	var todo []*viewDef
	for q, sv := range s.views {
		if dv, ok := d.views[q]; ok && normalizeExpr(sv.query) != normalizeExpr(dv.query) {
			todo = append(todo, sv)
		}
	}
	if len(todo) == 0 {
		return nil
	}
	tx, err := dst.Begin(ctx)
	if err != nil {
		return dst.Wrap("render views", err)
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(ctx, diffSettings); err != nil {
		return dst.Wrap("render views: pin settings", err)
	}
	for _, v := range todo {
		if _, err := tx.Exec(ctx, "SAVEPOINT pgmove_view"); err != nil {
			return dst.Wrap("render views", err)
		}
		// The query is the source server's own rendering of a view, with
		// every name qualified: it is SQL, not user input.
		_, err := tx.Exec(ctx, "CREATE TEMPORARY VIEW pgmove_diff_view AS "+strings.TrimRight(strings.TrimSpace(v.query), ";"))
		if err == nil {
			err = tx.QueryRow(ctx, "SELECT pg_catalog.pg_get_viewdef('pg_temp.pgmove_diff_view'::pg_catalog.regclass)").Scan(&v.asTarget)
		}
		if _, rerr := tx.Exec(ctx, "ROLLBACK TO SAVEPOINT pgmove_view"); rerr != nil {
			return dst.Wrap("render views", rerr)
		}
		if ctx.Err() != nil {
			return dst.Wrap("render views", ctx.Err())
		}
		// An err here means the target cannot parse the query: the views
		// stay different.
	}
	return nil
}
