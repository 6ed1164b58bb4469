package catalog

import (
	"context"
	"embed"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"unicode"

	"github.com/jackc/pgx/v5"

	"github.com/pgmove/pgmove/internal/cluster"
	"github.com/pgmove/pgmove/internal/config"
)

//go:embed sql/*.sql
var sqlFiles embed.FS

func query(name string) string {
	b, err := sqlFiles.ReadFile("sql/" + name + ".sql")
	if err != nil {
		panic("catalog: missing embedded query " + name)
	}
	return string(b)
}

// Table is one user relation: a plain, partitioned or unlogged table, a
// foreign table or a materialized view.
type Table struct {
	OID         uint32
	Schema      string
	Name        string
	Kind        byte // 'r' table, 'p' partitioned, 'f' foreign, 'm' matview
	Persistence byte // 'p' permanent, 'u' unlogged
	ReplIdent   byte // 'd' default, 'n' nothing, 'f' full, 'i' index
	Partition   bool // a partition of a partitioned table
	RootOID     uint32
	HasPK       bool
	IdentIndex  string // the index of REPLICA IDENTITY USING INDEX
	Bytes       int64  // pg_table_size; for partitioned tables the sum of the leaves
	EstRows     int64
	RLS         bool
	Triggers    bool
	Generated   []string // stored generated columns
}

// Ident is the quoted, schema-qualified name, safe to paste into SQL.
func (t *Table) Ident() string { return pgx.Identifier{t.Schema, t.Name}.Sanitize() }

// String is the name as a DBA reads it (quoted only where needed).
func (t *Table) String() string { return QuoteName(t.Schema) + "." + QuoteName(t.Name) }

// Plain reports an ordinary permanent table (possibly a partition).
func (t *Table) Plain() bool { return t.Kind == 'r' && t.Persistence == 'p' }

// HasIdentity reports whether UPDATE and DELETE can be published: a primary
// key under the default identity, an identity index, or FULL.
func (t *Table) HasIdentity() bool {
	switch t.ReplIdent {
	case 'f':
		return true
	case 'i':
		return t.IdentIndex != ""
	case 'd':
		return t.HasPK
	}
	return false
}

// Snapshot is what pgmove reads of one database's catalogue.
type Snapshot struct {
	Tables    []*Table
	byOID     map[uint32]*Table
	byName    map[[2]string]*Table // Find's: callers look up every table of another snapshot
	Sequences []*Sequence
}

// ByOID finds a relation of the snapshot.
func (s *Snapshot) ByOID(oid uint32) *Table { return s.byOID[oid] }

// Find returns the relation schema.name, or nil.
func (s *Snapshot) Find(schema, name string) *Table {
	if s.byName != nil {
		return s.byName[[2]string{schema, name}]
	}
	for _, t := range s.Tables {
		if t.Schema == schema && t.Name == name {
			return t
		}
	}
	return nil
}

// Root returns the top partitioned table of a partition, or the table itself.
func (s *Snapshot) Root(t *Table) *Table {
	if t.Partition {
		if r := s.byOID[t.RootOID]; r != nil {
			return r
		}
	}
	return t
}

// Tables reads every user relation of the connected database, with its size.
func Tables(ctx context.Context, c *cluster.Conn) (*Snapshot, error) { return readTables(ctx, c, true) }

// TablesWithoutSizes reads them without sizes (Bytes stays 0): the form for
// a target, whose sizes pgmove does not use. Sizing stats every file of
// every table, which on thousands of tables is most of the query's time.
func TablesWithoutSizes(ctx context.Context, c *cluster.Conn) (*Snapshot, error) {
	return readTables(ctx, c, false)
}

func readTables(ctx context.Context, c *cluster.Conn, sizes bool) (*Snapshot, error) {
	// PostgreSQL 10 and 11 have no pg_partition_root/pg_partition_tree and no
	// generated columns.
	q := query("relations")
	if c.VersionNum < 120000 {
		q = query("relations_pg10")
	}
	rows, err := c.Query(ctx, q, sizes)
	if err != nil {
		return nil, c.Wrap("list tables", err)
	}
	snap := &Snapshot{byOID: map[uint32]*Table{}, byName: map[[2]string]*Table{}}
	for rows.Next() {
		t := &Table{}
		var oid, root int64
		var kind, pers, ident string
		var treeBytes int64
		if err := rows.Scan(&oid, &t.Schema, &t.Name, &kind, &pers, &ident, &t.Partition, &root, &t.HasPK,
			&t.IdentIndex, &t.Bytes, &treeBytes, &t.EstRows, &t.RLS, &t.Triggers, &t.Generated); err != nil {
			rows.Close()
			return nil, c.Wrap("list tables", err)
		}
		t.OID, t.RootOID = uint32(oid), uint32(root)
		t.Kind, t.Persistence, t.ReplIdent = kind[0], pers[0], ident[0]
		if t.Kind == 'p' {
			t.Bytes = treeBytes
		}
		snap.Tables = append(snap.Tables, t)
		snap.byOID[t.OID] = t
		snap.byName[[2]string{t.Schema, t.Name}] = t
	}
	if err := rows.Err(); err != nil {
		return nil, c.Wrap("list tables", err)
	}
	return snap, nil
}

