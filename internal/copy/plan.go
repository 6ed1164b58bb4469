package copy

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/pgmove/pgmove/internal/catalog"
	"github.com/pgmove/pgmove/internal/cluster"
)

// Table is one source table (plain, or a leaf partition) and how its rows
// reach the target.
type Table struct {
	Src     *catalog.Table
	Name    string // as a DBA reads it
	Target  catalog.QualifiedName
	Columns []string // quoted, in source order, generated columns left out
	Binary  bool
	// Direct: the target table has the same name and is not partitioned
	// there, so FREEZE can be used when the table is loaded whole.
	Direct bool
	Bytes  int64
	// Split: the integer key column (quoted) or "ctid" to split on; empty
	// when the table is copied whole.
	SplitOn string
	Chunks  []Chunk
	dst     *catalog.Table // the target relation rows go to, nil if missing
}

// Chunk is a range of a table copied in one target transaction.
type Chunk struct {
	Where string // SQL condition; empty for the whole table
	Seq   int
}

type column struct {
	name      string
	typ       string
	generated bool
	binary    bool
}

// readColumns reads the columns of the given relations, with whether their
// type has binary send/receive functions (an array's element must have them
// too).
func readColumns(ctx context.Context, c *cluster.Conn, oids []uint32) (map[uint32][]column, error) {
	// Generated columns exist from PostgreSQL 12.
	gen := "a.attgenerated <> ''"
	if c.VersionNum < 120000 {
		gen = "false"
	}
	q := `SELECT a.attrelid::int8, a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod), ` + gen + `,
		t.typsend::oid <> 0 AND t.typreceive::oid <> 0
		  AND (t.typelem = 0 OR EXISTS (SELECT 1 FROM pg_catalog.pg_type e WHERE e.oid = t.typelem
		                                AND e.typsend::oid <> 0 AND e.typreceive::oid <> 0))
		FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
		WHERE a.attrelid = ANY($1::oid[]) AND a.attnum > 0 AND NOT a.attisdropped
		ORDER BY a.attrelid, a.attnum`
	rows, err := c.Query(ctx, q, oids)
	if err != nil {
		return nil, c.Wrap("read columns", err)
	}
	defer rows.Close()
	out := map[uint32][]column{}
	for rows.Next() {
		var rel int64
		var col column
		if err := rows.Scan(&rel, &col.name, &col.typ, &col.generated, &col.binary); err != nil {
			return nil, c.Wrap("read columns", err)
		}
		out[uint32(rel)] = append(out[uint32(rel)], col)
	}
	return out, c.Wrap("read columns", rows.Err())
}

// intKey is a single-column integer primary key, with how closely its
// order follows the rows' physical order (pg_stats.correlation).
type intKey struct {
	column      string // quoted
	correlation float64
}

// intKeys finds, per table, a single-column integer primary key to split on.
func intKeys(ctx context.Context, c *cluster.Conn, oids []uint32) (map[uint32]intKey, error) {
	rows, err := c.Query(ctx, `SELECT x.indrelid::int8, a.attname,
			COALESCE((SELECT s.correlation FROM pg_catalog.pg_stats s
			          WHERE s.schemaname = n.nspname AND s.tablename = r.relname AND s.attname = a.attname), 0)::float8
		FROM pg_catalog.pg_index x
		JOIN pg_catalog.pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = x.indkey[0]
		JOIN pg_catalog.pg_class r ON r.oid = x.indrelid JOIN pg_catalog.pg_namespace n ON n.oid = r.relnamespace
		WHERE x.indrelid = ANY($1::oid[]) AND x.indisprimary AND x.indnatts = 1
		  AND a.atttypid IN ('int2'::regtype, 'int4'::regtype, 'int8'::regtype)`, oids)
	if err != nil {
		return nil, c.Wrap("read primary keys", err)
	}
	defer rows.Close()
	out := map[uint32]intKey{}
	for rows.Next() {
		var rel int64
		var k intKey
		if err := rows.Scan(&rel, &k.column, &k.correlation); err != nil {
			return nil, c.Wrap("read primary keys", err)
		}
		k.column = pgx.Identifier{k.column}.Sanitize()
		out[uint32(rel)] = k
	}
	return out, c.Wrap("read primary keys", rows.Err())
}

