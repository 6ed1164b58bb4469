// Package carry moves to the target what logical replication does not
// carry: large objects, unlogged tables' rows, and materialized views'
// contents (sequences are the sequence package's). It runs during the
// migration for what can be prepared early, and again at the switch
// moment, when writes have stopped, for what changed.
//
// It must be safe to run again and again: it only adds, replaces or
// deletes what differs, and never touches replicated tables.
package carry

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"

	"github.com/pgmove/pgmove/internal/catalog"
	"github.com/pgmove/pgmove/internal/cluster"
	"github.com/pgmove/pgmove/internal/config"
	"github.com/pgmove/pgmove/internal/copy"
)

// LOResult counts what LargeObjects did.
type LOResult struct {
	Created, Replaced, Deleted, Unchanged int
	Bytes                                 int64
}

// loChunk is how much of a large object moves per round trip.
const loChunk = 1 << 20

// loDigests reads every large object's digest. Superusers read
// pg_largeobject's pages (a digest of page digests, so memory stays small
// whatever the object's size); others go through lo_get().
func loDigests(ctx context.Context, c *cluster.Conn, pages bool) (map[uint32]string, error) {
	q := `SELECT m.oid::int8, COALESCE((SELECT pg_catalog.md5(string_agg(pg_catalog.md5(p.data), '' ORDER BY p.pageno))
			FROM pg_catalog.pg_largeobject p WHERE p.loid = m.oid), 'empty') FROM pg_catalog.pg_largeobject_metadata m`
	if !pages {
		q = `SELECT m.oid::int8, pg_catalog.md5(pg_catalog.lo_get(m.oid)) FROM pg_catalog.pg_largeobject_metadata m`
	}
	rows, err := c.Query(ctx, q)
	if err != nil {
		return nil, c.Wrap("read large objects", err)
	}
	defer rows.Close()
	out := map[uint32]string{}
	for rows.Next() {
		var oid int64
		var d string
		if err := rows.Scan(&oid, &d); err != nil {
			return nil, c.Wrap("read large objects", err)
		}
		out[uint32(oid)] = d
	}
	return out, c.Wrap("read large objects", rows.Err())
}

// LargeObjects makes the target's large objects those of the source: same
// OIDs, same contents. Missing ones are created, changed ones rewritten,
// ones the source no longer has deleted.
func LargeObjects(ctx context.Context, r cluster.Runner, src, dst *cluster.Conn) (LOResult, error) {
	var res LOResult
	pages := src.Superuser && dst.Superuser
	sd, err := loDigests(ctx, src, pages)
	if err != nil {
		return res, err
	}
	dd, err := loDigests(ctx, dst, pages)
	if err != nil {
		return res, err
	}
	var oids []uint32
	for oid := range sd {
		oids = append(oids, oid)
	}
	sort.Slice(oids, func(i, j int) bool { return oids[i] < oids[j] })
	for _, oid := range oids {
		d, ok := dd[oid]
		switch {
		case ok && d == sd[oid]:
			res.Unchanged++
			continue
		case ok:
			res.Replaced++
		default:
			res.Created++
		}
		if r.DryRun {
			fmt.Fprintf(r.Out, "-- target: large object %d: %s\n", oid, map[bool]string{true: "rewrite", false: "create"}[ok])
			continue
		}
		n, err := copyLO(ctx, src, dst, oid, ok)
		if errors.Is(err, errGone) {
			// Deleted on the source since it was listed (writes go on):
			// the next pass deletes it on the target too.
			continue
		}
		if err != nil {
			return res, err
		}
		res.Bytes += n
	}
	var gone []uint32
	for oid := range dd {
		if _, ok := sd[oid]; !ok {
			gone = append(gone, oid)
		}
	}
	sort.Slice(gone, func(i, j int) bool { return gone[i] < gone[j] })
	for _, oid := range gone {
		res.Deleted++
		if err := r.Exec(ctx, dst, fmt.Sprintf("delete large object %d, gone from the source", oid), fmt.Sprintf("SELECT pg_catalog.lo_unlink(%d)", oid)); err != nil {
			return res, err
		}
	}
	return res, nil
}

