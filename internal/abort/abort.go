package abort

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/jackc/pgx/v5"

	"github.com/pgmove/pgmove/internal/catalog"
	"github.com/pgmove/pgmove/internal/cluster"
	"github.com/pgmove/pgmove/internal/config"
	"github.com/pgmove/pgmove/internal/copy"
	"github.com/pgmove/pgmove/internal/replication"
	"github.com/pgmove/pgmove/internal/switchover"
)

// Options tune an abort.
type Options struct {
	Runner  cluster.Runner
	Journal switchover.Journal // nil: no journal (nothing to lift, nothing recorded)
	Out     io.Writer          // one line per thing done
	// DropTargetData empties the target tables the copy ledger proves this
	// migration loaded; Confirm is asked first with their names (false:
	// nothing emptied). SrcSystemID and SrcDBOID name the source for the
	// ledger when it is unreachable (the journal's).
	DropTargetData bool
	Confirm        func(tables []string) (bool, error)
	SrcSystemID    int64
	SrcDBOID       uint32
	// SwitchedOver: the last switch was a switchover, done: the
	// application writes to the target, whose data is no copy any more.
	SwitchedOver bool
}

// Leftover is an object abort could not drop, on a side it could not
// reach, with the statements that drop it there.
type Leftover struct {
	Side string `json:"side"`
	What string `json:"what"`
	SQL  string `json:"sql"`
}

// Result is what an abort did and left.
type Result struct {
	FenceLifted string     `json:"fence_lifted,omitempty"`
	Dropped     []string   `json:"dropped"`
	Emptied     []string   `json:"tables_emptied"`
	ToEmpty     []string   `json:"tables_to_empty,omitempty"` // --dry-run, or not confirmed
	Left        []Leftover `json:"left"`
}

type aborter struct {
	m        *config.Migration
	src, dst *cluster.Conn
	o        Options
	r        cluster.Runner
	res      *Result
	gone     map[string]bool // slots dropping a subscription dropped
}

// Run aborts the migration m. src or dst is nil when that side cannot be
// reached: what it holds is returned in Result.Left, and the error says so.
func Run(ctx context.Context, m *config.Migration, src, dst *cluster.Conn, o Options) (*Result, error) {
	a := &aborter{m: m, src: src, dst: dst, o: o, r: o.Runner, res: &Result{Dropped: []string{}, Emptied: []string{}, Left: []Leftover{}}, gone: map[string]bool{}}
	if o.DropTargetData && o.SwitchedOver {
		return a.res, fmt.Errorf("target: --drop-target-data after a switchover: the application writes to the target now, its tables are no copy; pgmove rollback first, or abort without --drop-target-data")
	}
	if !o.Runner.DryRun {
		lifted, err := switchover.LiftInterrupted(ctx, m, src, dst, switchover.Options{Journal: o.Journal, Out: o.Out})
		if err != nil {
			return a.res, err
		}
		if lifted != "" {
			a.res.FenceLifted = lifted
			a.say("%s", lifted)
		}
	}
	pub, backSub, backSlot := switchover.ReverseNames(m)
	// The subscriptions first: each drops its slot on the other side.
	if err := a.subscription(ctx, dst, src, m.SubName, m.SlotName); err != nil {
		return a.res, err
	}
	if err := a.subscription(ctx, src, dst, backSub, backSlot); err != nil {
		return a.res, err
	}
	if err := a.publication(ctx, src, config.Source, m.PubName); err != nil {
		return a.res, err
	}
	if err := a.slot(ctx, src, config.Source, m.SlotName); err != nil {
		return a.res, err
	}
	if err := a.publication(ctx, dst, config.Target, pub); err != nil {
		return a.res, err
	}
	if err := a.slot(ctx, dst, config.Target, backSlot); err != nil {
		return a.res, err
	}
	if o.DropTargetData {
		if err := a.targetData(ctx); err != nil {
			return a.res, err
		}
	}
	return a.res, a.leftError()
}

func (a *aborter) say(format string, args ...any) {
	if !a.r.DryRun && a.r.Record == nil {
		fmt.Fprintf(a.o.Out, format+"\n", args...)
	}
}

func (a *aborter) drop(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	a.res.Dropped = append(a.res.Dropped, msg)
	a.say("%s", msg)
}

// subscription drops subscription name on sub (the subscriber), whose slot
// is on pub (the publisher).
func (a *aborter) subscription(ctx context.Context, sub, pub *cluster.Conn, name, slot string) error {
	side := config.Target
	if name != a.m.SubName {
		side = config.Source
	}
	if sub == nil {
		a.left(side, fmt.Sprintf("subscription %s (if it exists)", catalog.QuoteName(name)),
			replication.AlterSubscriptionSQL(name, "DISABLE")+"; "+replication.DetachSlotSQL(name)+"; "+replication.DropSubscriptionSQL(name)+";")
		return nil
	}
	publisher := pub
	if pub != nil {
		// A slot an earlier abort dropped already: detach, or the drop
		// fails on the missing slot.
		var exists bool
		if err := pub.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_replication_slots WHERE slot_name = $1)", slot).Scan(&exists); err != nil {
			return pub.Wrap("look up replication slot", err)
		}
		if !exists {
			publisher = nil
		}
	}
	rr, err := replication.RemoveSubscription(ctx, a.r, sub, publisher, name)
	if err != nil {
		return err
	}
	if rr.Dropped {
		a.drop("%s: subscription %q dropped", sub.Side, name)
	}
	for _, sl := range rr.SlotsDropped {
		a.gone[sl] = true
		a.drop("%s: replication slot %q dropped with it", pub.Side, sl)
	}
	for _, sl := range rr.OrphanSlots {
		if pub == nil {
			a.left(pub2side(side), fmt.Sprintf("replication slot %s (it keeps WAL until dropped)", catalog.QuoteName(sl)), replication.DropSlotSQL(sl)+";")
		}
	}
	return nil
}

