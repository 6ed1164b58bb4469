package replication

import (
	"context"
	_ "embed"
	"fmt"
	"maps"
	"slices"

	"github.com/pgmove/pgmove/internal/catalog"
	"github.com/pgmove/pgmove/internal/cluster"
)

//go:embed sql/binary_columns.sql
var binaryColumnsSQL string

type binaryColumn struct {
	typ  string
	safe bool
}

func binaryColumns(ctx context.Context, c *cluster.Conn, tables []catalog.QualifiedName) (map[string]binaryColumn, error) {
	nsp, rel := make([]string, len(tables)), make([]string, len(tables))
	for i, t := range tables {
		nsp[i], rel[i] = t.Schema, t.Name
	}
	rows, err := c.Query(ctx, binaryColumnsSQL, nsp, rel)
	if err != nil {
		return nil, c.Wrap("read the published columns' types", err)
	}
	defer rows.Close()
	out := map[string]binaryColumn{}
	for rows.Next() {
		var q catalog.QualifiedName
		var col string
		var bc binaryColumn
		if err := rows.Scan(&q.Schema, &q.Name, &col, &bc.typ, &bc.safe); err != nil {
			return nil, c.Wrap("read the published columns' types", err)
		}
		out[q.String()+"."+catalog.QuoteName(col)] = bc
	}
	return out, c.Wrap("read the published columns' types", rows.Err())
}

// BinarySafe says whether a subscription from src to dst may use binary =
// true for these published tables, and if not, why. PostgreSQL documents
// the binary format as type-specific (no smallint into integer) and
// cross-version transfer as failing where the subscriber lacks a receive
// function; a value that fails to apply stops the subscription for good
// (the apply does not fall back to text). So pgmove asks for binary only
// between two 16+ servers (from 16 the table sync also copies in binary,
// and the subscriber checks the types) and only when every column has the
// very same type on both sides and that type's wire format is the same
// whatever the cluster (see sql/binary_columns.sql).
func BinarySafe(ctx context.Context, src, dst *cluster.Conn, tables []catalog.QualifiedName) (bool, string, error) {
	if src.VersionNum < 160000 || dst.VersionNum < 160000 {
		return false, "binary needs PostgreSQL 16+ on both sides", nil
	}
	if len(tables) == 0 {
		return false, "no published table", nil
	}
	scols, err := binaryColumns(ctx, src, tables)
	if err != nil {
		return false, "", err
	}
	dcols, err := binaryColumns(ctx, dst, tables)
	if err != nil {
		return false, "", err
	}
	for _, name := range slices.Sorted(maps.Keys(scols)) {
		s := scols[name]
		d, ok := dcols[name]
		switch {
		case !ok:
			return false, fmt.Sprintf("column %s is missing on the target", name), nil
		case s.typ != d.typ:
			return false, fmt.Sprintf("column %s is %s on the source, %s on the target", name, s.typ, d.typ), nil
		case !s.safe || !d.safe:
			return false, fmt.Sprintf("column %s has type %s, whose binary form is not known to be the same in both clusters", name, s.typ), nil
		}
	}
	return true, "", nil
}