// newTable maps a source leaf to where its rows go on the target: the table
// of the same name when it is a plain table there (Direct), else, for a
// partition, the root of its tree, which routes the rows (the target
// partitions differently). dst is nil when neither exists.
func newTable(t *catalog.Table, ssnap, dsnap *catalog.Snapshot) *Table {
	ct := &Table{Src: t, Name: t.String(), Bytes: t.Bytes}
	if d := dsnap.Find(t.Schema, t.Name); d != nil && d.Kind == 'r' {
		ct.Target, ct.Direct, ct.dst = catalog.QualifiedName{Schema: t.Schema, Name: t.Name}, true, d
		return ct
	}
	if t.Partition {
		root := ssnap.Root(t)
		if d := dsnap.Find(root.Schema, root.Name); d != nil {
			ct.Target, ct.dst = catalog.QualifiedName{Schema: root.Schema, Name: root.Name}, d
		}
	}
	return ct
}

// Plan decides how each table is copied: columns, format, target and
// ranges. src must be inside the copy's snapshot, so key ranges are those of
// the rows the copy will see.
func Plan(ctx context.Context, src, dst *cluster.Conn, ssnap, dsnap *catalog.Snapshot, leaves []*catalog.Table, splitLarger int64, parts int) ([]*Table, error) {
	var srcOIDs []uint32
	for _, t := range leaves {
		srcOIDs = append(srcOIDs, t.OID)
	}
	scols, err := readColumns(ctx, src, srcOIDs)
	if err != nil {
		return nil, err
	}
	keys, err := intKeys(ctx, src, srcOIDs)
	if err != nil {
		return nil, err
	}
	var plan []*Table
	targets := map[*Table]*catalog.Table{}
	var dstOIDs []uint32
	for _, t := range leaves {
		ct := newTable(t, ssnap, dsnap)
		d := ct.dst
		if d == nil {
			if t.Partition {
				root := ssnap.Root(t)
				return nil, fmt.Errorf("target: neither %s nor its root %s exists on the target; run pgmove copy-schema", t, root)
			}
			return nil, fmt.Errorf("target: table %s does not exist on the target; run pgmove copy-schema", t)
		}
		targets[ct] = d
		dstOIDs = append(dstOIDs, d.OID)
		plan = append(plan, ct)
	}
	dcols, err := readColumns(ctx, dst, dstOIDs)
	if err != nil {
		return nil, err
	}
	for _, ct := range plan {
		have := map[string]column{}
		for _, c := range dcols[targets[ct].OID] {
			have[c.name] = c
		}
		// Binary COPY needs binary I/O for every type, the very same types
		// on both sides, and a target of 14 or newer: before 14 the receiver
		// rejects arrays of user types whose OIDs differ between clusters.
		ct.Binary = dst.VersionNum >= 140000
		for _, c := range scols[ct.Src.OID] {
			if c.generated {
				continue // the target computes it
			}
			d, ok := have[c.name]
			if !ok {
				return nil, fmt.Errorf("target: column %s of %s is missing on the target (schema drift); add it there, or rerun pgmove copy-schema", catalog.QuoteName(c.name), ct.Name)
			}
			if d.generated {
				return nil, fmt.Errorf("target: column %s of %s is generated on the target but not on the source; make the schemas agree", catalog.QuoteName(c.name), ct.Name)
			}
			if !c.binary || !d.binary || c.typ != d.typ {
				ct.Binary = false
			}
			ct.Columns = append(ct.Columns, pgx.Identifier{c.name}.Sanitize())
		}
		ct.plan(src, keys[ct.Src.OID], splitLarger, parts)
	}
	sort.SliceStable(plan, func(i, j int) bool { return plan[i].Bytes > plan[j].Bytes })
	return plan, nil
}

