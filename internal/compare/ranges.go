package compare

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/pgmove/pgmove/internal/catalog"
	"github.com/pgmove/pgmove/internal/cluster"
)

// RangeRows is about how many rows one range holds: small enough that the
// rows of a differing range are fetched from both sides in a fraction of a
// second, big enough that a range's query costs more than its round trip.
const RangeRows = 50000

// span is one range of keys, lo inclusive and hi exclusive; nil is
// unbounded. The first range of a table has no lo and the last no hi, so
// every row of either side falls in exactly one range whatever the keys.
type span struct{ lo, hi []string }

// job is one table compared by checksum.
type job struct {
	i          int // index in Report.Tables
	s, d       *catalog.Table
	scols      []Column
	dcols      []Column
	key        *Key     // nil: hashed whole
	stypes     []string // the key columns' types on the source
	dtypes     []string // and on the target
	hash       string   // the row hash, the same SQL on both sides
	spans      []span
	spansDone  int // ranges hashed (engine.mu)
	notSettled int
}

// from is the relation a query reads: a partitioned table's rows live in
// its partitions, a plain table's in itself only.
func from(t *catalog.Table) string {
	if t.Kind == 'p' {
		return t.Ident() + " AS t"
	}
	return "ONLY " + t.Ident() + " AS t"
}

// keyList is the key columns as SQL, "t.a, t.b".
func (j *job) keyList() string {
	q := make([]string, len(j.key.Columns))
	for i, c := range j.key.Columns {
		q[i] = "t." + pgx.Identifier{c}.Sanitize()
	}
	return strings.Join(q, ", ")
}

// where is the predicate of a span on one side, its bounds numbered from
// $1; key values travel as text and are cast to the side's key types.
func (j *job) where(sp span, types []string, n int) (string, []any) {
	if j.key == nil {
		return "", nil
	}
	var conds []string
	var args []any
	tuple := func(vals []string) string {
		q := make([]string, len(vals))
		for i, v := range vals {
			n++
			q[i] = fmt.Sprintf("CAST($%d::text AS %s)", n, types[i])
			args = append(args, v)
		}
		return "(" + strings.Join(q, ", ") + ")"
	}
	keys := "(" + j.keyList() + ")"
	if len(j.key.Columns) == 1 {
		keys = j.keyList()
	}
	one := func(vals []string) string {
		s := tuple(vals)
		if len(vals) == 1 {
			return strings.TrimSuffix(strings.TrimPrefix(s, "("), ")")
		}
		return s
	}
	if sp.lo != nil {
		conds = append(conds, keys+" >= "+one(sp.lo))
	}
	if sp.hi != nil {
		conds = append(conds, keys+" < "+one(sp.hi))
	}
	if len(conds) == 0 {
		return "", nil
	}
	return " WHERE " + strings.Join(conds, " AND "), args
}

