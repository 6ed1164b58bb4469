package compare

import (
	"context"
	"embed"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/pgmove/pgmove/internal/cluster"
)

//go:embed sql/*.sql
var sqlFiles embed.FS

func query(name string) string {
	b, err := sqlFiles.ReadFile("sql/" + name + ".sql")
	if err != nil {
		panic("compare: missing embedded query " + name)
	}
	return string(b)
}

// Collation OIDs that order text by its bytes, the same on every server.
const (
	collNone    = 0
	collDefault = 100
	collC       = 950
	collPOSIX   = 951
)

// readColumns lists a table's columns in order.
func readColumns(ctx context.Context, c *cluster.Conn, oid uint32) ([]Column, error) {
	rows, err := c.Query(ctx, query("columns"), oid)
	if err != nil {
		return nil, c.Wrap("list columns", err)
	}
	cols, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Column, error) {
		var col Column
		var typ int64
		err := r.Scan(&col.Name, &typ, &col.Type, &col.Generated, &col.Always)
		col.TypeOID = uint32(typ)
		return col, err
	})
	return cols, c.Wrap("list columns", err)
}

// Key is the row key a table is split and located by.
type Key struct {
	Index   string   // the index it comes from
	Columns []string // in index order
	// ByteOrdered: every key column orders the same on both servers (no
	// collation, or C/POSIX), so a range of keys holds the same rows on
	// both sides. A text key under a linguistic collation may sort
	// differently on the target (another glibc or ICU version): such a
	// table is compared as one range, still located by key.
	ByteOrdered bool
}

// Refused is a unique index that cannot serve as the key, and why.
type Refused struct{ Index, Why string }

// chooseKey picks the primary key, else the narrowest unique index whose
// columns are all NOT NULL. It returns nil when there is none, with the
// unique indexes it had to refuse.
func chooseKey(ctx context.Context, c *cluster.Conn, oid uint32, byteDefault bool) (*Key, []Refused, error) {
	rows, err := c.Query(ctx, query("keys"), oid)
	if err != nil {
		return nil, nil, c.Wrap("list unique indexes", err)
	}
	defer rows.Close()
	var refused []Refused
	var key *Key
	for rows.Next() {
		var name string
		var primary bool
		var cols []string
		var notNull *bool
		var colls []int64
		if err := rows.Scan(&name, &primary, &cols, &notNull, &colls); err != nil {
			return nil, nil, c.Wrap("list unique indexes", err)
		}
		if key != nil {
			continue
		}
		if notNull == nil || !*notNull {
			refused = append(refused, Refused{name, "(" + strings.Join(cols, ", ") + ") may be NULL, and rows with NULL keys are not unique"})
			continue
		}
		k := &Key{Index: name, Columns: cols, ByteOrdered: true}
		for _, coll := range colls {
			switch coll {
			case collNone, collC, collPOSIX:
			case collDefault:
				k.ByteOrdered = k.ByteOrdered && byteDefault
			default:
				k.ByteOrdered = false
			}
		}
		key = k
	}
	if err := rows.Err(); err != nil {
		return nil, nil, c.Wrap("list unique indexes", err)
	}
	return key, refused, nil
}

// byteOrderedDefault reports whether the database's default collation
// orders by bytes.
func byteOrderedDefault(ctx context.Context, c *cluster.Conn) (bool, error) {
	q := query("db_collation")
	if c.VersionNum >= 150000 { // datlocprovider appeared in PostgreSQL 15
		q = query("db_collation_pg15")
	}
	var ok bool
	if err := c.QueryRow(ctx, q).Scan(&ok); err != nil {
		return false, c.Wrap("read the database's collation", err)
	}
	return ok, nil
}
