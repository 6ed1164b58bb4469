package compare

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/pgmove/pgmove/internal/catalog"
	"github.com/pgmove/pgmove/internal/cluster"
)

// repairSettings are the settings the source's values were rendered under
// (sessionSettings), so the target reads them back as the same values.
const repairSettings = `SET LOCAL standard_conforming_strings = on;
SET LOCAL TimeZone = 'UTC';
SET LOCAL DateStyle = 'ISO, YMD';
SET LOCAL IntervalStyle = 'postgres';
SET LOCAL extra_float_digits = 3;
SET LOCAL search_path = pg_catalog;
-- as the apply worker does: no triggers, no foreign key checks (a superuser's setting)
SET LOCAL session_replication_role = replica;
`

// Repair is the SQL that makes the target's reported rows equal to the
// source's: one transaction, an INSERT ... ON CONFLICT DO UPDATE for a
// missing row, an UPDATE of the differing columns for a changed one, a
// DELETE for an extra one, every row by its key. Values are the source's
// as compare read them, rendered as quoted literals cast to the target's
// column types; names are quoted identifiers. Statements is how many rows
// it repairs.
func (r *Report) Repair() (sql string, statements int) {
	var b strings.Builder
	fmt.Fprintf(&b, "-- pgmove compare --repair: makes the target's rows equal to the source's for the %d row(s) compare reported.\n", len(r.Rows))
	b.WriteString("-- The values are the source's when compare read them. Review, then run it on the target (or rerun compare with --apply).\n")
	b.WriteString("BEGIN;\n" + repairSettings)
	for _, t := range r.Tables {
		switch {
		case t.Status == "differ" && t.Key == nil && t.Note != "" && !strings.HasPrefix(t.Note, "columns"):
			fmt.Fprintf(&b, "-- %s differs but has no key to repair it by: not repaired\n", oneLineComment(t.Name))
		case strings.HasPrefix(t.Note, "columns missing"):
			fmt.Fprintf(&b, "-- %s: %s (compare --schema gives the fix): not repaired\n", oneLineComment(t.Name), oneLineComment(t.Note))
		case t.Status == "missing":
			fmt.Fprintf(&b, "-- %s is missing on the target (copy-schema, then the copy): not repaired\n", oneLineComment(t.Name))
		}
		if t.Differing > len(t.located) {
			fmt.Fprintf(&b, "-- %s: %d more differing row(s) are not in this file; rerun compare after this one\n", oneLineComment(t.Name), t.Differing-len(t.located))
		}
		if t.NotSettled > 0 && t.Key != nil {
			fmt.Fprintf(&b, "-- %s: %d row(s) kept changing while compared: not repaired\n", oneLineComment(t.Name), t.NotSettled)
		}
	}
	for _, row := range r.Rows {
		if s := row.repair(); s != "" {
			b.WriteString(s + ";\n")
			statements++
		}
	}
	b.WriteString("COMMIT;\n")
	return b.String(), statements
}

func oneLineComment(s string) string { return cluster.OneLine(catalog.Printable(s)) }

// literal renders a value as a quoted literal cast to a type, or NULL.
func literal(v *string, typ string) string {
	if v == nil {
		return "NULL"
	}
	return quoteLiteral(*v) + "::" + typ
}

// repair is one row's statement, "" when it cannot be written (the source
// row was gone when its values were read).
func (row Row) repair() string {
	j := row.j
	if j == nil {
		return ""
	}
	dtype := map[string]string{}
	for _, c := range j.dcols {
		dtype[c.Name] = c.Type
	}
	tbl := j.d.Ident()
	var where []string
	for i, k := range j.key.Columns {
		where = append(where, pgx.Identifier{k}.Sanitize()+" = "+literal(&row.keyText[i], j.dtypes[i]))
	}
	isKey := map[string]bool{}
	for _, k := range j.key.Columns {
		isKey[k] = true
	}
	switch row.Kind {
	case Extra:
		return "DELETE FROM " + tbl + " WHERE " + strings.Join(where, " AND ")
	case Changed:
		if row.values == nil {
			return ""
		}
		differ := map[string]bool{}
		for _, c := range row.Columns {
			differ[c] = true
		}
		var set []string
		for i, c := range j.scols {
			if c.Generated || isKey[c.Name] || len(differ) > 0 && !differ[c.Name] {
				continue
			}
			set = append(set, pgx.Identifier{c.Name}.Sanitize()+" = "+literal(row.values[i], dtype[c.Name]))
		}
		if len(set) == 0 {
			return ""
		}
		return "UPDATE " + tbl + " SET " + strings.Join(set, ", ") + " WHERE " + strings.Join(where, " AND ")
	}
	if row.values == nil {
		return ""
	}
	var cols, vals, set []string
	always := false
	for i, c := range j.scols {
		if c.Generated {
			continue
		}
		always = always || c.Always
		id := pgx.Identifier{c.Name}.Sanitize()
		cols = append(cols, id)
		vals = append(vals, literal(row.values[i], dtype[c.Name]))
		if !isKey[c.Name] {
			set = append(set, id+" = EXCLUDED."+id)
		}
	}
	keys := make([]string, len(j.key.Columns))
	for i, k := range j.key.Columns {
		keys[i] = pgx.Identifier{k}.Sanitize()
	}
	s := "INSERT INTO " + tbl + " (" + strings.Join(cols, ", ") + ")"
	if always {
		s += " OVERRIDING SYSTEM VALUE"
	}
	s += " VALUES (" + strings.Join(vals, ", ") + ") ON CONFLICT (" + strings.Join(keys, ", ") + ")"
	if len(set) == 0 {
		return s + " DO NOTHING"
	}
	return s + " DO UPDATE SET " + strings.Join(set, ", ")
}

// ApplyRepair runs the repair SQL on the target in one transaction.
func ApplyRepair(ctx context.Context, dst *cluster.Conn, sql string) error {
	_, err := dst.PgConn().Exec(ctx, sql).ReadAll()
	if err != nil {
		_, _ = dst.Exec(context.Background(), "ROLLBACK")
		return dst.Wrap("apply the repair", err)
	}
	return nil
}
