package check

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/pgmove/pgmove/internal/catalog"
	"github.com/pgmove/pgmove/internal/cluster"
	"github.com/pgmove/pgmove/internal/config"
	"github.com/pgmove/pgmove/internal/replication"
	"github.com/pgmove/pgmove/internal/schema"
)

// specialObjects is the seed's check-special-object, done right: every kind
// of object logical replication does not carry, and what happens to it.
func (c *checker) specialObjects(ctx context.Context) error {
	if c.src == nil || c.snap == nil {
		return nil
	}
	selected := func(t *catalog.Table) bool { return config.Selected(c.m.Include, c.m.Exclude, t.Schema, t.Name) }
	partitions := map[uint32]int{}
	for _, t := range c.snap.Tables {
		if t.Partition {
			partitions[t.RootOID]++
		}
	}
	for _, t := range c.snap.Tables {
		if !selected(t) {
			continue
		}
		switch {
		case t.Kind == 'm':
			c.r.add(Warning, config.Source, "materialized_view", t.String(),
				"materialized view: not replicated; copy-seq refreshes it on the target at the switch", "REFRESH MATERIALIZED VIEW "+t.Ident()+";  -- on the target, after the switch")
		case t.Kind == 'f':
			c.r.add(Warning, config.Source, "foreign_table", t.String(),
				"foreign table: its definition is copied, its data stays on the remote server; the target needs the wrapper's extension, server and user mappings (with their passwords)", "")
		case t.Persistence == 'u' && (t.Kind == 'r' || t.Kind == 'p'):
			c.r.add(Warning, config.Source, "unlogged_table", t.String(),
				"unlogged table: logical replication skips it; copy-seq copies its rows at the switch", "ALTER TABLE "+t.Ident()+" SET LOGGED;  -- to have it replicated instead (rewrites the table)")
		case t.Kind == 'p' && !t.Partition:
			c.r.add(Info, config.Source, "partitioned_table", t.String(),
				fmt.Sprintf("partitioned table with %d partition(s): published through its root, so the target may partition it differently", partitions[t.OID]), "")
		}
		if t.RLS {
			c.r.add(Info, config.Source, "row_level_security", t.String(),
				"row-level security: the replication role and pgmove's copy must bypass it (BYPASSRLS or superuser), or rows go missing", "")
		}
		if len(t.Generated) > 0 && t.Kind == 'r' {
			c.r.add(Info, config.Source, "generated_column", t.String(),
				fmt.Sprintf("generated column(s) %s: not copied; the target computes them", strings.Join(t.Generated, ", ")), "")
		}
	}
	var los int64
	var eventTriggers []string
	if err := c.src.QueryRow(ctx, "SELECT count(*) FROM pg_catalog.pg_largeobject_metadata").Scan(&los); err != nil {
		return c.src.Wrap("count large objects", err)
	}
	if los > 0 {
		c.r.add(Warning, config.Source, "large_objects", "", fmt.Sprintf("%d large object(s): not replicated; copy-seq copies them at the switch", los), "")
	}
	rows, err := c.src.Query(ctx, "SELECT evtname FROM pg_catalog.pg_event_trigger ORDER BY 1")
	if err != nil {
		return c.src.Wrap("list event triggers", err)
	}
	eventTriggers, err = pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return c.src.Wrap("list event triggers", err)
	}
	for _, e := range eventTriggers {
		c.r.add(Warning, config.Source, "event_trigger", catalog.QuoteName(e),
			"event trigger: copy-schema restores it on the target, where it fires on DDL (including a later copy-schema)", "")
	}
	// Replication applies changes with session_replication_role = replica:
	// ordinary triggers stay quiet on the target, but ENABLE ALWAYS and
	// ENABLE REPLICA ones fire for every replicated row, and would write a
	// second time what the source's trigger already wrote and replicated.
	rows, err = c.src.Query(ctx, `SELECT n.nspname, c.relname, t.tgname, t.tgenabled::text FROM pg_catalog.pg_trigger t
		JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
		WHERE NOT t.tgisinternal AND t.tgenabled IN ('A', 'R') ORDER BY 1, 2, 3`)
	if err != nil {
		return c.src.Wrap("list triggers", err)
	}
	type trig struct{ schema, table, name, mode string }
	trigs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (trig, error) {
		var t trig
		return t, r.Scan(&t.schema, &t.table, &t.name, &t.mode)
	})
	if err != nil {
		return c.src.Wrap("list triggers", err)
	}
	for _, t := range trigs {
		q := catalog.QualifiedName{Schema: t.schema, Name: t.table}
		if !config.Selected(c.m.Include, c.m.Exclude, t.schema, t.table) {
			continue
		}
		mode := map[string]string{"A": "ENABLE ALWAYS", "R": "ENABLE REPLICA"}[t.mode]
		c.r.add(Warning, config.Source, "trigger", q.String(), fmt.Sprintf("trigger %s is %s: on the target it fires for every replicated row, and may write twice what the source already wrote", catalog.QuoteName(t.name), mode),
			fmt.Sprintf("ALTER TABLE %s ENABLE TRIGGER %s;  -- on the target, until the switch", q.Ident(), pgx.Identifier{t.name}.Sanitize()))
	}
	seqs, err := catalog.Sequences(ctx, c.src)
	if err != nil {
		return err
	}
	var unowned []string
	for _, s := range seqs {
		if !s.Owned() {
			unowned = append(unowned, s.String())
		}
	}
	if len(unowned) > 0 {
		c.r.add(Info, config.Source, "sequence", "", fmt.Sprintf("%d sequence(s) owned by no column (%s): not replicated, like every sequence; copy-seq carries all of them",
			len(unowned), cluster.ListSome(unowned, 3)), "")
	}
	if len(seqs) > 0 {
		c.r.add(Info, config.Source, "sequence", "", fmt.Sprintf("%d sequence(s): not replicated; run copy-seq at the switch, after writes stop", len(seqs)), "")
	}
	return nil
}

