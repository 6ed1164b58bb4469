package schema

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/pgmove/pgmove/internal/catalog"
	"github.com/pgmove/pgmove/internal/cluster"
	"github.com/pgmove/pgmove/internal/config"
	"github.com/pgmove/pgmove/internal/phase"
)

// CopyOptions tune copy-schema.
type CopyOptions struct {
	Force      bool // restore even when target tables already hold rows
	WithOwners bool
	WithACL    bool
	DryRun     bool
	Out        io.Writer // dry-run listing
	Snapshot   string
	Jobs       int // parallel pg_restore (not one transaction then)
	// Only restores just the entries it accepts (e.g. pre-data for the
	// snapshot copy); nil restores everything.
	Only func(Entry) bool
	// Reuse restores from this archive instead of dumping again (the
	// post-data part of a dump whose pre-data part was restored before).
	Reuse *Archive
	// Keep keeps the archive (CopyResult.Archive) for a later Reuse; the
	// caller removes it with Archive.Remove.
	Keep bool
	// SQL, with DryRun, also prints the statements the restore would run.
	SQL bool
}

// CopyResult says what copy-schema did.
type CopyResult struct {
	Restored int
	Skipped  int // already on the target
	DumpTool string
	Archive  *Archive
}

// Copy restores the source's schema into the target with pg_dump and
// pg_restore. It only adds what the target lacks, in one transaction, and
// never drops or rewrites anything that is there.
func Copy(ctx context.Context, m *config.Migration, src, dst *cluster.Conn, o CopyOptions) (*CopyResult, error) {
	dump, restore, err := Tools(ctx, src.Major())
	if err != nil {
		return nil, fmt.Errorf("source: %w", err)
	}
	if !o.Force {
		full, err := TablesWithRows(ctx, dst)
		if err != nil {
			return nil, err
		}
		if len(full) > 0 {
			return nil, fmt.Errorf("target: %d table(s) already hold rows (%s); copy-schema will not restore over data: check the target is the right database, or pass --force to add only the missing objects", len(full), cluster.ListSome(full, 3))
		}
	}
	dstChild, err := cluster.Child(m.Dst, "copy-schema")
	if err != nil {
		return nil, err
	}
	a := o.Reuse
	if a == nil {
		if a, err = dumpSource(ctx, m, dump, restore, DumpOptions{Snapshot: o.Snapshot}); err != nil {
			return nil, err
		}
		if !o.Keep {
			defer a.Remove()
		}
	}
	t0 := time.Now()
	skip, err := Existing(ctx, src, dst, a)
	if err != nil {
		return nil, err
	}
	slog.Debug("schema: compared the dump with the target's objects", "took", time.Since(t0).Round(time.Millisecond))
	res := &CopyResult{DumpTool: fmt.Sprintf("pg_dump %d", dump.Major), Archive: a}
	if prev := o.Only; !o.WithACL {
		// pg_restore --no-acl leaves privileges out; so must the count.
		o.Only = func(e Entry) bool {
			return e.Desc != "ACL" && e.Desc != "DEFAULT ACL" && (prev == nil || prev(e))
		}
	}
	creates := 0
	for _, e := range a.Entries {
		if o.Only != nil && !o.Only(e) {
			continue
		}
		switch {
		case skip[e.ID]:
			res.Skipped++
		case e.CreatesObject():
			creates++
		}
	}
	if o.DryRun {
		w := o.Out
		fmt.Fprintf(w, "-- target: pg_restore would create (single transaction):\n")
		for _, e := range a.Entries {
			if skip[e.ID] || (o.Only != nil && !o.Only(e)) || !e.CreatesObject() {
				continue
			}
			res.Restored++
			fmt.Fprintf(w, "--   %s %s\n", e.Desc, e.Rest)
		}
		if res.Skipped > 0 {
			fmt.Fprintf(w, "-- %d object(s) already on the target are left as they are\n", res.Skipped)
		}
		if o.SQL && res.Restored > 0 {
			fmt.Fprintf(w, "-- target: the statements of that restore:\n")
			keep := func(e Entry) bool { return !skip[e.ID] && (o.Only == nil || o.Only(e)) }
			if err := a.WriteSQL(ctx, w, RestoreOptions{WithOwners: o.WithOwners, WithACL: o.WithACL}, keep); err != nil {
				return nil, err
			}
		}
		return res, nil
	}
	if creates == 0 {
		// Only comments, grants and the like would run again: the schema is there.
		return res, nil
	}
	t1 := time.Now()
	defer func() { slog.Debug("target: schema restored", "took", time.Since(t1).Round(time.Millisecond)) }()
	ro := RestoreOptions{WithOwners: o.WithOwners, WithACL: o.WithACL, Skip: skip, Only: o.Only, Jobs: o.Jobs, Target: m.Dst,
		TargetMajor: dst.Major()}
	if ro.Replace, err = orderedTables(ctx, m, src, dst, a, dump, ro, o); err != nil {
		return nil, err
	}
	if _, err := a.Restore(ctx, dstChild, ro); err != nil {
		var pe *ParallelError
		if !errors.As(err, &pe) || ctx.Err() != nil {
			return nil, err
		}
		// Part of it stayed (a parallel post-data restore stopped on an
		// order it does not know, or a session's commit failed after all
		// had loaded): resume in one ordered transaction, from what is on
		// the target now.
		slog.Info("parallel schema restore failed (" + err.Error() + "); restoring the rest in order")
		if ro.Skip, err = Existing(ctx, src, dst, a); err != nil {
			return nil, err
		}
		ro.Jobs = 1 // Replace stays: a child left to create keeps its column order
		if _, err := a.Restore(ctx, dstChild, ro); err != nil {
			return nil, err
		}
	}
	res.Restored = creates
	return res, nil
}

