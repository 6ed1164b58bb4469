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

// keyed is what one side holds of a span, row by row.
type keyed struct {
	json []json.RawMessage
	text []string
	hash int64
}

// rowsOf reads a span's rows on one side: key as text and as JSON, and the
// row hash, by key.
func (j *job) rowsOf(ctx context.Context, c *cluster.Conn, t *catalog.Table, types []string, sp span) (map[string]keyed, error) {
	w, args := j.where(sp, types, 0)
	var cols []string
	for _, k := range j.key.Columns {
		cols = append(cols, "t."+pgx.Identifier{k}.Sanitize()+"::text")
	}
	for _, k := range j.key.Columns {
		cols = append(cols, "pg_catalog.to_jsonb(t."+pgx.Identifier{k}.Sanitize()+")::text")
	}
	q := "SELECT " + strings.Join(cols, ", ") + ", " + j.hash + " FROM " + from(t) + w
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

// locate names the rows of a span that differ: both sides' rows are read
// by key (the source's first, then, through readTarget, the target's) and
// matched. Up to limit rows are detailed: a changed row's differing
// columns, a missing or changed row's source values for --repair. It
// returns the rows and how many differ in all.
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
	var out []Row
	total := 0
	add := func(k keyed, kind string) {
		total++
		out = append(out, Row{Table: j.s.String(), Key: KeyValue{j.key.Columns, k.json}, Kind: kind, keyText: k.text})
	}
	for ks, s := range sr {
		d, ok := dr[ks]
		switch {
		case !ok:
			add(s, Missing)
		case d.hash != s.hash:
			add(s, Changed)
		}
	}
	for ks, d := range dr {
		if _, ok := sr[ks]; !ok {
			add(d, Extra)
		}
	}
	sortRows(out)
	if len(out) > limit {
		out = out[:limit]
	}
	for i := range out {
		r := &out[i]
		if r.Kind == Extra {
			continue
		}
		sv, err := j.rowByKey(ctx, src, j.s, j.scols, j.stypes, r.keyText)
		if err != nil {
			return nil, 0, err
		}
		r.values = sv
		if r.Kind != Changed {
			continue
		}
		dv, err := j.rowByKey(ctx, dst, j.d, j.scols, j.dtypes, r.keyText)
		if err != nil {
			return nil, 0, err
		}
		for ci, c := range j.scols {
			if sv == nil || dv == nil || !eqText(sv[ci], dv[ci]) {
				r.Columns = append(r.Columns, c.Name)
			}
		}
	}
	return out, total, nil
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
