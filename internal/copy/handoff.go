package copy

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pglogrepl"

	"github.com/pgmove/pgmove/internal/catalog"
	"github.com/pgmove/pgmove/internal/cluster"
	"github.com/pgmove/pgmove/internal/config"
	"github.com/pgmove/pgmove/internal/phase"
	"github.com/pgmove/pgmove/internal/replication"
	"github.com/pgmove/pgmove/internal/schema"
	"github.com/pgmove/pgmove/internal/state"
)

// Journal is where the copy notes its slot and consistent point, the one
// fact a rerun needs that the servers do not keep.
type Journal interface {
	Record(step, status, msg string, data map[string]string) error
	Last(step string) (*state.Event, error)
}

// HandoffOptions tune the whole handoff.
type HandoffOptions struct {
	Copy               Options
	MaintenanceWorkMem string
	SlotTimeout        time.Duration
	WithOwners         bool
	WithACL            bool
	Journal            Journal
	// Archive is the schema dump whose pre-data part was restored, reused
	// for the post-data part; nil dumps again (a resumed run).
	Archive *schema.Archive
	Runner  cluster.Runner
	Out     io.Writer // one line per phase
}

// HandoffResult says what the handoff did.
type HandoffResult struct {
	Tables          int
	Rows, Bytes     int64
	Indexes         int
	ConsistentPoint pglogrepl.LSN
	Resumed         string // "", or what an earlier run left that this one reused or restarted
	CopyTime        time.Duration
	IndexTime       time.Duration
	inlineBuilt     atomic.Int64 // index builds done while the copy ran
	inlineDone      sync.Map     // source OIDs of the tables done then
}