// orderedTables finds the inheritance children the restore would create
// with another column order than the source's, and writes the SQL that
// keeps it (OrderedTables). That SQL marks inherited columns in the
// catalogue, which needs a superuser: without one, the tables are restored
// as pg_restore does it and check reports their column order.
func orderedTables(ctx context.Context, m *config.Migration, src, dst *cluster.Conn, a *Archive, dump *Tool, ro RestoreOptions, o CopyOptions) (map[uint32]string, error) {
	var oids []uint32
	for _, e := range a.Entries {
		if e.Desc == "TABLE" && !ro.Skip[e.ID] && (ro.Only == nil || ro.Only(e)) {
			oids = append(oids, e.ObjectOID)
		}
	}
	tables, err := Reordered(ctx, src, oids)
	if err != nil || len(tables) == 0 {
		return nil, err
	}
	if !dst.Superuser {
		slog.Warn(fmt.Sprintf("target: %d inheritance child table(s) (%s) will have another column order than on the source: keeping it needs a superuser on the target (pg_admin_username)", len(tables), cluster.ListSome(relationNames(tables), 3)))
		return nil, nil
	}
	srcChild, err := cluster.Child(m.Src, "copy-schema")
	if err != nil {
		return nil, err
	}
	return OrderedTables(ctx, dump, a.RestoreTool, srcChild, filepath.Dir(a.Path), tables, DumpOptions{Snapshot: o.Snapshot}, ro)
}

func relationNames(rs []Relation) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.String()
	}
	return out
}

// dumpSource dumps the source's schema into a new work directory.
func dumpSource(ctx context.Context, m *config.Migration, dump, restore *Tool, o DumpOptions) (*Archive, error) {
	srcChild, err := cluster.Child(m.Src, "copy-schema")
	if err != nil {
		return nil, err
	}
	dir, err := newWorkDir()
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	a, err := Dump(ctx, dump, restore, srcChild, dir, o)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	phase.Done(phase.Dump, t0, "entries", len(a.Entries))
	return a, nil
}

// Prefetch is a schema dump started before it is needed: migrate dumps
// while its checks run, since the dump only reads the source. Take waits
// for it and hands its archive over; Discard stops it and removes its files.
type Prefetch struct {
	cancel context.CancelFunc
	done   chan struct{}
	a      *Archive
	err    error
}

// StartDump dumps the source's schema in the background.
func StartDump(ctx context.Context, m *config.Migration, srcMajor int) *Prefetch {
	ctx, cancel := context.WithCancel(ctx)
	p := &Prefetch{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		dump, restore, err := Tools(ctx, srcMajor)
		if err != nil {
			p.err = fmt.Errorf("source: %w", err)
			return
		}
		p.a, p.err = dumpSource(ctx, m, dump, restore, DumpOptions{})
	}()
	return p
}

// Take waits for the dump; the caller owns the archive from then on.
func (p *Prefetch) Take() (*Archive, error) {
	<-p.done
	a, err := p.a, p.err
	p.a = nil
	return a, err
}

// Discard stops the dump if it still runs and removes what it left. A nil
// Prefetch, or one already taken, is fine.
func (p *Prefetch) Discard() {
	if p == nil {
		return
	}
	p.cancel()
	<-p.done
	p.a.Remove()
	p.a = nil
}

// Remove deletes the archive's files.
func (a *Archive) Remove() {
	if a != nil {
		os.RemoveAll(filepath.Dir(a.Path))
	}
}

// TablesWithRows lists the target's user tables that hold at least one row.
// Only tables whose main fork has a block are probed: an empty file holds
// no row, and a freshly restored schema is thousands of empty files.
func TablesWithRows(ctx context.Context, c *cluster.Conn) ([]string, error) {
	snap, err := catalog.TablesWithoutSizes(ctx, c)
	if err != nil {
		return nil, err
	}
	var oids []uint32
	for _, t := range snap.Tables {
		if t.Kind == 'r' {
			oids = append(oids, t.OID)
		}
	}
	if len(oids) == 0 {
		return nil, nil
	}
	rows, err := c.Query(ctx, "SELECT c.oid FROM pg_catalog.pg_class c WHERE c.oid = ANY($1::oid[]) AND pg_catalog.pg_relation_size(c.oid) > 0", oids)
	if err != nil {
		return nil, c.Wrap("look for rows in existing tables", err)
	}
	sized := map[uint32]bool{}
	for rows.Next() {
		var oid uint32
		if err := rows.Scan(&oid); err != nil {
			rows.Close()
			return nil, c.Wrap("look for rows in existing tables", err)
		}
		sized[oid] = true
	}
	if err := rows.Err(); err != nil {
		return nil, c.Wrap("look for rows in existing tables", err)
	}
	var tables []*catalog.Table
	for _, t := range snap.Tables { // in the catalogue's order
		if sized[t.OID] {
			tables = append(tables, t)
		}
	}
	var full []string
	err = catalog.UnionAll(ctx, c, len(tables),
		func(i int) string { return "SELECT WHERE EXISTS (SELECT 1 FROM ONLY " + tables[i].Ident() + ")" },
		func(i int, _ []any) error { full = append(full, tables[i].String()); return nil })
	if err != nil {
		return nil, c.Wrap("look for rows in existing tables", err)
	}
	return full, nil
}