// extensions: every extension of the source must be installable on the
// target, or the schema restore fails.
func (c *checker) extensions(ctx context.Context) error {
	if c.src == nil || c.dst == nil {
		return nil
	}
	exts, err := catalog.Extensions(ctx, c.src)
	if err != nil {
		return err
	}
	avail, err := catalog.AvailableExtensions(ctx, c.dst)
	if err != nil {
		return err
	}
	for _, e := range exts {
		if e.Name == "plpgsql" {
			continue
		}
		if _, ok := avail[e.Name]; !ok {
			c.r.add(Error, config.Target, "extension", e.Name,
				fmt.Sprintf("extension %s %s is installed on the source, but the target server has no files for it", e.Name, e.Version),
				fmt.Sprintf("install the package that provides it on the target host (for Debian/PGDG: postgresql-%d-%s), then rerun", c.dst.Major(), e.Name))
		}
	}
	return nil
}

// leftovers: slots, publications and subscriptions of an earlier run.
func (c *checker) leftovers(ctx context.Context) error {
	var sub bool
	if c.dst != nil {
		s, err := replication.Find(ctx, c.dst, c.m.SubName)
		if err != nil {
			return err
		}
		if s != nil {
			sub = true
			state := "enabled"
			if !s.Enabled {
				state = "disabled"
			}
			c.r.add(Info, config.Target, "subscription", c.m.SubName, fmt.Sprintf("subscription exists (%s): a migration is under way; pgmove progress shows it", state), "")
		}
		subs, err := catalog.Subscriptions(ctx, c.dst)
		if err != nil {
			return err
		}
		ours := map[catalog.QualifiedName]bool{}
		for _, t := range c.r.Published {
			ours[catalog.QualifiedName{Schema: t.Schema, Name: t.Name}] = true
		}
		for _, s := range subs {
			if s.Name == c.m.SubName {
				continue
			}
			// Another migration (or any replication) into this database
			// that writes tables this one would load: the two would
			// overwrite each other's rows, and this one's copy would meet
			// rows it did not load.
			theirs, err := catalog.SubscriptionTables(ctx, c.dst, s.OID)
			if err != nil {
				return err
			}
			var shared []string
			for _, q := range theirs {
				if ours[q] {
					shared = append(shared, q.String())
				}
			}
			if len(shared) == 0 {
				c.r.add(Info, config.Target, "subscription", s.Name, "another subscription exists in the target database (it replicates none of this migration's tables)", "")
				continue
			}
			c.r.add(Error, config.Target, "subscription", s.Name,
				fmt.Sprintf("another subscription already replicates %d of this migration's tables into the target database (%s): two subscriptions writing the same tables overwrite each other", len(shared), cluster.ListSome(shared, 3)),
				"finish or clean up that migration first (its pgmove cleanup, or on the target: "+replication.DropSubscriptionSQL(s.Name)+";), or leave those tables out with exclude")
		}
	}
	if c.src == nil {
		return nil
	}
	slots, err := catalog.Slots(ctx, c.src)
	if err != nil {
		return err
	}
	for _, s := range slots {
		switch {
		case s.Name == c.m.SlotName && !sub && c.dst != nil && c.phase.interruptedSlot == s.Name && !s.Active:
			// A killed copy's slot: create-sub deals with it itself.
			c.r.add(Info, config.Source, "slot", s.Name, fmt.Sprintf("replication slot of this migration's interrupted copy, retaining %s of WAL: create-sub (or migrate) resumes at the index builds if the copy had finished, or drops it and copies again from a new slot", PrettyBytes(s.RetainedBytes)), "")
		case s.Name == c.m.SlotName && !sub && c.dst != nil:
			c.r.add(Warning, config.Source, "slot", s.Name, fmt.Sprintf("replication slot left by an earlier run, retaining %s of WAL", PrettyBytes(s.RetainedBytes)),
				"pgmove cleanup   -- or on the source: "+replication.DropSlotSQL(s.Name)+";")
		case s.Name != c.m.SlotName && !s.Active && s.RetainedBytes > 0:
			c.r.add(Warning, config.Source, "slot", s.Name, fmt.Sprintf("inactive %s slot retains %s of WAL: the source's disk fills while it lingers", s.Type, PrettyBytes(s.RetainedBytes)),
				replication.DropSlotSQL(s.Name)+";  -- if nothing uses it any more")
		}
	}
	pubs, err := catalog.Publications(ctx, c.src)
	if err != nil {
		return err
	}
	for _, p := range pubs {
		if p.Name == c.m.PubName {
			c.r.add(Info, config.Source, "publication", p.Name, "publication exists; create-pub reuses it", "")
		}
	}
	return nil
}

