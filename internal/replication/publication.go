package replication

import (
	"context"
	"fmt"

	"github.com/pgmove/pgmove/internal/catalog"
	"github.com/pgmove/pgmove/internal/cluster"
)

// PublicationResult says what EnsurePublication did.
type PublicationResult struct {
	Created        bool
	Added, Dropped []string
	OptionsFixed   bool
	Tables         int
}

// Summary is one line for the user.
func (r PublicationResult) Summary(name string) string {
	switch {
	case r.Created:
		return fmt.Sprintf("publication %q created with %d table(s)", name, r.Tables)
	case len(r.Added)+len(r.Dropped) > 0 || r.OptionsFixed:
		return fmt.Sprintf("publication %q updated: %d table(s) added, %d dropped; %d published", name, len(r.Added), len(r.Dropped), r.Tables)
	}
	return fmt.Sprintf("publication %q already publishes the %d table(s); unchanged", name, r.Tables)
}

// pubOptions: partitioned tables are published through their root
// (PostgreSQL 13+), so the target may partition differently and new
// partitions need no REFRESH; every kind of change is published.
func pubOptions(version int) []Option {
	opts := []Option{Str("publish", "insert, update, delete, truncate")}
	if version >= 130000 {
		opts = append(opts, Bool("publish_via_partition_root", true))
	}
	return opts
}

// EnsurePublication makes the source's publication publish exactly the
// given tables: created if absent, tables added or dropped if the set
// changed, untouched otherwise.
func EnsurePublication(ctx context.Context, r cluster.Runner, src *cluster.Conn, name string, tables []*catalog.Table) (PublicationResult, error) {
	res := PublicationResult{Tables: len(tables)}
	want := map[string]bool{}
	var wantIdents []string
	for _, t := range tables {
		want[t.Ident()] = true
		wantIdents = append(wantIdents, t.Ident())
	}
	pubs, err := catalog.Publications(ctx, src)
	if err != nil {
		return res, err
	}
	var existing *catalog.Publication
	for i := range pubs {
		if pubs[i].Name == name {
			existing = &pubs[i]
		}
	}
	if existing == nil {
		res.Created = true
		return res, r.Exec(ctx, src, "create publication "+quoteName(name), CreatePublicationSQL(name, wantIdents, pubOptions(src.VersionNum)))
	}
	if existing.AllTables {
		return res, fmt.Errorf("source: publication %q exists and is FOR ALL TABLES, which pgmove did not create; drop it or set pub_name to another name", name)
	}
	current, err := catalog.PublicationTables(ctx, src, name)
	if err != nil {
		return res, err
	}
	have := map[string]bool{}
	for _, q := range current {
		have[q.Ident()] = true
		if !want[q.Ident()] {
			res.Dropped = append(res.Dropped, q.Ident())
		}
	}
	for _, id := range wantIdents {
		if !have[id] {
			res.Added = append(res.Added, id)
		}
	}
	if len(res.Added) > 0 {
		if err := r.Exec(ctx, src, "add tables to publication "+quoteName(name), AlterPublicationTablesSQL(name, "ADD", res.Added)); err != nil {
			return res, err
		}
	}
	if len(res.Dropped) > 0 {
		if err := r.Exec(ctx, src, "drop tables from publication "+quoteName(name), AlterPublicationTablesSQL(name, "DROP", res.Dropped)); err != nil {
			return res, err
		}
	}
	viaRoot := false
	if src.VersionNum >= 130000 {
		if err := src.QueryRow(ctx, "SELECT pubviaroot FROM pg_catalog.pg_publication WHERE pubname = $1", name).Scan(&viaRoot); err != nil {
			return res, src.Wrap("read publication options", err)
		}
	}
	if !(existing.Insert && existing.Update && existing.Delete && existing.Truncate) || (src.VersionNum >= 130000 && !viaRoot) {
		res.OptionsFixed = true
		if err := r.Exec(ctx, src, "set publication options", AlterPublicationSetSQL(name, pubOptions(src.VersionNum))); err != nil {
			return res, err
		}
	}
	return res, nil
}

// DropPublication drops the publication if it exists.
func DropPublication(ctx context.Context, r cluster.Runner, src *cluster.Conn, name string) (bool, error) {
	var exists bool
	if err := src.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_publication WHERE pubname = $1)", name).Scan(&exists); err != nil {
		return false, src.Wrap("look up publication", err)
	}
	if !exists {
		return false, nil
	}
	return true, r.Exec(ctx, src, "drop publication "+quoteName(name), DropPublicationSQL(name))
}

func quoteName(s string) string { return catalog.QuoteName(s) }
