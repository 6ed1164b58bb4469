package schema

import (
	"context"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/pgmove/pgmove/internal/cluster"
)

// Existing finds the archive entries whose objects the target already has,
// so a rerun restores only what is missing and never drops or recreates
// anything. Objects are matched by pg_identify_object's identity, which
// quotes names and so survives odd identifiers; partition attachments (which
// the archive lists without OIDs) are matched by name against the source's
// partitions.
func Existing(ctx context.Context, src, dst *cluster.Conn, a *Archive) (map[int]bool, error) {
	var cats, objs []uint32
	for _, e := range a.Entries {
		if e.CatalogOID != 0 {
			cats = append(cats, e.CatalogOID)
			objs = append(objs, e.ObjectOID)
		}
	}
	skip := map[int]bool{}
	type key struct {
		cat uint32
		id  string
	}
	srcIdent := map[[2]uint32]string{}
	catalogs := map[uint32]string{}
	// The identity is prefixed with the object's type: a composite type
	// named t is in pg_class as public.t too, and is no table public.t.
	rows, err := src.Query(ctx, `SELECT c::int8, o::int8, c::regclass::text, COALESCE((SELECT i.type || ' ' || i.identity FROM pg_catalog.pg_identify_object(c, o, 0) i), '')
		FROM unnest($1::oid[], $2::oid[]) AS t(c, o)`, cats, objs)
	if err != nil {
		return nil, src.Wrap("identify schema objects", err)
	}
	for rows.Next() {
		var c, o int64
		var catName, ident string
		if err := rows.Scan(&c, &o, &catName, &ident); err != nil {
			rows.Close()
			return nil, src.Wrap("identify schema objects", err)
		}
		srcIdent[[2]uint32{uint32(c), uint32(o)}] = ident
		catalogs[uint32(c)] = catName
	}
	if err := rows.Err(); err != nil {
		return nil, src.Wrap("identify schema objects", err)
	}

	have := map[key]bool{}
	for cat, name := range catalogs {
		q := "SELECT COALESCE((SELECT i.type || ' ' || i.identity FROM pg_catalog.pg_identify_object($1::oid, c.oid, 0) i), '') FROM " +
			pgx.Identifier{"pg_catalog", strings.TrimPrefix(name, "pg_catalog.")}.Sanitize() + " c"
		rows, err := dst.Query(ctx, q, cat)
		if err != nil {
			return nil, dst.Wrap("list existing objects in "+name, err)
		}
		for rows.Next() {
			var ident string
			if err := rows.Scan(&ident); err != nil {
				rows.Close()
				return nil, dst.Wrap("list existing objects in "+name, err)
			}
			have[key{cat, ident}] = true
		}
		if err := rows.Err(); err != nil {
			return nil, dst.Wrap("list existing objects in "+name, err)
		}
	}

	srcParts, err := partitions(ctx, src)
	if err != nil {
		return nil, err
	}
	dstParts, err := partitions(ctx, dst)
	if err != nil {
		return nil, err
	}
	attached := map[[2]string]bool{}
	for _, p := range dstParts {
		attached[p] = true
	}

	// A SHELL TYPE entry (the name a base type's I/O functions are
	// declared with) has no OID in the archive: it is there when the
	// TYPE entry of the same name is.
	typeThere := map[string]bool{}
	for _, e := range a.Entries {
		if e.Desc == "TYPE" {
			if id := srcIdent[[2]uint32{e.CatalogOID, e.ObjectOID}]; id != "" && have[key{e.CatalogOID, id}] {
				typeThere[e.Rest] = true
			}
		}
	}
	for _, e := range a.Entries {
		switch {
		case e.Desc == "SHELL TYPE":
			if typeThere[e.Rest] {
				skip[e.ID] = true
			}
		case e.CatalogOID != 0:
			id := srcIdent[[2]uint32{e.CatalogOID, e.ObjectOID}]
			if id != "" && have[key{e.CatalogOID, id}] {
				skip[e.ID] = true
			}
		case e.Desc == "TABLE ATTACH" || e.Desc == "INDEX ATTACH":
			for _, p := range srcParts {
				prefix := p[0] + " " + p[1]
				if (e.Rest == prefix || strings.HasPrefix(e.Rest, prefix+" ")) && attached[p] {
					skip[e.ID] = true
					break
				}
			}
		}
	}
	return skip, nil
}

// partitions lists the relations (tables and indexes) that are partitions.
func partitions(ctx context.Context, c *cluster.Conn) ([][2]string, error) {
	rows, err := c.Query(ctx, `SELECT n.nspname, c.relname FROM pg_catalog.pg_class c
		JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.relispartition`)
	if err != nil {
		return nil, c.Wrap("list partitions", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) ([2]string, error) {
		var p [2]string
		return p, r.Scan(&p[0], &p[1])
	})
	return out, c.Wrap("list partitions", err)
}