// plan splits a big table into ranges. From PostgreSQL 14 the ranges are of
// physical position (CTID): each part reads only its pages (a TID range
// scan). Before, a CTID or key range makes every part read the whole
// table, so a table is split only on an integer primary key whose order
// follows the physical order, read through the key's index.
func (t *Table) plan(src *cluster.Conn, key intKey, splitLarger int64, parts int) {
	n := 1
	if splitLarger > 0 && t.Bytes > splitLarger {
		n = int((t.Bytes + splitLarger - 1) / splitLarger)
		n = max(n, parts)
	}
	switch {
	case n <= 1:
	case src.VersionNum >= 140000:
		t.SplitOn = "ctid"
	case key.column != "" && (key.correlation >= 0.9 || key.correlation <= -0.9):
		t.SplitOn = key.column
	}
	if t.SplitOn == "" {
		t.Chunks = []Chunk{{}}
		return
	}
	t.Chunks = make([]Chunk, n)
	for i := range t.Chunks {
		t.Chunks[i].Seq = i
	}
}

// resolveRanges fills each chunk's condition, inside the snapshot: key
// ranges from the key's min and max, CTID ranges from the number of pages.
// The last range is open-ended.
func (t *Table) resolveRanges(ctx context.Context, src *cluster.Conn) error {
	if t.SplitOn == "" {
		return nil
	}
	n := int64(len(t.Chunks))
	if t.SplitOn == "ctid" {
		var pages int64
		err := src.QueryRow(ctx, "SELECT pg_catalog.pg_relation_size($1::oid) / current_setting('block_size')::int8", t.Src.OID).Scan(&pages)
		if err != nil {
			return src.Wrap("size "+t.Name, err)
		}
		step := max((pages+n-1)/n, 1)
		for i := range t.Chunks {
			lo, hi := int64(i)*step, int64(i+1)*step
			if i == len(t.Chunks)-1 {
				t.Chunks[i].Where = fmt.Sprintf("ctid >= '(%d,0)'::tid", lo)
			} else {
				t.Chunks[i].Where = fmt.Sprintf("ctid >= '(%d,0)'::tid AND ctid < '(%d,0)'::tid", lo, hi)
			}
		}
		return nil
	}
	var lo, hi *int64
	err := src.QueryRow(ctx, fmt.Sprintf("SELECT min(%s)::int8, max(%s)::int8 FROM ONLY %s", t.SplitOn, t.SplitOn, t.Src.Ident())).Scan(&lo, &hi)
	if err != nil {
		return src.Wrap("key range of "+t.Name, err)
	}
	if lo == nil {
		t.SplitOn, t.Chunks = "", []Chunk{{}}
		return nil
	}
	width := (*hi-*lo)/n + 1
	for i := range t.Chunks {
		from := *lo + int64(i)*width
		switch {
		case i == 0 && len(t.Chunks) == 1:
		case i == 0:
			t.Chunks[i].Where = fmt.Sprintf("%s < %d", t.SplitOn, from+width)
		case i == len(t.Chunks)-1:
			t.Chunks[i].Where = fmt.Sprintf("%s >= %d", t.SplitOn, from)
		default:
			t.Chunks[i].Where = fmt.Sprintf("%s >= %d AND %s < %d", t.SplitOn, from, t.SplitOn, from+width)
		}
	}
	return nil
}

// copyOut is the source side's COPY statement for a chunk.
func (t *Table) copyOut(c Chunk, binary bool) string {
	format := "text"
	if binary {
		format = "binary"
	}
	cols := strings.Join(t.Columns, ", ")
	if c.Where == "" {
		return fmt.Sprintf("COPY %s (%s) TO STDOUT (FORMAT %s)", t.Src.Ident(), cols, format)
	}
	return fmt.Sprintf("COPY (SELECT %s FROM ONLY %s WHERE %s) TO STDOUT (FORMAT %s)", cols, t.Src.Ident(), c.Where, format)
}

// copyIn is the target side's COPY statement.
func (t *Table) copyIn(binary, freeze bool) string {
	opts := "FORMAT text"
	if binary {
		opts = "FORMAT binary"
	}
	if freeze {
		opts += ", FREEZE"
	}
	return fmt.Sprintf("COPY %s (%s) FROM STDIN (%s)", t.Target.Ident(), strings.Join(t.Columns, ", "), opts)
}