// Published returns the tables a publication for this migration holds,
// honouring the include/exclude filters: ordinary permanent tables, with
// partitions represented by their root on PostgreSQL 13+ (published via the
// root) and by their leaves before that. Unlogged, foreign and extension-owned
// tables and materialized views are never published.
func (s *Snapshot) Published(version int, include, exclude []config.Pattern) []*Table {
	viaRoot := version >= 130000
	var out []*Table
	for _, t := range s.Tables {
		if t.Persistence != 'p' {
			continue
		}
		switch t.Kind {
		case 'r':
			if t.Partition && viaRoot {
				continue
			}
		case 'p':
			if !viaRoot || t.Partition {
				continue
			}
		default:
			continue
		}
		if config.Selected(include, exclude, t.Schema, t.Name) {
			out = append(out, t)
		}
	}
	return out
}

// Leaves returns the tables that hold rows for a published set: plain tables
// and the leaf partitions of published partitioned tables.
func (s *Snapshot) Leaves(published []*Table) []*Table {
	roots := map[uint32]bool{}
	var out []*Table
	for _, t := range published {
		if t.Kind == 'p' {
			roots[t.OID] = true
		} else {
			out = append(out, t)
		}
	}
	for _, t := range s.Tables {
		if t.Kind == 'r' && t.Partition && t.Persistence == 'p' && roots[t.RootOID] {
			out = append(out, t)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Schema != out[j].Schema {
			return out[i].Schema < out[j].Schema
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// IdentityCandidate is a unique index PostgreSQL accepts as replica identity.
type IdentityCandidate struct {
	Index   string
	Bytes   int64
	KeyCols int
}

// IdentityCandidates finds, per table OID, the usable unique indexes,
// best (fewest columns, smallest) first.
func IdentityCandidates(ctx context.Context, c *cluster.Conn, oids []uint32) (map[uint32][]IdentityCandidate, error) {
	out := map[uint32][]IdentityCandidate{}
	if len(oids) == 0 {
		return out, nil
	}
	q := query("identity_candidates")
	if c.VersionNum < 110000 { // INCLUDE columns (indnkeyatts) arrived in 11
		q = strings.ReplaceAll(q, "indnkeyatts", "indnatts")
	}
	rows, err := c.Query(ctx, q, oids)
	if err != nil {
		return nil, c.Wrap("list unique indexes", err)
	}
	defer rows.Close()
	for rows.Next() {
		var oid int64
		var ic IdentityCandidate
		if err := rows.Scan(&oid, &ic.Index, &ic.Bytes, &ic.KeyCols); err != nil {
			return nil, c.Wrap("list unique indexes", err)
		}
		out[uint32(oid)] = append(out[uint32(oid)], ic)
	}
	return out, c.Wrap("list unique indexes", rows.Err())
}

// Extension is an installed extension.
type Extension struct{ Name, Version, Schema string }

// Extensions lists installed extensions.
func Extensions(ctx context.Context, c *cluster.Conn) ([]Extension, error) {
	rows, err := c.Query(ctx, query("extensions"))
	if err != nil {
		return nil, c.Wrap("list extensions", err)
	}
	exts, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Extension, error) {
		var e Extension
		return e, r.Scan(&e.Name, &e.Version, &e.Schema)
	})
	return exts, c.Wrap("list extensions", err)
}

// AvailableExtensions lists the extensions the server can install, by name
// with their default version.
func AvailableExtensions(ctx context.Context, c *cluster.Conn) (map[string]string, error) {
	rows, err := c.Query(ctx, query("available_extensions"))
	if err != nil {
		return nil, c.Wrap("list available extensions", err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var n, v string
		if err := rows.Scan(&n, &v); err != nil {
			return nil, c.Wrap("list available extensions", err)
		}
		out[n] = v
	}
	return out, c.Wrap("list available extensions", rows.Err())
}

// Slot is a replication slot.
type Slot struct {
	Name, Plugin, Type, Database string
	Active                       bool
	ActivePID                    int
	RetainedBytes                int64
	ConfirmedFlush               string
}

// Slots lists the cluster's replication slots.
func Slots(ctx context.Context, c *cluster.Conn) ([]Slot, error) {
	rows, err := c.Query(ctx, query("slots"))
	if err != nil {
		return nil, c.Wrap("list replication slots", err)
	}
	slots, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Slot, error) {
		var s Slot
		return s, r.Scan(&s.Name, &s.Plugin, &s.Type, &s.Database, &s.Active, &s.ActivePID, &s.RetainedBytes, &s.ConfirmedFlush)
	})
	return slots, c.Wrap("list replication slots", err)
}

// Publication is a publication of the current database.
type Publication struct {
	Name                             string
	AllTables                        bool
	Insert, Update, Delete, Truncate bool
}

// Publications lists the current database's publications.
func Publications(ctx context.Context, c *cluster.Conn) ([]Publication, error) {
	rows, err := c.Query(ctx, query("publications"))
	if err != nil {
		return nil, c.Wrap("list publications", err)
	}
	pubs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Publication, error) {
		var p Publication
		return p, r.Scan(&p.Name, &p.AllTables, &p.Insert, &p.Update, &p.Delete, &p.Truncate)
	})
	return pubs, c.Wrap("list publications", err)
}