// copyLO copies one large object in one target transaction.
func copyLO(ctx context.Context, src, dst *cluster.Conn, oid uint32, exists bool) (int64, error) {
	var total int64
	err := pgx.BeginFunc(ctx, dst.Conn, func(tx pgx.Tx) error {
		if exists {
			if _, err := tx.Exec(ctx, "SELECT pg_catalog.lo_unlink($1)", oid); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(ctx, "SELECT pg_catalog.lo_create($1)", oid); err != nil {
			return err
		}
		for off := int64(0); ; off += loChunk {
			var data []byte
			if err := src.QueryRow(ctx, "SELECT pg_catalog.lo_get($1, $2, $3)", oid, off, loChunk).Scan(&data); err != nil {
				if cluster.SQLState(err) == pgerrcode.UndefinedObject {
					return errGone
				}
				return src.Wrap(fmt.Sprintf("read large object %d", oid), err)
			}
			if len(data) > 0 {
				if _, err := tx.Exec(ctx, "SELECT pg_catalog.lo_put($1, $2, $3)", oid, off, data); err != nil {
					return err
				}
				total += int64(len(data))
			}
			if len(data) < loChunk {
				return nil
			}
		}
	})
	var ce *cluster.Error
	switch {
	case errors.Is(err, errGone):
		return 0, errGone
	case errors.As(err, &ce):
		return 0, err // already names its side
	case err != nil:
		return 0, dst.Wrap(fmt.Sprintf("copy large object %d", oid), err)
	}
	return total, nil
}

var errGone = errors.New("large object gone from the source")

// MatviewResult counts refreshed materialized views.
type MatviewResult struct {
	Refreshed int
	Names     []string
}

// RefreshMaterializedViews refreshes on the target every selected
// materialized view the source has populated. A view built on another is
// refreshed after it: views that fail are retried after the others, as long
// as each pass makes progress.
func RefreshMaterializedViews(ctx context.Context, r cluster.Runner, src, dst *cluster.Conn, m *config.Migration) (MatviewResult, error) {
	var res MatviewResult
	rows, err := src.Query(ctx, `SELECT n.nspname, c.relname FROM pg_catalog.pg_class c
		JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind = 'm' AND c.relispopulated
		  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
		  AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d WHERE d.classid = 'pg_catalog.pg_class'::regclass
		                  AND d.objid = c.oid AND d.deptype = 'e')
		ORDER BY c.oid`)
	if err != nil {
		return res, src.Wrap("list materialized views", err)
	}
	views, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (catalog.QualifiedName, error) {
		var q catalog.QualifiedName
		return q, r.Scan(&q.Schema, &q.Name)
	})
	if err != nil {
		return res, src.Wrap("list materialized views", err)
	}
	var todo []catalog.QualifiedName
	for _, v := range views {
		if config.Selected(m.Include, m.Exclude, v.Schema, v.Name) {
			todo = append(todo, v)
		}
	}
	for len(todo) > 0 {
		var failed []catalog.QualifiedName
		var lastErr error
		for _, v := range todo {
			err := r.Exec(ctx, dst, "refresh materialized view "+v.String(), "REFRESH MATERIALIZED VIEW "+v.Ident())
			if err != nil {
				failed, lastErr = append(failed, v), err
				continue
			}
			res.Refreshed++
			res.Names = append(res.Names, v.String())
		}
		if len(failed) == len(todo) {
			return res, lastErr
		}
		todo = failed
	}
	return res, nil
}

// UnloggedResult counts the unlogged tables copied.
type UnloggedResult struct {
	Tables int
	Rows   int64
}

// UnloggedTables copies every selected unlogged table of the source into
// the target, replacing its rows. Logical replication skips unlogged
// tables; at the switch moment, with writes stopped, their rows are copied
// like the initial copy copies the others.
func UnloggedTables(ctx context.Context, r cluster.Runner, src, dst *cluster.Conn, m *config.Migration, jobs int) (UnloggedResult, error) {
	var res UnloggedResult
	ssnap, err := catalog.Tables(ctx, src)
	if err != nil {
		return res, err
	}
	var tables []*catalog.Table
	for _, t := range ssnap.Tables {
		if t.Kind == 'r' && t.Persistence == 'u' && config.Selected(m.Include, m.Exclude, t.Schema, t.Name) {
			tables = append(tables, t)
		}
	}
	if len(tables) == 0 {
		return res, nil
	}
	if r.DryRun {
		for _, t := range tables {
			fmt.Fprintf(r.Out, "-- target: replace the rows of unlogged table %s with the source's\nTRUNCATE %s;\nCOPY %s FROM STDIN;\n", t, t.Ident(), t.Ident())
		}
		res.Tables = len(tables)
		return res, nil
	}
	dsnap, err := catalog.TablesWithoutSizes(ctx, dst)
	if err != nil {
		return res, err
	}
	rows, err := copy.Replace(ctx, m, src, dst, ssnap, dsnap, tables, jobs)
	res.Tables, res.Rows = len(tables), rows
	return res, err
}