// blockers: transactions that would stall creating the replication slot.
func (c *checker) blockers(ctx context.Context) error {
	if c.src == nil {
		return nil
	}
	rows, err := c.src.Query(ctx, `SELECT gid, to_char(prepared, 'YYYY-MM-DD HH24:MI:SS') FROM pg_catalog.pg_prepared_xacts
		WHERE database = pg_catalog.current_database() ORDER BY prepared`)
	if err != nil {
		return c.src.Wrap("list prepared transactions", err)
	}
	type px struct{ gid, at string }
	prepared, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (px, error) {
		var p px
		return p, r.Scan(&p.gid, &p.at)
	})
	if err != nil {
		return c.src.Wrap("list prepared transactions", err)
	}
	for _, p := range prepared {
		c.r.add(Warning, config.Source, "prepared_transaction", p.gid, "prepared transaction since "+p.at+": creating the replication slot waits until it ends",
			fmt.Sprintf("COMMIT PREPARED %s;  -- or ROLLBACK PREPARED", replication.QuoteLiteral(p.gid)))
	}
	rows, err = c.src.Query(ctx, `SELECT pid, COALESCE(usename::text, ''), extract(epoch FROM now() - xact_start)::int8
		FROM pg_catalog.pg_stat_activity
		WHERE backend_xid IS NOT NULL AND pid <> pg_catalog.pg_backend_pid() AND now() - xact_start > interval '5 minutes'
		ORDER BY xact_start`)
	if err != nil {
		return c.src.Wrap("list long transactions", err)
	}
	type lx struct {
		pid  int
		user string
		secs int64
	}
	long, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (lx, error) {
		var l lx
		return l, r.Scan(&l.pid, &l.user, &l.secs)
	})
	if err != nil {
		return c.src.Wrap("list long transactions", err)
	}
	for _, l := range long {
		c.r.add(Warning, config.Source, "long_transaction", fmt.Sprint(l.pid),
			fmt.Sprintf("transaction of %s open for %d s: creating the replication slot waits until it ends", l.user, l.secs),
			fmt.Sprintf("SELECT pg_terminate_backend(%d);  -- if it can be ended", l.pid))
	}
	return nil
}

