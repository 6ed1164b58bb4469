package copy

import (
	"context"
	"fmt"
	"slices"
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
	// Trim marks the columns whose values travel without their trailing
	// blanks (character(n) on both sides; see trimBlanks); nil when there
	// are none.
	Trim   []bool
	Binary bool
	// Direct: the target table has the same name and is not partitioned
	// there, so FREEZE can be used when the table is loaded whole.
	Direct bool
	Bytes  int64
	// SplitOn is "ctid" when the table is copied in CTID ranges, empty
	// when it is read whole.
	SplitOn string
	Chunks  []Chunk
	// Fan is the number of target sessions one whole-table read is dealt
	// to (0 or 1: a single stream). Sources before 14 cannot read a range
	// of pages, so a big table is read once and its rows shared out.
	Fan int
	dst *catalog.Table // the target relation rows go to, nil if missing
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
	// padded: the type is character(n), whose values are stored padded
	// with blanks to n characters.
	padded bool
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
		                                AND e.typsend::oid <> 0 AND e.typreceive::oid <> 0)),
		a.atttypid = 'pg_catalog.bpchar'::pg_catalog.regtype AND a.atttypmod > 4
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
		if err := rows.Scan(&rel, &col.name, &col.typ, &col.generated, &col.binary, &col.padded); err != nil {
			return nil, c.Wrap("read columns", err)
		}
		out[uint32(rel)] = append(out[uint32(rel)], col)
	}
	return out, c.Wrap("read columns", rows.Err())
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
		var trim []bool
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
			trim = append(trim, c.padded && d.padded)
		}
		if slices.Contains(trim, true) {
			ct.Trim = trim
		}
		if len(ct.Columns) == 0 {
			// Without a column list the target's COPY fills every column
			// it does not generate: there must be none, as on the source.
			var extra []string
			for _, c := range dcols[targets[ct].OID] {
				if !c.generated {
					extra = append(extra, catalog.QuoteName(c.name))
				}
			}
			if len(extra) > 0 {
				return nil, fmt.Errorf("target: %s has no column to copy on the source but column(s) %s on the target (schema drift); make the schemas agree", ct.Name, strings.Join(extra, ", "))
			}
		}
		ct.plan(src, splitLarger, parts)
	}
	sort.SliceStable(plan, func(i, j int) bool { return plan[i].Bytes > plan[j].Bytes })
	return plan, nil
}

// plan decides how a big table is loaded in parallel. From PostgreSQL 14
// it is split into ranges of physical position (CTID): each part reads only
// its own pages (a TID range scan) in a transaction of its own. Before 14
// any range would make each part read the whole table (or walk an index,
// which costs the source some 40% more), so the table is read once, in one
// stream, and pgmove deals its rows out to several target sessions.
func (t *Table) plan(src *cluster.Conn, splitLarger int64, parts int) {
	n := 1
	if splitLarger > 0 && t.Bytes > splitLarger {
		n = int((t.Bytes + splitLarger - 1) / splitLarger)
		n = max(n, parts)
	}
	t.Chunks = []Chunk{{}}
	switch {
	case n <= 1:
	case src.VersionNum >= 140000:
		t.SplitOn = "ctid"
		t.Chunks = make([]Chunk, n)
		for i := range t.Chunks {
			t.Chunks[i].Seq = i
		}
	case min(n, parts) > 1:
		t.Fan = min(n, parts)
	}
}

// Streams is how many target sessions load the table at once, at most.
func (t *Table) Streams() int { return max(len(t.Chunks), t.Fan, 1) }

// resolveRanges fills each chunk's CTID range from the table's number of
// pages, inside the snapshot. The last range is open-ended.
func (t *Table) resolveRanges(ctx context.Context, src *cluster.Conn) error {
	if t.SplitOn != "ctid" {
		return nil
	}
	n := int64(len(t.Chunks))
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

// copyOut is the source side's COPY statement for a chunk.
func (t *Table) copyOut(c Chunk, binary bool) string {
	format := "text"
	if binary {
		format = "binary"
	}
	if c.Where == "" {
		return fmt.Sprintf("COPY %s%s TO STDOUT (FORMAT %s)", t.Src.Ident(), t.columnList(), format)
	}
	// A select list may be empty ("SELECT FROM t" has a row of no column
	// per row of t), so a table without copyable columns reads its ranges too.
	return fmt.Sprintf("COPY (SELECT %s FROM ONLY %s WHERE %s) TO STDOUT (FORMAT %s)", strings.Join(t.Columns, ", "), t.Src.Ident(), c.Where, format)
}

// columnList is the column list of the table's COPY statements: " (a, b)",
// or nothing for a table without a column to copy (no column at all, or
// only generated ones), where "COPY t ()" is a syntax error. COPY without
// a list then means the same columns: every one but the generated ones,
// none here (Plan made sure the target has no other column to fill).
func (t *Table) columnList() string {
	if len(t.Columns) == 0 {
		return ""
	}
	return " (" + strings.Join(t.Columns, ", ") + ")"
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
	return fmt.Sprintf("COPY %s%s FROM STDIN (%s)", t.Target.Ident(), t.columnList(), opts)
}
