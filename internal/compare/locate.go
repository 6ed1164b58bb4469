package compare

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/pgmove/pgmove/internal/catalog"
	"github.com/pgmove/pgmove/internal/cluster"
)

// Kinds of row difference.
const (
	Missing = "missing" // on the target
	Extra   = "extra"   // on the target
	Changed = "changed"
)

// Row is one row that differs, named by its key.
type Row struct {
	Table   string   `json:"table"`
	Key     KeyValue `json:"key"`
	Kind    string   `json:"kind"`
	Columns []string `json:"columns,omitempty"` // changed: the columns that differ

	keyText []string  // the key's values as text, to select and repair by
	values  []*string // missing or changed: the source's row, column by column
	srcHash *int64    // the source row's hash when read; nil: not on the source
	j       *job
}

// KeyValue is a row's key: column names and their values as JSON, in the
// key's order.
type KeyValue struct {
	Names  []string
	Values []json.RawMessage
}

// MarshalJSON writes the key as an object in the key's column order.
func (k KeyValue) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, n := range k.Names {
		if i > 0 {
			b.WriteString(", ")
		}
		name, _ := json.Marshal(n)
		b.Write(name)
		b.WriteString(": ")
		b.Write(k.Values[i])
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// String is the key as a DBA reads it: id=42, or (a, b)=(1, 'x').
func (k KeyValue) String() string {
	vals := make([]string, len(k.Values))
	for i, v := range k.Values {
		vals[i] = string(v)
	}
	names := make([]string, len(k.Names))
	for i, n := range k.Names {
		names[i] = catalog.QuoteName(n)
	}
	if len(names) == 1 {
		return names[0] + "=" + vals[0]
	}
	return "(" + strings.Join(names, ", ") + ")=(" + strings.Join(vals, ", ") + ")"
}

// keyed is what one side holds of a row: its key as JSON and as text, and
// its hash.
type keyed struct {
	json []json.RawMessage
	text []string
	hash int64
}

// rowsOf reads a span's rows on one side, by key.
func (j *job) rowsOf(ctx context.Context, c *cluster.Conn, t *catalog.Table, types []string, sp span) (map[string]keyed, error) {
	w, args := j.where(sp, types, 0)
	return j.rowsWhere(ctx, c, t, w, args)
}

// rowsByKeys reads the rows of the given keys on one side, 500 at a time.
func (j *job) rowsByKeys(ctx context.Context, c *cluster.Conn, t *catalog.Table, types []string, keys [][]string) (map[string]keyed, error) {
	out := map[string]keyed{}
	for len(keys) > 0 {
		batch := keys[:min(500, len(keys))]
		keys = keys[len(batch):]
		var tuples []string
		var args []any
		for _, k := range batch {
			q := make([]string, len(k))
			for i, v := range k {
				args = append(args, v)
				q[i] = fmt.Sprintf("CAST($%d::text AS %s)", len(args), types[i])
			}
			tuples = append(tuples, "("+strings.Join(q, ", ")+")")
		}
		m, err := j.rowsWhere(ctx, c, t, " WHERE ("+j.keyList()+") IN ("+strings.Join(tuples, ", ")+")", args)
		if err != nil {
			return nil, err
		}
		for k, v := range m {
			out[k] = v
		}
	}
	return out, nil
}

// rowsWhere reads key as text and as JSON, and the row hash, of the rows
// that match a predicate.
func (j *job) rowsWhere(ctx context.Context, c *cluster.Conn, t *catalog.Table, where string, args []any) (map[string]keyed, error) {
	var cols []string
	for _, k := range j.key.Columns {
		cols = append(cols, "t."+pgx.Identifier{k}.Sanitize()+"::text")
	}
	for _, k := range j.key.Columns {
		cols = append(cols, "pg_catalog.to_jsonb(t."+pgx.Identifier{k}.Sanitize()+")::text")
	}
	q := "SELECT " + strings.Join(cols, ", ") + ", " + j.hash + " FROM " + from(t) + where
	rows, err := c.Query(ctx, q, args...)
	if err != nil {
		return nil, c.Wrap("locate the rows of "+t.String(), err)
	}
	defer rows.Close()
	n := len(j.key.Columns)
	out := map[string]keyed{}
	for rows.Next() {
		k := keyed{text: make([]string, n), json: make([]json.RawMessage, n)}
		js := make([]string, n)
		ptrs := make([]any, 0, 2*n+1)
		for i := range k.text {
			ptrs = append(ptrs, &k.text[i])
		}
		for i := range js {
			ptrs = append(ptrs, &js[i])
		}
		ptrs = append(ptrs, &k.hash)
		if err := rows.Scan(ptrs...); err != nil {
			return nil, c.Wrap("locate the rows of "+t.String(), err)
		}
		for i := range js {
			k.json[i] = json.RawMessage(js[i])
		}
		out[strings.Join(k.text, "\x00")] = k
	}
	if err := rows.Err(); err != nil {
		return nil, c.Wrap("locate the rows of "+t.String(), err)
	}
	return out, nil
}

// diffRows matches two sides' rows by key: the rows that differ, with the
// source's hash (nil when the source lacks the row) to tell later whether
// the source row changed.
func (j *job) diffRows(sr, dr map[string]keyed) []Row {
	var out []Row
	for ks, s := range sr {
		d, ok := dr[ks]
		switch {
		case !ok:
			out = append(out, j.row(s, Missing, true))
		case d.hash != s.hash:
			out = append(out, j.row(s, Changed, true))
		}
	}
	for ks, d := range dr {
		if _, ok := sr[ks]; !ok {
			out = append(out, j.row(d, Extra, false))
		}
	}
	sortRows(out)
	return out
}

func (j *job) row(k keyed, kind string, onSource bool) Row {
	r := Row{Table: j.s.String(), Key: KeyValue{j.key.Columns, k.json}, Kind: kind, keyText: k.text, j: j}
	if onSource {
		h := k.hash
		r.srcHash = &h
	}
	return r
}

// locate names the rows of a span that differ: both sides' rows are read
// by key (the source's first, then, after beforeTarget, the target's) and
// matched, then detailed (see detail). It returns the rows, at most limit,
// and how many differ in all.
func (j *job) locate(ctx context.Context, src, dst *cluster.Conn, sp span, limit int, beforeTarget func() error) ([]Row, int, error) {
	sr, err := j.rowsOf(ctx, src, j.s, j.stypes, sp)
	if err != nil {
		return nil, 0, err
	}
	if beforeTarget != nil {
		if err := beforeTarget(); err != nil {
			return nil, 0, err
		}
	}
	dr, err := j.rowsOf(ctx, dst, j.d, j.dtypes, sp)
	if err != nil {
		return nil, 0, err
	}
	out := j.diffRows(sr, dr)
	total := len(out)
	if len(out) > limit {
		out = out[:limit]
	}
	return out, total, j.detail(ctx, src, dst, out)
}

// detail reads, for each missing or changed row, the source's values (for
// --repair) and, for a changed one, the columns that differ.
func (j *job) detail(ctx context.Context, src, dst *cluster.Conn, rows []Row) error {
	for i := range rows {
		r := &rows[i]
		if r.Kind == Extra {
			continue
		}
		sv, err := j.rowByKey(ctx, src, j.s, j.scols, j.stypes, r.keyText)
		if err != nil {
			return err
		}
		r.values = sv
		if r.Kind != Changed {
			continue
		}
		dv, err := j.rowByKey(ctx, dst, j.d, j.scols, j.dtypes, r.keyText)
		if err != nil {
			return err
		}
		r.Columns = nil
		for ci, c := range j.scols {
			if sv == nil || dv == nil || !eqText(sv[ci], dv[ci]) {
				r.Columns = append(r.Columns, c.Name)
			}
		}
	}
	return nil
}

func eqText(a, b *string) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return *a == *b
}