// targetTables: rows already on the target, published tables it lacks.
func (c *checker) targetTables(ctx context.Context) error {
	if c.dst == nil {
		return nil
	}
	if s, err := replication.Find(ctx, c.dst, c.m.SubName); err != nil || s != nil {
		return err // under way: rows on the target are expected
	}
	full, err := schema.TablesWithRows(ctx, c.dst)
	if err != nil {
		return err
	}
	if len(full) > 0 && c.phase.interrupted != "" && !c.o.Native {
		// The copy's own rows: the rerun restarts it from a new slot.
		c.r.add(Info, config.Target, "target_rows", "", fmt.Sprintf("%d table(s) on the target hold rows (%s) and %s without finishing: create-sub (or migrate) restarts the copy from a new slot",
			len(full), cluster.ListSome(full, 3), c.phase.interrupted), "")
	} else if len(full) > 0 {
		c.r.add(Warning, config.Target, "target_rows", "", fmt.Sprintf("%d table(s) on the target already hold rows (%s): copy-schema refuses to restore over data, and the initial copy would add rows to them",
			len(full), cluster.ListSome(full, 3)), "point dst at an empty database, or empty those tables if they are leftovers")
	}
	if c.snap == nil {
		return nil
	}
	dsnap, err := catalog.TablesWithoutSizes(ctx, c.dst)
	if err != nil {
		return err
	}
	missing := 0
	for _, t := range c.r.Published {
		if dsnap.Find(t.Schema, t.Name) == nil {
			missing++
		}
	}
	if missing > 0 {
		c.r.add(Info, config.Target, "schema", "", fmt.Sprintf("%d of %d published table(s) are not on the target yet; copy-schema creates them", missing, len(c.r.Published)), "")
	}
	return nil
}