// split cuts a keyed table into spans of about RangeRows rows, from a
// sample of the source's keys (TABLESAMPLE SYSTEM reads a few pages, not
// the table). The bounds need not be exact: they are the same on both
// sides, and only the ranges' sizes depend on them.
func (j *job) split(ctx context.Context, src *cluster.Conn) error {
	j.spans = []span{{}}
	if j.key == nil || !j.key.ByteOrdered || j.s.EstRows <= 2*RangeRows {
		return nil
	}
	n := int(j.s.EstRows / RangeRows)
	const perRange = 20 // sampled keys per range: enough to even them out
	// Enough rows, and pages spread over the table (SYSTEM samples whole
	// pages): about 8 a range.
	pct := float64(n*perRange) * 100 / float64(j.s.EstRows) * 2
	if pages := float64(j.s.Bytes) / 8192; pages > 0 {
		pct = max(pct, float64(n*8)*100/pages)
	}
	pct = min(100, pct)
	cols := make([]string, len(j.key.Columns))
	for i, c := range j.key.Columns {
		cols[i] = "t." + pgx.Identifier{c}.Sanitize() + "::text"
	}
	q := fmt.Sprintf("SELECT %s FROM %s TABLESAMPLE SYSTEM (%g) ORDER BY %s", strings.Join(cols, ", "), from(j.s), pct, j.keyList())
	rows, err := src.Query(ctx, q)
	if err != nil {
		return src.Wrap("sample the keys of "+j.s.String(), err)
	}
	sample, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) ([]string, error) {
		vals := make([]string, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		return vals, r.Scan(ptrs...)
	})
	if err != nil {
		return src.Wrap("sample the keys of "+j.s.String(), err)
	}
	n = min(n, len(sample)/2)
	if n < 2 {
		return nil
	}
	var bounds [][]string
	for i := 1; i < n; i++ {
		b := sample[i*len(sample)/n]
		if len(bounds) > 0 && strings.Join(bounds[len(bounds)-1], "\x00") == strings.Join(b, "\x00") {
			continue
		}
		bounds = append(bounds, b)
	}
	j.spans = j.spans[:0]
	var lo []string
	for _, b := range bounds {
		j.spans = append(j.spans, span{lo, b})
		lo = b
	}
	j.spans = append(j.spans, span{lo, nil})
	return nil
}

// digest is a range's count and hash sum on one side.
type digest struct {
	rows int64
	sum  string
}

// hashSpan counts and hashes one span on one side: the sum (as numeric,
// which cannot overflow) of the rows' 64-bit hashes, so row order does not
// matter.
func (j *job) hashSpan(ctx context.Context, c *cluster.Conn, t *catalog.Table, types []string, sp span) (digest, error) {
	w, args := j.where(sp, types, 0)
	q := "SELECT count(*), COALESCE(sum(" + j.hash + "), 0)::text FROM " + from(t) + w
	var d digest
	if err := c.QueryRow(ctx, q, args...).Scan(&d.rows, &d.sum); err != nil {
		return d, c.Wrap("compare "+t.String(), err)
	}
	return d, nil
}

// LeafRows is the size of range whose rows locate reads from both sides;
// a bigger differing range is split again first.
const LeafRows = 10000

// inner cuts a span into about n spans of equal row counts, from one
// side's keys in the span (one ordered scan of its key index).
func (j *job) inner(ctx context.Context, c *cluster.Conn, t *catalog.Table, types []string, sp span, rows int64, n int) ([]span, error) {
	step := max(1, rows/int64(n))
	w, args := j.where(sp, types, 0)
	cols := make([]string, len(j.key.Columns))
	for i := range j.key.Columns {
		cols[i] = "s.k" + fmt.Sprint(i)
	}
	sel := make([]string, len(j.key.Columns))
	for i, k := range j.key.Columns {
		sel[i] = "t." + pgx.Identifier{k}.Sanitize() + "::text AS k" + fmt.Sprint(i)
	}
	q := fmt.Sprintf("SELECT %s FROM (SELECT %s, pg_catalog.row_number() OVER (ORDER BY %s) AS rn FROM %s%s) AS s WHERE s.rn %% %d = 0 ORDER BY s.rn",
		strings.Join(cols, ", "), strings.Join(sel, ", "), j.keyList(), from(t), w, step)
	r, err := c.Query(ctx, q, args...)
	if err != nil {
		return nil, c.Wrap("split a range of "+t.String(), err)
	}
	bounds, err := pgx.CollectRows(r, func(r pgx.CollectableRow) ([]string, error) {
		vals := make([]string, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		return vals, r.Scan(ptrs...)
	})
	if err != nil {
		return nil, c.Wrap("split a range of "+t.String(), err)
	}
	out := []span{}
	lo := sp.lo
	for _, b := range bounds {
		out = append(out, span{lo, b})
		lo = b
	}
	return append(out, span{lo, sp.hi}), nil
}