// QualifiedName is a schema and a relation name.
type QualifiedName struct{ Schema, Name string }

// String quotes where needed.
func (q QualifiedName) String() string { return QuoteName(q.Schema) + "." + QuoteName(q.Name) }

// Ident is safe to paste into SQL.
func (q QualifiedName) Ident() string { return pgx.Identifier{q.Schema, q.Name}.Sanitize() }

// PublicationTables lists the tables a publication names directly.
func PublicationTables(ctx context.Context, c *cluster.Conn, pub string) ([]QualifiedName, error) {
	rows, err := c.Query(ctx, query("publication_tables"), pub)
	if err != nil {
		return nil, c.Wrap(fmt.Sprintf("list tables of publication %q", pub), err)
	}
	names, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (QualifiedName, error) {
		var q QualifiedName
		return q, r.Scan(&q.Schema, &q.Name)
	})
	return names, c.Wrap(fmt.Sprintf("list tables of publication %q", pub), err)
}

// Subscription is a subscription of the current database.
type Subscription struct {
	OID          uint32
	Name         string
	Enabled      bool
	SlotName     string
	Publications string
}

// Subscriptions lists the current database's subscriptions.
func Subscriptions(ctx context.Context, c *cluster.Conn) ([]Subscription, error) {
	rows, err := c.Query(ctx, query("subscriptions"))
	if err != nil {
		return nil, c.Wrap("list subscriptions", err)
	}
	subs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Subscription, error) {
		var s Subscription
		var oid int64
		err := r.Scan(&oid, &s.Name, &s.Enabled, &s.SlotName, &s.Publications)
		s.OID = uint32(oid)
		return s, err
	})
	return subs, c.Wrap("list subscriptions", err)
}

// QuoteName quotes an identifier only when PostgreSQL would need it, for
// messages a DBA reads. SQL text uses pgx.Identifier.Sanitize.
func QuoteName(s string) string {
	if s == "" {
		return `""`
	}
	for i, r := range s {
		ok := r >= 'a' && r <= 'z' || r == '_' || (i > 0 && (r >= '0' && r <= '9' || r == '$'))
		if !ok {
			return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
		}
	}
	if reserved[s] {
		return `"` + s + `"`
	}
	return s
}

// Printable is s for a terminal line: control characters (a newline in a
// table's name) as Go-style escapes such as \n and \x1b, so one name stays
// on one line and cannot move the cursor; everything else as it is.
func Printable(s string) string {
	if !strings.ContainsFunc(s, unicode.IsControl) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if !unicode.IsControl(r) {
			b.WriteRune(r)
			continue
		}
		q := strconv.QuoteRune(r) // '\n', '\x1b', '\u0085'
		b.WriteString(q[1 : len(q)-1])
	}
	return b.String()
}

// reserved holds the SQL keywords that cannot be bare identifiers; enough to
// print names right, not a parser.
var reserved = map[string]bool{
	"all": true, "analyse": true, "analyze": true, "and": true, "any": true, "array": true, "as": true, "asc": true,
	"asymmetric": true, "both": true, "case": true, "cast": true, "check": true, "collate": true, "column": true,
	"constraint": true, "create": true, "current_catalog": true, "current_date": true, "current_role": true,
	"current_time": true, "current_timestamp": true, "current_user": true, "default": true, "deferrable": true,
	"desc": true, "distinct": true, "do": true, "else": true, "end": true, "except": true, "false": true,
	"fetch": true, "for": true, "foreign": true, "from": true, "grant": true, "group": true, "having": true,
	"in": true, "initially": true, "intersect": true, "into": true, "lateral": true, "leading": true, "limit": true,
	"localtime": true, "localtimestamp": true, "not": true, "null": true, "offset": true, "on": true, "only": true,
	"or": true, "order": true, "placing": true, "primary": true, "references": true, "returning": true,
	"select": true, "session_user": true, "some": true, "symmetric": true, "table": true, "then": true, "to": true,
	"trailing": true, "true": true, "union": true, "unique": true, "user": true, "using": true, "variadic": true,
	"when": true, "where": true, "window": true, "with": true,
}

// LedgerSchema is the schema pgmove keeps its copy ledger in on the target
// (package copy). It is pgmove's own: every listing, comparison, dump and
// publication leaves it out, on both sides.
const LedgerSchema = "pgmove"