// drift compares the schemas once the target has the migrated tables: DDL
// run on the source since is not replicated. A difference that stops the
// apply (a column the target lacks, a type that refuses the source's
// values, an enum without the source's labels) blocks; the others (json on
// the source, jsonb on the target) are warnings to settle before the switch.
// Tables the target lacks are coverage's to report, for those the migration
// selects, and of no concern otherwise.
func (c *checker) drift(ctx context.Context) error {
	if c.src == nil || c.dst == nil || c.snap == nil {
		return nil
	}
	dsnap, err := catalog.TablesWithoutSizes(ctx, c.dst)
	if err != nil {
		return err
	}
	present := false
	for _, t := range c.r.Published {
		present = present || dsnap.Find(t.Schema, t.Name) != nil
	}
	if !present {
		return nil
	}
	ds, err := schema.Diff(ctx, c.src, c.dst)
	if err != nil {
		return err
	}
	pending, pendingTables := 0, map[string]bool{}
	for _, d := range ds {
		if d.Warning || (d.Kind == "table" && d.Target == "") {
			continue
		}
		if c.phase.beforeHandoff(c.o.Native) && postData(d) {
			// What create-sub builds next is not a fault: summarised
			// once below.
			pending++
			if d.Table != "" {
				pendingTables[d.Table] = true
			} else {
				pendingTables[d.Object] = true
			}
			continue
		}
		if d.ColumnOrder {
			c.r.add(Warning, config.Target, "column_order", d.Object, "columns in another order than on the source (source: "+oneLine(d.Source)+"; target: "+oneLine(d.Target)+
				"): replication maps columns by name, but SELECT * and INSERT without a column list behave differently after the switch",
				"-- recreate the table on the target with the source's column order while it is empty (pgmove copy-schema keeps it for inheritance children when connected as a superuser), or name the columns in the application's queries")
			continue
		}
		sev, msg := Warning, "schema drift: "+describeDiff(d)+"; replication carries on, but fix it on the target before the switch"
		if d.Stops != "" {
			sev, msg = Error, "schema drift: "+describeDiff(d)+"; "+d.Stops
		}
		fix := d.Fix
		if fix == "" {
			fix = "-- no safe statement: make the target match the source by hand (pgmove compare --schema shows both)"
		}
		c.r.add(sev, config.Target, "schema_drift", d.Object, msg, fix)
	}
	if pending > 0 {
		c.r.add(Info, config.Target, "post_data", "", pendingSummary(pending, pendingTables), "")
	}
	return nil
}

// coverage: once the subscription exists, every table of the selection
// must be in the publication, in the subscription and on the target, or
// its rows are not migrated (a table created on the source since the
// publication was made, typically).
func (c *checker) coverage(ctx context.Context) error {
	if c.src == nil || c.dst == nil || c.snap == nil {
		return nil
	}
	sub, err := replication.Find(ctx, c.dst, c.m.SubName)
	if err != nil || sub == nil {
		return err
	}
	gaps, err := catalog.Coverage(ctx, c.src, c.dst, c.r.Published, c.m.PubName, sub.OID)
	if err != nil {
		return err
	}
	for _, g := range gaps {
		c.r.add(Error, config.Side("both"), "selection", g.Table.String(), "table "+g.Message(), g.Fix())
	}
	return nil
}

// apply: an enabled subscription with no worker applying is down; the
// findings that can explain it are raised to blocking.
func (c *checker) apply(ctx context.Context) error {
	if c.dst == nil {
		return nil
	}
	sub, err := replication.Find(ctx, c.dst, c.m.SubName)
	if err != nil || sub == nil {
		return err
	}
	a, err := replication.Apply(ctx, c.dst, sub.OID)
	if err != nil || !a.Down() {
		return err
	}
	causes := 0
	for i := range c.r.Findings {
		f := &c.r.Findings[i]
		switch {
		case f.Code == "replica_identity_full":
			f.Severity, f.Message = Error, f.Message+" (the apply is down: this may be why)"
			causes++
		case f.Code == "schema_drift" && f.Severity == Error:
			causes++
		}
	}
	msg := fmt.Sprintf("subscription %q is enabled but no worker applies (%s): nothing is applied and the lag grows", c.m.SubName, a.Describe())
	if logged := replication.LastApplyError(ctx, c.dst); logged != "" {
		msg += "; the target's log says: " + logged
	}
	fix := "fix the cause reported beside this one; the worker restarts on its own"
	if causes == 0 {
		fix = "the target's log names the error; or raise max_logical_replication_workers if the workers are exhausted"
	}
	c.r.add(Error, config.Target, "apply_down", c.m.SubName, msg, fix)
	return nil
}

func describeDiff(d schema.Difference) string {
	switch {
	case d.Target == "":
		return d.Kind + " exists on the source only"
	case d.Source == "":
		return d.Kind + " exists on the target only"
	}
	return d.Kind + " differs (source: " + oneLine(d.Source) + "; target: " + oneLine(d.Target) + ")"
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 120 {
		s = s[:117] + "..."
	}
	return s
}