// rowByKey reads one row's columns as text (cols name them, in the
// source's order), or nil when the key is gone.
func (j *job) rowByKey(ctx context.Context, c *cluster.Conn, t *catalog.Table, cols []Column, types []string, key []string) ([]*string, error) {
	sel := make([]string, len(cols))
	for i, col := range cols {
		sel[i] = "t." + pgx.Identifier{col.Name}.Sanitize() + "::text"
	}
	conds := make([]string, len(key))
	args := make([]any, len(key))
	for i, k := range j.key.Columns {
		conds[i] = fmt.Sprintf("t.%s = CAST($%d::text AS %s)", pgx.Identifier{k}.Sanitize(), i+1, types[i])
		args[i] = key[i]
	}
	q := "SELECT " + strings.Join(sel, ", ") + " FROM " + from(t) + " WHERE " + strings.Join(conds, " AND ")
	vals := make([]*string, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	err := c.QueryRow(ctx, q, args...).Scan(ptrs...)
	if err == pgx.ErrNoRows {
		return nil, nil
	}
	if err != nil {
		return nil, c.Wrap("read a row of "+t.String(), err)
	}
	return vals, nil
}

// locateDeep splits a differing span until its parts hold at most
// LeafRows rows, hashes the parts on both sides and locates the rows of
// those that differ. Only a byte-ordered key can be split this way: its
// ranges hold the same rows on both sides.
func (j *job) locateDeep(ctx context.Context, src, dst *cluster.Conn, sp span, sd, dd digest, limit int) ([]Row, int, error) {
	if !j.key.ByteOrdered || max(sd.rows, dd.rows) <= LeafRows {
		return j.locate(ctx, src, dst, sp, limit, nil)
	}
	c, t, types, n := src, j.s, j.stypes, sd.rows
	if dd.rows > sd.rows {
		c, t, types, n = dst, j.d, j.dtypes, dd.rows
	}
	parts, err := j.inner(ctx, c, t, types, sp, n, 16)
	if err != nil {
		return nil, 0, err
	}
	if len(parts) < 2 {
		return j.locate(ctx, src, dst, sp, limit, nil)
	}
	var out []Row
	total := 0
	for _, p := range parts {
		ps, err := j.hashSpan(ctx, src, j.s, j.stypes, p)
		if err != nil {
			return nil, 0, err
		}
		pd, err := j.hashSpan(ctx, dst, j.d, j.dtypes, p)
		if err != nil {
			return nil, 0, err
		}
		if ps == pd {
			continue
		}
		rows, n, err := j.locateDeep(ctx, src, dst, p, ps, pd, max(0, limit-len(out)))
		if err != nil {
			return nil, 0, err
		}
		out = append(out, rows...)
		total += n
	}
	return out, total, nil
}