func pub2side(s config.Side) config.Side {
	if s == config.Source {
		return config.Target
	}
	return config.Source
}

func (a *aborter) publication(ctx context.Context, c *cluster.Conn, side config.Side, name string) error {
	if c == nil {
		a.left(side, fmt.Sprintf("publication %s (if it exists)", catalog.QuoteName(name)), replication.DropPublicationSQL(name)+";")
		return nil
	}
	ok, err := replication.DropPublication(ctx, a.r, c, name)
	if err != nil {
		return err
	}
	if ok {
		a.drop("%s: publication %q dropped", side, name)
	}
	return nil
}

func (a *aborter) slot(ctx context.Context, c *cluster.Conn, side config.Side, name string) error {
	if c == nil {
		for _, l := range a.res.Left {
			if l.SQL == replication.DropSlotSQL(name)+";" {
				return nil
			}
		}
		a.left(side, fmt.Sprintf("replication slot %s (if it exists; it keeps WAL until dropped)", catalog.QuoteName(name)), replication.DropSlotSQL(name)+";")
		return nil
	}
	if a.gone[name] {
		return nil
	}
	ok, err := replication.DropSlot(ctx, a.r, c, name)
	if err != nil {
		return err
	}
	if ok {
		a.drop("%s: replication slot %q dropped", side, name)
	}
	return nil
}

// targetData empties, once confirmed, the target tables the ledger proves
// this migration loaded, then drops the ledger: nothing is left to prove.
func (a *aborter) targetData(ctx context.Context) error {
	if a.dst == nil {
		a.left(config.Target, "the tables pgmove loaded (--drop-target-data)", "pgmove abort --drop-target-data, once the target is back (the copy ledger names the tables)")
		return nil
	}
	srcSys, srcDB := a.o.SrcSystemID, a.o.SrcDBOID
	if a.src != nil {
		srcSys, srcDB = a.src.SystemID, a.src.DBOID
	}
	if srcSys == 0 {
		return fmt.Errorf("source: unreachable, and the journal does not name it: pgmove cannot tell which tables the copy ledger proves it loaded; run pgmove abort --drop-target-data again when the source is back")
	}
	tables, err := copy.LoadedTables(ctx, a.dst, a.m.SubName, srcSys, srcDB)
	if err != nil {
		return err
	}
	var names []string
	for _, t := range tables {
		names = append(names, t.Name.String())
	}
	if len(tables) > 0 {
		if a.r.DryRun {
			a.res.ToEmpty = names
			return a.r.Exec(ctx, a.dst, fmt.Sprintf("empty the %d table(s) the copy ledger proves pgmove loaded", len(tables)), copy.EmptyLoadedSQL(tables))
		}
		ok := false
		if a.o.Confirm != nil {
			if ok, err = a.o.Confirm(names); err != nil {
				return err
			}
		}
		if !ok {
			a.res.ToEmpty = names
			return fmt.Errorf("target: --drop-target-data not confirmed: nothing emptied; the %d table(s) stay as they are (rerun with --yes to empty them)", len(tables))
		}
		err := pgx.BeginFunc(ctx, a.dst.Conn, func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, copy.EmptyLoadedSQL(tables))
			return err
		})
		if err != nil {
			return a.dst.Wrap(fmt.Sprintf("empty the %d table(s) pgmove loaded", len(tables)), err)
		}
		if a.r.Record != nil {
			a.r.Record(cluster.Statement{Side: string(config.Target), What: "empty the tables pgmove loaded", SQL: copy.EmptyLoadedSQL(tables)})
		}
		a.res.Emptied = names
		a.say("target: %d table(s) pgmove loaded emptied: %s", len(names), cluster.ListSome(names, 10))
	}
	dropped, err := copy.DropLedger(ctx, a.r, a.dst)
	if err != nil {
		return err
	}
	if dropped {
		a.drop("target: the copy ledger (schema %s) dropped", copy.LedgerSchema)
	}
	return nil
}

func (a *aborter) left(side config.Side, what, sql string) {
	a.res.Left = append(a.res.Left, Leftover{Side: string(side), What: what, SQL: sql})
}

// leftError is the error of an abort that could not reach a side: what is
// left there, and the statements that drop it.
func (a *aborter) leftError() error {
	if len(a.res.Left) == 0 {
		return nil
	}
	var errs []error
	for _, side := range []config.Side{config.Source, config.Target} {
		var whats, sqls []string
		for _, l := range a.res.Left {
			if l.Side == string(side) {
				whats, sqls = append(whats, l.What), append(sqls, l.SQL)
			}
		}
		if len(whats) == 0 {
			continue
		}
		errs = append(errs, fmt.Errorf("%s: unreachable, so %s remain there: when it is back, run pgmove abort again, or there: %s",
			side, joinAnd(whats), joinSpace(sqls)))
	}
	return errors.Join(errs...)
}

func joinAnd(s []string) string {
	switch len(s) {
	case 0:
		return ""
	case 1:
		return s[0]
	}
	out := s[0]
	for _, x := range s[1 : len(s)-1] {
		out += ", " + x
	}
	return out + " and " + s[len(s)-1]
}

func joinSpace(s []string) string {
	out := ""
	for i, x := range s {
		if i > 0 {
			out += " "
		}
		out += x
	}
	return out
}