// Handoff is the default initial copy: the slot with its exported snapshot,
// the parallel COPY of every published table under that snapshot, the
// indexes and constraints, the rest of the schema (foreign keys, triggers,
// policies...), then the subscription on that slot, started at its
// consistent point. The target must hold the schema's pre-data
// part (tables without indexes) and no rows, or be the leftover of an
// interrupted handoff, which this detects from the slot and the journal.
func Handoff(ctx context.Context, m *config.Migration, src, dst *cluster.Conn, published []*catalog.Table, spec replication.SubscriptionSpec, o HandoffOptions) (*HandoffResult, error) {
	res := &HandoffResult{}
	say := func(format string, a ...any) { fmt.Fprintf(o.Out, format+"\n", a...) }
	sub, err := replication.Find(ctx, dst, spec.Name)
	if err != nil {
		return nil, err
	}
	if sub != nil {
		return nil, fmt.Errorf("target: subscription %q exists already: the copy is done", spec.Name)
	}
	ssnap, err := catalog.Tables(ctx, src)
	if err != nil {
		return nil, err
	}
	leaves := ssnap.Leaves(published)
	res.Tables = len(leaves)

	slot, err := replication.ReadSlot(ctx, src, spec.Slot)
	if err != nil {
		return nil, err
	}
	last, err := o.Journal.Last("copy")
	if err != nil {
		return nil, err
	}
	var resumePoint pglogrepl.LSN
	if last != nil && last.Status == state.Done && last.Data["slot"] == spec.Slot && slot.Exists && !slot.Active {
		if lsn, err := pglogrepl.ParseLSN(last.Data["consistent_point"]); err == nil && slot.ConfirmedFlush <= lsn {
			resumePoint = lsn
		}
	}
	dsnap, err := catalog.TablesWithoutSizes(ctx, dst)
	if err != nil {
		return nil, err
	}
	plan := loadedTargets(leaves, ssnap, dsnap)

	switch {
	case resumePoint != 0:
		res.Resumed = fmt.Sprintf("the copy into slot %q finished in an earlier run: resuming at the index builds", spec.Slot)
		res.ConsistentPoint = resumePoint
		say("copy: %s", res.Resumed)
	default:
		// The journal may say a copy was interrupted; only the target's
		// ledger proves which rows it loaded there. A table is emptied
		// only when every row in it is one of this migration's loads
		// between these two databases; any other row stops the run, with
		// nothing emptied.
		ours := last != nil && last.Data["slot"] == spec.Slot
		if slot.Exists && !ours {
			return nil, fmt.Errorf("source: replication slot %q exists but this migration's journal (%s) did not create it; drop it with pgmove cleanup if it is a leftover", spec.Slot, m.ContextDir)
		}
		emptied, err := EmptyProven(ctx, src, dst, spec.Name, plan)
		if err != nil {
			return nil, err
		}
		if ours || len(emptied) > 0 {
			res.Resumed = fmt.Sprintf("an earlier copy into slot %q was interrupted and its snapshot is gone: restarting from a new slot", spec.Slot)
			say("copy: %s", res.Resumed)
			if len(emptied) > 0 {
				say("target: emptied the %d table(s) the interrupted copy had loaded (the copy ledger proves every row): %s", len(emptied), cluster.ListSome(emptied, 5))
			}
			if slot.Exists {
				if _, err := replication.DropSlot(ctx, o.Runner, src, spec.Slot); err != nil {
					return nil, err
				}
			}
		}
		if full, err := schema.TablesWithRows(ctx, dst); err != nil {
			return nil, err
		} else if len(full) > 0 {
			return nil, fmt.Errorf("target: %d table(s) already hold rows (%s); the copy loads into empty tables: empty them, or point dst at an empty database", len(full), cluster.ListSome(full, 3))
		}
		t0 := time.Now()
		if err := copyData(ctx, m, src, dst, spec.Slot, published, leaves, ssnap, dsnap, o, res, say); err != nil {
			return nil, err
		}
		phase.Done(phase.Copy, t0, "tables", len(leaves), "rows", res.Rows, "bytes", res.Bytes)
	}

	start := time.Now()
	say("index: building indexes and constraints with %d job(s)", max(o.Copy.Jobs, 1))
	// What the copy workers finished needs no second look.
	rest := slices.DeleteFunc(slices.Clone(leaves), func(t *catalog.Table) bool {
		_, done := res.inlineDone.Load(t.OID)
		return done
	})
	var tables []*Table
	if len(rest) > 0 {
		if tables, err = indexTables(ctx, dst, rest, ssnap); err != nil {
			return nil, err
		}
	}
	var n int
	if len(tables) > 0 {
		n, err = BuildIndexes(ctx, m, src, dst, tables, IndexOptions{Jobs: o.Copy.Jobs, MaintenanceWorkMem: o.MaintenanceWorkMem, Status: o.Copy.Status})
	}
	inline := int(res.inlineBuilt.Load())
	res.Indexes = n + inline
	res.IndexTime = time.Since(start)
	if err != nil {
		return nil, err
	}
	phase.Done(phase.Indexes, start, "built", n, "built_while_copying", inline)
	if inline > 0 {
		say("index: %d index(es) and constraint(s) built in %s, and %d of small tables while copying", n, res.IndexTime.Round(100*time.Millisecond), inline)
	} else {
		say("index: %d index(es) and constraint(s) built in %s", n, res.IndexTime.Round(100*time.Millisecond))
	}
	// The rest of the schema goes in before the subscription starts: DDL
	// such as ADD FOREIGN KEY or ATTACH PARTITION racing the apply worker's
	// row locks deadlocks.
	t0 := time.Now()
	if err := RestoreRest(ctx, m, src, dst, o); err != nil {
		return nil, err
	}
	phase.Done(phase.PostData, t0)
	o.Copy.Status.SetPhase("done")
	t0 = time.Now()
	if _, err := replication.AttachSubscription(ctx, o.Runner, src, dst, spec, res.ConsistentPoint); err != nil {
		return nil, err
	}
	phase.Done(phase.Subscription, t0)
	say("subscription: %q streams changes from the copy's consistent point %s", spec.Name, res.ConsistentPoint)
	return res, nil
}

// copyData creates the slot and copies every table under its snapshot.
func copyData(ctx context.Context, m *config.Migration, src, dst *cluster.Conn, slotName string, published, leaves []*catalog.Table,
	ssnap, dsnap *catalog.Snapshot, o HandoffOptions, res *HandoffResult, say func(string, ...any)) error {
	if err := o.Journal.Record("copy", state.Started, "", map[string]string{"slot": slotName}); err != nil {
		return err
	}
	slot, err := replication.CreateExportedSlot(ctx, m, slotName, o.SlotTimeout)
	if err != nil {
		return err
	}
	defer slot.Close()
	res.ConsistentPoint = slot.ConsistentPoint
	ledger, err := OpenLedger(ctx, src, dst, m.SubName, slotName)
	if err != nil {
		slot.Close()
		if _, derr := replication.DropSlot(ctx, cluster.Runner{}, src, slotName); derr != nil {
			slog.Warn(derr.Error())
		}
		return err
	}
	_ = o.Journal.Record("copy", state.Started, "slot created", map[string]string{"slot": slotName, "consistent_point": slot.ConsistentPoint.String()})
	say("copy: slot %q created at %s; copying %d table(s) with %d job(s) under its snapshot", slotName, slot.ConsistentPoint, len(leaves), max(o.Copy.Jobs, 1))

	failed := func(err error) error {
		// The snapshot dies with this process: a rerun must start from a
		// new slot, so do not leave this one retaining WAL.
		slot.Close()
		dctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, derr := replication.DropSlot(dctx, cluster.Runner{}, src, slotName); derr != nil {
			slog.Warn(derr.Error())
		}
		o.Copy.Status.SetPhase("failed")
		_ = o.Journal.Record("copy", state.Failed, err.Error(), map[string]string{"slot": slotName})
		return fmt.Errorf("%w (the copy stopped and its slot was dropped; rerun to copy again from a new slot)", err)
	}

	planner, err := snapshotConn(ctx, m, slot.Snapshot)
	if err != nil {
		return failed(err)
	}
	tables, err := Plan(ctx, planner, dst, ssnap, dsnap, leaves, o.Copy.SplitLarger, max(o.Copy.Jobs, 1))
	for _, t := range tables {
		if err == nil {
			err = t.resolveRanges(ctx, planner)
		}
	}
	planner.Close()
	if err != nil {
		return failed(err)
	}
	o.Copy.Status.Register(tables)
	start := time.Now()
	inline, err := InlineBuilds(ctx, src, dst, tables)
	if err != nil {
		return failed(err)
	}
	copyOpts := o.Copy
	copyOpts.Inline, copyOpts.InlineBuilt, copyOpts.InlineDone = inline, &res.inlineBuilt, &res.inlineDone
	copyOpts.Ledger = ledger
	if err := Run(ctx, m, slot.Snapshot, tables, copyOpts); err != nil {
		return failed(err)
	}
	res.CopyTime = time.Since(start)
	for _, st := range o.Copy.Status.Tables {
		res.Rows += st.rows.Load()
		res.Bytes += st.bytes.Load()
	}
	slot.Close()
	_ = o.Journal.Record("copy", state.Done, fmt.Sprintf("%d table(s), %d rows copied", len(tables), res.Rows),
		map[string]string{"slot": slotName, "consistent_point": slot.ConsistentPoint.String()})
	secs := max(res.CopyTime.Seconds(), 0.001)
	say("copy: %d table(s), %d rows, %.1f MB in %s (%.1f MB/s)", len(tables), res.Rows, float64(res.Bytes)/(1<<20),
		res.CopyTime.Round(100*time.Millisecond), float64(res.Bytes)/(1<<20)/secs)
	return nil
}

// snapshotConn opens a source connection inside the exported snapshot.
func snapshotConn(ctx context.Context, m *config.Migration, snapshot string) (*cluster.Conn, error) {
	c, err := cluster.Connect(ctx, m.Src, "copy")
	if err != nil {
		return nil, err
	}
	if _, err := c.Exec(ctx, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT "+quoteLiteral(snapshot)); err != nil {
		c.Close()
		return nil, c.Wrap("import the copy's snapshot", err)
	}
	return c, nil
}

// loadedTargets lists the target relations the leaves' rows go to: what an
// interrupted copy may have loaded.
func loadedTargets(leaves []*catalog.Table, ssnap, dsnap *catalog.Snapshot) []*catalog.Table {
	var out []*catalog.Table
	seen := map[uint32]bool{}
	for _, t := range leaves {
		ct := newTable(t, ssnap, dsnap)
		if ct.dst != nil && !seen[ct.dst.OID] {
			seen[ct.dst.OID] = true
			out = append(out, ct.dst)
		}
	}
	return out
}

// indexTables rebuilds the copy plan's table list (without ranges or
// columns) for the index phase, which may run in a later process.
func indexTables(ctx context.Context, dst *cluster.Conn, leaves []*catalog.Table, ssnap *catalog.Snapshot) ([]*Table, error) {
	dsnap, err := catalog.TablesWithoutSizes(ctx, dst)
	if err != nil {
		return nil, err
	}
	var out []*Table
	for _, t := range leaves {
		out = append(out, newTable(t, ssnap, dsnap))
	}
	return out, nil
}

// RestoreRest restores what the pre-data restore and the index builds left
// out (foreign keys, triggers, rules, policies, partitioned indexes, event
// triggers last), skipping whatever the target already has.
func RestoreRest(ctx context.Context, m *config.Migration, src, dst *cluster.Conn, o HandoffOptions) error {
	res, err := schema.Copy(ctx, m, src, dst, schema.CopyOptions{
		Force: true, WithOwners: o.WithOwners, WithACL: o.WithACL, Jobs: o.Copy.Jobs, Reuse: o.Archive,
		Only: func(e schema.Entry) bool { return e.Section() == "post-data" },
	})
	if err != nil {
		return err
	}
	if res.Restored > 0 {
		fmt.Fprintf(o.Out, "schema: %d more object(s) restored (foreign keys, triggers, policies...)\n", res.Restored)
	}
	return nil
}
