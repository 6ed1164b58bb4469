package switchover

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgmove/pgmove/internal/carry"
	"github.com/pgmove/pgmove/internal/catalog"
	"github.com/pgmove/pgmove/internal/cluster"
	"github.com/pgmove/pgmove/internal/config"
	"github.com/pgmove/pgmove/internal/replication"
	"github.com/pgmove/pgmove/internal/schema"
	"github.com/pgmove/pgmove/internal/sequence"
	"github.com/pgmove/pgmove/internal/state"
)

// Fences.
const (
	FencePgBouncer = "pgbouncer"
	FenceDatabase  = "database"
	FenceNone      = "none"
)

// Journal is where each stage of a switchover is noted, so a killed run is
// finished or undone by the next.
type Journal interface {
	Record(step, status, msg string, data map[string]string) error
	Last(step string) (*state.Event, error)
}

// Options tune a switchover or a rollback.
type Options struct {
	Fence      string        // pgbouncer, database or none
	Bouncers   []string      // pgbouncer admin console URLs
	BouncerINI string        // pgbouncer.ini whose entry is repointed ("" leaves routing to the hook)
	BouncerDB  string        // the entry's name (default: the source database's name)
	AppRoles   []string      // --fence database: the roles whose writes are fenced
	MaxPause   time.Duration // the fence is lifted (and the switch abandoned) past this
	MaxLag     int64         // preflight: the lag at most, in bytes
	SwitchHook string        // a command run between fence and resume
	DryRun     bool
	Journal    Journal
	Out        io.Writer // one line per step
	// Progress, when set, is kept up to date while the switch runs, for
	// the caller to show.
	Progress *Progress
}

// Step is one timed step inside the pause.
type Step struct {
	Name string        `json:"step"`
	Took time.Duration `json:"-"`
	MS   float64       `json:"ms"`
}

// Result says what a switchover or rollback did.
type Result struct {
	Direction string  `json:"direction"` // switchover or rollback
	From      string  `json:"from"`
	To        string  `json:"to"`
	Fence     string  `json:"fence"`
	FenceLSN  string  `json:"fence_lsn,omitempty"`
	PauseMS   float64 `json:"pause_ms"`
	Steps     []Step  `json:"steps"`
	Sequences int     `json:"sequences_set"`
	// What replication does not carry, carried early and again in the pause.
	LargeObjects int      `json:"large_objects_carried"`
	Unlogged     int      `json:"unlogged_tables_copied"`
	Matviews     int      `json:"materialized_views_refreshed"`
	Aborted      bool     `json:"aborted"`
	Reason       string   `json:"reason,omitempty"`
	Recovered    string   `json:"recovered,omitempty"` // what an interrupted earlier run left, and what was done about it
	Warnings     []string `json:"warnings,omitempty"`
}

// ReverseNames are the names of the way back a switchover makes: the
// target's publication and slot, and the source's subscription that
// replicates the target's writes back.
func ReverseNames(m *config.Migration) (pub, sub, slot string) { return reverseNames(m) }

func reverseNames(m *config.Migration) (pub, sub, slot string) {
	sub = config.ObjectName(trim63(m.SubName, "_reverse"))
	return trim63(m.PubName, "_reverse"), sub, sub
}

func trim63(name, suffix string) string {
	if len(name)+len(suffix) > 63 {
		name = name[:63-len(suffix)]
	}
	return name + suffix
}

// direction is one way of a switch: from the primary (the side the
// application writes to now, publisher of the current subscription) to the
// replica (its subscriber, which becomes the primary).
type direction struct {
	name             string // switchover or rollback
	primary, replica *cluster.Conn
	primaryEP        config.Endpoint
	replicaEP        config.Endpoint
	// The subscription on the replica that follows the primary, and its slot.
	current, currentSlot string
	// The way back, prepared ahead: a publication and a slot on the replica,
	// and a subscription of the primary to them.
	nextPub, next, nextSlot string
	route                   Route // where traffic goes after the switch
}

func forward(m *config.Migration, src, dst *cluster.Conn) direction {
	pub, sub, slot := reverseNames(m)
	return direction{name: "switchover", primary: src, replica: dst, primaryEP: m.Src, replicaEP: m.Dst,
		current: m.SubName, currentSlot: m.SlotName, nextPub: pub, next: sub, nextSlot: slot,
		route: Route{Host: m.Dst.Host(), Port: m.Dst.Port(), DB: m.Dst.DB}}
}

func backward(m *config.Migration, src, dst *cluster.Conn) direction {
	_, sub, slot := reverseNames(m)
	return direction{name: "rollback", primary: dst, replica: src, primaryEP: m.Dst, replicaEP: m.Src,
		current: sub, currentSlot: slot, nextPub: m.PubName, next: m.SubName, nextSlot: m.SlotName,
		route: Route{Host: m.Src.Host(), Port: m.Src.Port(), DB: m.Src.DB}}
}

// Switchover moves the application from the source to the target.
func Switchover(ctx context.Context, m *config.Migration, src, dst *cluster.Conn, o Options) (*Result, error) {
	return run(ctx, m, forward(m, src, dst), o)
}

// Rollback moves it back after a switchover, through the reverse replication.
func Rollback(ctx context.Context, m *config.Migration, src, dst *cluster.Conn, o Options) (*Result, error) {
	return run(ctx, m, backward(m, src, dst), o)
}

func run(ctx context.Context, m *config.Migration, d direction, o Options) (*Result, error) {
	res := &Result{Direction: d.name, From: d.primaryEP.Display(), To: d.replicaEP.Display(), Fence: o.Fence}
	say := func(format string, a ...any) { fmt.Fprintf(o.Out, d.name+": "+format+"\n", a...) }
	if o.BouncerDB == "" {
		o.BouncerDB = m.Src.DB
	}
	if o.Fence == FencePgBouncer && len(o.Bouncers) == 0 {
		return nil, errors.New("--fence pgbouncer needs the admin console of every pgbouncer in front of the source: --pgbouncer postgres://admin@host:6432/pgbouncer (repeatable)")
	}
	if o.Fence == FenceDatabase && len(o.AppRoles) == 0 {
		return nil, errors.New("--fence database needs the application's roles, whose writes it fences: --app-role NAME (repeatable)")
	}
	if !o.DryRun {
		if done, err := recoverInterrupted(ctx, m, d, o, res, say); err != nil || done {
			return res, err
		}
	} else if done, err := describeInterrupted(d, o, say); err != nil || done {
		return res, err
	}
	o.Progress.begin(StepPreflight, "")
	if err := boundedPreflight(ctx, m, d, o, res, say); err != nil {
		o.Progress.begin(StepAbandoned, "")
		return res, err
	}
	if o.DryRun {
		describePause(d, o)
		return res, nil
	}
	err := pause(ctx, m, d, o, res, say)
	if err != nil {
		o.Progress.begin(StepAbandoned, "")
	} else {
		o.Progress.begin(StepDone, "")
	}
	return res, err
}

// preflightLockTimeout bounds each lock the preflight waits for (the way
// back's publication, a materialized view's refresh, an unlogged table's
// truncation): a long transaction holding a table must be named, not wait
// forever before any fence.
const preflightLockTimeout = "10s"

// boundedPreflight is preflight with every lock wait bounded.
func boundedPreflight(ctx context.Context, m *config.Migration, d direction, o Options, res *Result, say func(string, ...any)) error {
	if o.DryRun {
		return preflight(ctx, m, d, o, res, say)
	}
	for _, c := range []*cluster.Conn{d.primary, d.replica} {
		if _, err := c.Exec(ctx, "SET lock_timeout = '"+preflightLockTimeout+"'"); err != nil {
			return c.Wrap("bound the preflight's lock waits", err)
		}
		defer c.Exec(context.WithoutCancel(ctx), "RESET lock_timeout")
	}
	err := preflight(ctx, m, d, o, res, say)
	if cluster.SQLState(err) == pgerrcode.LockNotAvailable {
		return fmt.Errorf("%w; the preflight waited %s for a lock a transaction holds there (see pg_locks and pg_stat_activity): end it and rerun, nothing was fenced", err, preflightLockTimeout)
	}
	return err
}

// preflight checks the state a switch can begin from and prepares, before
// any fence, everything that can be done early.
func preflight(ctx context.Context, m *config.Migration, d direction, o Options, res *Result, say func(string, ...any)) (err error) {
	r := cluster.Runner{DryRun: o.DryRun, Out: o.Out}
	sub, err := replication.Find(ctx, d.replica, d.current)
	if err != nil {
		return err
	}
	if sub == nil || !sub.Enabled {
		what := "does not exist"
		if sub != nil {
			what = "is disabled"
		}
		return fmt.Errorf("%s: subscription %q %s: the %s needs it streaming (pgmove status says where the migration stands)", d.replica.Side, d.current, what, d.name)
	}
	var workers int
	var notReady []string
	if err := d.replica.QueryRow(ctx, `SELECT count(*) FROM pg_catalog.pg_stat_subscription WHERE subid = $1 AND pid IS NOT NULL AND relid IS NULL`, sub.OID).Scan(&workers); err != nil {
		return d.replica.Wrap("read the subscription's workers", err)
	}
	if workers == 0 {
		return fmt.Errorf("%s: subscription %q has no apply worker running: see pgmove progress for why, fix it first", d.replica.Side, d.current)
	}
	rows, err := d.replica.Query(ctx, `SELECT sr.srrelid::regclass::text FROM pg_catalog.pg_subscription_rel sr WHERE sr.srsubid = $1 AND sr.srsubstate <> 'r' ORDER BY 1`, sub.OID)
	if err != nil {
		return d.replica.Wrap("read the subscription's tables", err)
	}
	if notReady, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
		return d.replica.Wrap("read the subscription's tables", err)
	}
	if len(notReady) > 0 {
		return fmt.Errorf("%s: %d table(s) of subscription %q are not replicating yet (%s): wait for the initial copy (pgmove progress --wait)", d.replica.Side, len(notReady), d.current, cluster.ListSome(notReady, 3))
	}
	lag, err := slotLag(ctx, d.primary, d.currentSlot)
	if err != nil {
		return err
	}
	if lag > o.MaxLag {
		return fmt.Errorf("%s: the lag of slot %q is %d bytes, over --max-lag %d: wait until the target keeps up (pgmove progress --wait --max-lag ...)", d.primary.Side, d.currentSlot, lag, o.MaxLag)
	}
	// Long write transactions hold the fence up: PAUSE waits for them.
	rows, err = d.primary.Query(ctx, `SELECT pid, usename, round(extract(epoch FROM now() - xact_start))::bigint FROM pg_catalog.pg_stat_activity
		WHERE datname = pg_catalog.current_database() AND backend_xid IS NOT NULL AND pid <> pg_catalog.pg_backend_pid() AND now() - xact_start > interval '5 seconds'`)
	if err != nil {
		return d.primary.Wrap("look for long write transactions", err)
	}
	for rows.Next() {
		var pid int32
		var user *string
		var secs int64
		if err := rows.Scan(&pid, &user, &secs); err != nil {
			rows.Close()
			return d.primary.Wrap("look for long write transactions", err)
		}
		u := "?"
		if user != nil {
			u = *user
		}
		res.Warnings = append(res.Warnings, fmt.Sprintf("%s: a write transaction of %s (pid %d) has been open %ds: the fence waits for it, or the switch is abandoned after --max-pause", d.primary.Side, u, pid, secs))
	}
	rows.Close()
	for _, w := range res.Warnings {
		slog.Warn(w)
	}
	if o.Fence == FencePgBouncer {
		for _, u := range o.Bouncers {
			b, err := ConnectBouncer(ctx, u)
			if err != nil {
				return err
			}
			b.Close()
		}
	}
	if o.BouncerINI != "" {
		if _, err := ReadRoute(o.BouncerINI, o.BouncerDB); err != nil {
			return err
		}
	}
	// The apply commits durably while the switch waits for it: the fence's
	// proof is the slot's confirmed flush position, which an asynchronous
	// commit holds back by up to a WAL writer cycle.
	var syncCommit string
	if err := d.replica.QueryRow(ctx, "SELECT subsynccommit FROM pg_catalog.pg_subscription WHERE oid = $1", sub.OID).Scan(&syncCommit); err != nil {
		return d.replica.Wrap("read the subscription's synchronous_commit", err)
	}
	if syncCommit != "on" {
		if err := alterSub(ctx, r, d.replica, "commit the apply synchronously during the switch", replication.AlterSubscriptionSetSQL(d.current, replication.Str("synchronous_commit", "on"))); err != nil {
			return err
		}
		// A preflight that fails from here on fenced nothing: the apply
		// goes back to committing as it did.
		defer func() {
			if err == nil || o.DryRun {
				return
			}
			uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			defer cancel()
			if uerr := alterSub(uctx, r, d.replica, "apply as before the preflight", replication.AlterSubscriptionSetSQL(d.current, replication.Str("synchronous_commit", syncCommit))); uerr != nil {
				slog.Warn(uerr.Error())
			}
		}()
	}
	tables, err := subscribedTables(ctx, d.replica, sub.OID)
	if err != nil {
		return err
	}
	if err := noDrift(ctx, d, tables); err != nil {
		return err
	}
	if err := prepareNext(ctx, r, m, d, tables); err != nil {
		return err
	}
	if !o.DryRun {
		if err := carryEarly(ctx, r, m, d, res, say); err != nil {
			return err
		}
	}
	// A first pass of the sequences, so the one inside the pause is small.
	if !o.DryRun {
		seq, err := sequence.Copy(ctx, r, d.primary, d.replica, 0)
		if err != nil {
			return err
		}
		res.Sequences = seq.Set
		if err := waitApplying(ctx, d.replica, sub.OID, 30*time.Second); err != nil {
			return err
		}
		if lag, err = slotLag(ctx, d.primary, d.currentSlot); err != nil {
			return err
		}
		if lag > o.MaxLag {
			return fmt.Errorf("%s: the lag of slot %q grew to %d bytes while the way back was prepared, over --max-lag %d: rerun", d.primary.Side, d.currentSlot, lag, o.MaxLag)
		}
	}
	say("preflight: %s streaming, lag %d bytes; the way back (publication %q and slot %q on the %s, subscription %q on the %s) is ready",
		d.current, lag, d.nextPub, d.nextSlot, d.replica.Side, d.next, d.primary.Side)
	return nil
}

// prepareNext makes the way back while the replica takes no writes yet: its
// publication and slot, and the primary's subscription to them, disabled.
// The slot exists before the switch, so nothing written after it is missed.
func prepareNext(ctx context.Context, r cluster.Runner, m *config.Migration, d direction, tables []*catalog.Table) error {
	if _, err := replication.EnsurePublication(ctx, r, d.replica, d.nextPub, tables); err != nil {
		return err
	}
	st, err := replication.ReadSlot(ctx, d.replica, d.nextSlot)
	if err != nil {
		return err
	}
	if !st.Exists {
		// A new slot waits for every transaction running on its server to
		// end: bounded, so a forgotten transaction on the replica is named
		// instead of hanging the switch.
		create := "SELECT pg_catalog.pg_create_logical_replication_slot(" + replication.QuoteLiteral(d.nextSlot) + ", 'pgoutput')"
		if err := r.Exec(ctx, d.replica, "create slot "+catalog.QuoteName(d.nextSlot)+" for the way back",
			"SET statement_timeout = '30s'; "+create+"; RESET statement_timeout", create); err != nil {
			if cluster.SQLState(err) == "57014" {
				return fmt.Errorf("%s: creating slot %q waited 30 s for the transactions running there to end: end the long one (pg_stat_activity, xact_start) and rerun", d.replica.Side, d.nextSlot)
			}
			return err
		}
	}
	next, err := replication.Find(ctx, d.primary, d.next)
	if err != nil {
		return err
	}
	if next != nil && next.Enabled {
		return fmt.Errorf("%s: subscription %q is enabled: the other way is replicating already; pgmove status says where the migration stands", d.primary.Side, d.next)
	}
	// Connected at creation (not enabled): the subscription learns its tables
	// from the publication then, ready at once since nothing is copied; a
	// subscription without them would skip every change.
	opts := []replication.Option{replication.Bool("enabled", false),
		replication.Bool("create_slot", false), replication.Bool("copy_data", false), replication.Str("slot_name", d.nextSlot)}
	// PostgreSQL 16+: changes the replica applied from the primary are not
	// sent back to it (the origin advance below skips them on older ones).
	if d.primary.VersionNum >= 160000 {
		opts = append(opts, replication.Str("origin", "none"))
	}
	secret, shown := backConninfo(d.replicaEP)
	if next == nil {
		sql := replication.CreateSubscriptionSQL(d.next, secret, []string{d.nextPub}, opts)
		shownSQL := replication.CreateSubscriptionSQL(d.next, shown, []string{d.nextPub}, opts)
		return r.Exec(ctx, d.primary, "create subscription "+catalog.QuoteName(d.next)+" for the way back, disabled", sql, shownSQL)
	}
	// An earlier switch left it, detached from its slot: point it at the new one.
	return r.Exec(ctx, d.primary, "point subscription "+catalog.QuoteName(d.next)+" at slot "+catalog.QuoteName(d.nextSlot),
		replication.AlterSubscriptionSetSQL(d.next, replication.Str("slot_name", d.nextSlot)))
}

// backConninfo is how the primary's server reaches the replica: pgmove's
// own endpoint for it, with the password libpq finds for pgmove.
func backConninfo(ep config.Endpoint) (secret, shown string) {
	ci := ep.Conninfo.ForServer()
	delete(ci, "application_name")
	if cfg, err := pgconn.ParseConfig(ep.ConnString()); err == nil && cfg.Password != "" {
		ci["password"] = cfg.Password
	}
	return ci.String(), ci.Redacted()
}

// pause fences the writers, waits for the replica to apply everything up to
// the fence, carries the sequences, switches the replication's direction
// and the traffic, and lifts the fence. Any failure before the switch
// lifts the fence with nothing switched.
func pause(ctx context.Context, m *config.Migration, d direction, o Options, res *Result, say func(string, ...any)) error {
	r := cluster.Runner{Out: o.Out}
	var bouncers []*Bouncer
	defer func() {
		for _, b := range bouncers {
			b.Close()
		}
	}()
	// Connect the consoles before the fence: the pause is for waiting, not dialling.
	for _, u := range o.Bouncers {
		b, err := ConnectBouncer(ctx, u)
		if err != nil {
			return err
		}
		bouncers = append(bouncers, b)
	}
	start := time.Now()
	deadline := start.Add(o.MaxPause)
	last := start
	o.Progress.fenced(start, o.MaxPause)
	o.Progress.begin("fence", fenceDetail(o))
	mark := func(name string) {
		now := time.Now()
		res.Steps = append(res.Steps, Step{Name: name, Took: now.Sub(last), MS: float64(now.Sub(last).Microseconds()) / 1000})
		last = now
	}
	// The roles the database fence takes LOGIN from: those that have it
	// now, journaled before the fence, so a rerun after a kill gives LOGIN
	// back to these and to no role that never had it.
	var held []string
	if o.Fence == FenceDatabase {
		var err error
		if held, err = loginRoles(ctx, d.primary, o.AppRoles); err != nil {
			return err
		}
	}
	journal := func(stage string) {
		if o.Journal != nil {
			_ = o.Journal.Record(d.name, state.Started, stage, map[string]string{"stage": stage, "fence": o.Fence,
				"pgbouncer": strings.Join(o.Bouncers, "\n"), "pgbouncer_db": o.BouncerDB, "roles": strings.Join(held, ","),
				"pgbouncer_ini": o.BouncerINI})
		}
	}
	journal("fencing")
	err := fence(ctx, d, o, bouncers, held, deadline)
	if err == nil {
		journal("fenced")
	}
	mark("fence")
	abort := func(reason error) error {
		o.Progress.begin(StepLift, "")
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		uerr := unfence(uctx, d, o, bouncers, held)
		o.Progress.lifted()
		// Back to the asynchronous apply the migration runs with.
		if err := alterSub(uctx, r, d.replica, "apply asynchronously again", replication.AlterSubscriptionSetSQL(d.current, replication.Str("synchronous_commit", "off"))); err != nil {
			slog.Warn(err.Error())
		}
		res.Aborted, res.Reason = true, reason.Error()
		res.PauseMS = float64(time.Since(start).Microseconds()) / 1000
		if uerr != nil {
			if o.Journal != nil {
				_ = o.Journal.Record(d.name, state.Failed, "abandoned; the fence could not be lifted: "+uerr.Error(), nil)
			}
			return fmt.Errorf("%s abandoned (%v), and the fence could not be lifted: %v; lift it by hand (RESUME on pgbouncer, or the roles' LOGIN)", d.name, reason, uerr)
		}
		if o.Journal != nil {
			_ = o.Journal.Record(d.name, state.Failed, "abandoned, fence lifted: "+reason.Error(), nil)
		}
		say("abandoned after %.0f ms, the fence lifted: the application writes to the %s again, nothing switched", res.PauseMS, d.primary.Side)
		return fmt.Errorf("%s abandoned, nothing switched: %w", d.name, reason)
	}
	if err != nil {
		return abort(err)
	}

	o.Progress.begin("catch-up", "")
	lsn, err := fencePoint(ctx, d.primary)
	if err != nil {
		return abort(err)
	}
	fenceLSN, _ := pglogrepl.ParseLSN(lsn)
	res.FenceLSN = lsn
	if err := waitConfirmed(ctx, d.primary, d.currentSlot, fenceLSN, deadline, o.Progress); err != nil {
		return abort(err)
	}
	mark("catch-up")
	o.Progress.begin("sequences", "")
	seq, err := sequence.Copy(ctx, r, d.primary, d.replica, 0)
	if err != nil {
		return abort(err)
	}
	res.Sequences += seq.Set
	mark("sequences")
	if err := carryInPause(ctx, r, m, d, res); err != nil {
		return abort(err)
	}
	if res.LargeObjects > 0 || res.Unlogged > 0 {
		mark("large objects, unlogged tables")
	}
	if time.Now().After(deadline) {
		return abort(fmt.Errorf("the pause passed --max-pause %s before the switch", o.MaxPause))
	}

	// The switch: from here on the replica is the primary.
	o.Progress.begin("switch replication", "")
	sub, err := replication.Find(ctx, d.replica, d.current)
	if err != nil || sub == nil {
		return abort(fmt.Errorf("%s: subscription %q vanished: %v", d.replica.Side, d.current, err))
	}
	if err := alterSub(ctx, r, d.replica, "stop subscription "+catalog.QuoteName(d.current), replication.AlterSubscriptionSQL(d.current, "DISABLE")); err != nil {
		return abort(err)
	}
	// A disabled subscription's worker notices at its next wakeup (up to a
	// second on 13); it has applied everything up to the fence and is idle,
	// so end it now. Without the privilege, wait for it.
	if _, err := d.replica.Exec(ctx, `SELECT pg_catalog.pg_terminate_backend(pid) FROM pg_catalog.pg_stat_subscription WHERE subid = $1 AND pid IS NOT NULL`, sub.OID); err != nil {
		slog.Debug(d.replica.Wrap("end the stopped subscription's worker", err).Error())
	}
	if err := waitWorkerGone(ctx, d.replica, sub.OID, deadline); err != nil {
		_ = r.Exec(context.WithoutCancel(ctx), d.replica, "restart subscription "+catalog.QuoteName(d.current), replication.AlterSubscriptionSQL(d.current, "ENABLE"))
		return abort(err)
	}
	var startAt string
	// Past every commit the replica made so far (the apply's asynchronous
	// ones too, inserted but maybe not yet written): none of them goes back.
	if err := d.replica.QueryRow(ctx, "SELECT pg_catalog.pg_current_wal_insert_lsn()::text").Scan(&startAt); err != nil {
		_ = r.Exec(context.WithoutCancel(ctx), d.replica, "restart subscription "+catalog.QuoteName(d.current), replication.AlterSubscriptionSQL(d.current, "ENABLE"))
		return abort(d.replica.Wrap("read the WAL position the way back starts at", err))
	}
	next, err := replication.Find(ctx, d.primary, d.next)
	if err == nil && next == nil {
		err = fmt.Errorf("%s: subscription %q for the way back is missing", d.primary.Side, d.next)
	}
	if err == nil {
		advance := fmt.Sprintf("SELECT pg_catalog.pg_replication_origin_advance(%s, %s)", replication.QuoteLiteral(fmt.Sprintf("pg_%d", next.OID)), replication.QuoteLiteral(startAt))
		err = r.Exec(ctx, d.primary, "start the way back at the replica's WAL position "+startAt, advance)
	}
	if err == nil {
		err = r.Exec(ctx, d.primary, "enable subscription "+catalog.QuoteName(d.next), replication.AlterSubscriptionSQL(d.next, "ENABLE"))
	}
	if err != nil {
		_ = r.Exec(context.WithoutCancel(ctx), d.replica, "restart subscription "+catalog.QuoteName(d.current), replication.AlterSubscriptionSQL(d.current, "ENABLE"))
		return abort(err)
	}
	journal("switched")
	mark("switch replication")
	o.Progress.begin("route traffic", routeDetail(o))
	if err := liftOnReplica(ctx, d, o.Journal, say); err != nil {
		return fmt.Errorf("%s: replication switched to %s, but %w; give them LOGIN there by hand (a rerun of pgmove %s finishes it)", d.name, d.replica.Side, err, d.name)
	}
	if err := routeTraffic(ctx, m, d, o, bouncers); err != nil {
		// Replication already runs the other way: finishing is the only
		// consistent end. Say what is left to do.
		return fmt.Errorf("%s: replication switched to %s, but pointing the traffic failed: %w; point it by hand, then RESUME (a rerun of pgmove %s finishes it)", d.name, d.replica.Side, err, d.name)
	}
	mark("route traffic")
	o.Progress.begin("resume", "")
	if err := resume(ctx, d, o, bouncers, held, true); err != nil {
		return fmt.Errorf("%s: switched, but lifting the fence failed: %w; a rerun of pgmove %s finishes it", d.name, err, d.name)
	}
	mark("resume")
	res.PauseMS = float64(time.Since(start).Microseconds()) / 1000
	o.Progress.lifted()
	if o.Journal != nil {
		_ = o.Journal.Record(d.name, state.Done, fmt.Sprintf("paused %.0f ms", res.PauseMS), map[string]string{"pause_ms": fmt.Sprintf("%.1f", res.PauseMS), "fence_lsn": lsn,
			"fenced_roles": strings.Join(held, ",")})
	}
	var parts []string
	for _, s := range res.Steps {
		parts = append(parts, fmt.Sprintf("%s %.0f ms", s.Name, s.MS))
	}
	say("done: the application was paused %.0f ms (%s); it now writes to the %s", res.PauseMS, strings.Join(parts, ", "), d.replica.Side)
	o.Progress.begin(StepAftercare, "")
	aftercare(ctx, r, d, say)
	return nil
}

// subscribedTables are the tables the current subscription replicates, by
// their names on the replica.
func subscribedTables(ctx context.Context, c *cluster.Conn, subOID uint32) ([]*catalog.Table, error) {
	rows, err := c.Query(ctx, `SELECT n.nspname, c.relname FROM pg_catalog.pg_subscription_rel sr
		JOIN pg_catalog.pg_class c ON c.oid = sr.srrelid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
		WHERE sr.srsubid = $1 ORDER BY 1, 2`, subOID)
	if err != nil {
		return nil, c.Wrap("read the subscription's tables", err)
	}
	tables, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*catalog.Table, error) {
		t := &catalog.Table{}
		return t, row.Scan(&t.Schema, &t.Name)
	})
	return tables, c.Wrap("read the subscription's tables", err)
}

// noDrift refuses a switch while the two schemas differ in a way that
// stops an apply: the forward one, which must reach the fence, or the
// reverse one, which carries every write after the switch (a column only
// the target has, nullable or not, stops it on the source). DDL is not
// replicated; the fix is the DBA's, before the switch.
func noDrift(ctx context.Context, d direction, tables []*catalog.Table) error {
	replicates := func(column string) bool {
		for _, t := range tables {
			if strings.HasPrefix(column, t.String()+".") {
				return true
			}
		}
		return false
	}
	var stops []string
	for _, way := range []struct{ from, to *cluster.Conn }{{d.primary, d.replica}, {d.replica, d.primary}} {
		ds, err := schema.Diff(ctx, way.from, way.to)
		if err != nil {
			return err
		}
		for _, df := range ds {
			if df.Warning || df.ColumnOrder || df.Stops == "" {
				continue
			}
			if df.Kind == "column" {
				if !replicates(df.Object) {
					continue // a table neither way replicates
				}
			}
			msg := fmt.Sprintf("%s %s (replicating %s to %s: %s)", df.Kind, df.Object, way.from.Side, way.to.Side, df.Stops)
			if df.Fix != "" {
				msg += "; fix on the " + string(way.to.Side) + ": " + strings.Join(strings.Fields(df.Fix), " ")
			}
			stops = append(stops, msg)
		}
	}
	if len(stops) > 0 {
		return fmt.Errorf("%s: the schemas differ where replication stops: %s; make them match (pgmove compare --schema shows both), then rerun", d.name, cluster.ListSome(stops, 3))
	}
	return nil
}

// carryEarly carries, before any fence, what replication does not: large
// objects and unlogged tables (again inside the pause, when there are any,
// for what changed since) and materialized views (refreshed now only: their
// contents are derived, and a refresh inside the pause would hold it). A
// rollback carries large objects back, not unlogged tables: pgmove empties
// only tables it loaded itself, and it loaded none on the source.
func carryEarly(ctx context.Context, r cluster.Runner, m *config.Migration, d direction, res *Result, say func(string, ...any)) error {
	start := time.Now()
	lo, err := carry.LargeObjects(ctx, r, d.primary, d.replica)
	if err != nil {
		return err
	}
	var parts []string
	if n := lo.Created + lo.Replaced + lo.Deleted + lo.Unchanged; n > 0 {
		parts = append(parts, fmt.Sprintf("%d large object(s) (%d created, %d rewritten, %d deleted)", n, lo.Created, lo.Replaced, lo.Deleted))
	}
	if d.name == "switchover" {
		ul, err := carry.UnloggedTables(ctx, r, d.primary, d.replica, m, 1)
		if err != nil {
			return err
		}
		if ul.Tables > 0 {
			parts = append(parts, fmt.Sprintf("%d unlogged table(s) (%d rows)", ul.Tables, ul.Rows))
		}
	} else if names, err := unloggedTables(ctx, d.primary, m); err != nil {
		return err
	} else if len(names) > 0 {
		w := fmt.Sprintf("%s: unlogged table(s) %s are not carried back: replication skips them, and pgmove empties only tables it loaded; copy them by hand if the application needs their rows", d.primary.Side, cluster.ListSome(names, 5))
		res.Warnings = append(res.Warnings, w)
		slog.Warn(w)
	}
	mv, err := carry.RefreshMaterializedViews(ctx, r, d.primary, d.replica, m)
	if err != nil {
		return err
	}
	res.Matviews = mv.Refreshed
	if mv.Refreshed > 0 {
		parts = append(parts, fmt.Sprintf("%d materialized view(s) refreshed", mv.Refreshed))
	}
	if len(parts) > 0 {
		say("preflight: carried early, in %s: %s", time.Since(start).Round(time.Millisecond), strings.Join(parts, ", "))
	}
	return nil
}

// unloggedTables names the selected unlogged tables of c.
func unloggedTables(ctx context.Context, c *cluster.Conn, m *config.Migration) ([]string, error) {
	snap, err := catalog.TablesWithoutSizes(ctx, c)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, t := range snap.Tables {
		if t.Kind == 'r' && t.Persistence == 'u' && config.Selected(m.Include, m.Exclude, t.Schema, t.Name) {
			out = append(out, t.String())
		}
	}
	return out, nil
}

// carryInPause carries again, writes fenced, the large objects and
// unlogged tables that exist (each pass moves only what differs for large
// objects; unlogged tables are copied whole).
func carryInPause(ctx context.Context, r cluster.Runner, m *config.Migration, d direction, res *Result) error {
	var n int
	if err := d.primary.QueryRow(ctx, "SELECT count(*) FROM pg_catalog.pg_largeobject_metadata").Scan(&n); err != nil {
		return d.primary.Wrap("count large objects", err)
	}
	if n > 0 {
		lo, err := carry.LargeObjects(ctx, r, d.primary, d.replica)
		if err != nil {
			return err
		}
		res.LargeObjects = lo.Created + lo.Replaced + lo.Deleted
	}
	if d.name == "switchover" {
		ul, err := carry.UnloggedTables(ctx, r, d.primary, d.replica, m, 2)
		if err != nil {
			return err
		}
		res.Unlogged = ul.Tables
	}
	return nil
}

// alterSub runs an ALTER SUBSCRIPTION that waits at most 5 s for its lock:
// an apply worker stuck inside a transaction holds the subscription, and a
// switch must not hang behind it.
func alterSub(ctx context.Context, r cluster.Runner, c *cluster.Conn, what, sql string) error {
	if r.DryRun {
		return r.Exec(ctx, c, what, sql)
	}
	// In one implicit transaction, SET LOCAL: the session's own lock_timeout
	// (the preflight's bound) is back after it, whether the ALTER fails or not.
	return r.Exec(ctx, c, what, "SET LOCAL lock_timeout = '5s'; "+sql, sql)
}

// aftercare restores the old subscription's asynchronous apply, detaches it
// from its slot and drops that slot, which would otherwise keep WAL on the
// old primary for ever; the next switch makes a new one.
func aftercare(ctx context.Context, r cluster.Runner, d direction, say func(string, ...any)) {
	steps := []struct {
		c         *cluster.Conn
		what, sql string
	}{
		{d.replica, "apply asynchronously again", replication.AlterSubscriptionSetSQL(d.current, replication.Str("synchronous_commit", "off"))},
		{d.replica, "detach subscription " + catalog.QuoteName(d.current) + " from its slot", replication.DetachSlotSQL(d.current)},
	}
	for _, s := range steps {
		if err := r.Exec(ctx, s.c, s.what, s.sql); err != nil {
			say("aftercare: %v", err)
			return
		}
	}
	if _, err := replication.DropSlot(ctx, r, d.primary, d.currentSlot); err != nil {
		say("aftercare: %v; drop it by hand: %s", err, replication.DropSlotSQL(d.currentSlot))
	}
}

// fence stops the application's writes on the primary; --fence database
// takes LOGIN from roles (those of the app roles that have it).
func fence(ctx context.Context, d direction, o Options, bouncers []*Bouncer, roles []string, deadline time.Time) error {
	switch o.Fence {
	case FencePgBouncer:
		fctx, cancel := context.WithDeadline(ctx, deadline)
		defer cancel()
		for _, b := range bouncers {
			// PAUSE returns once every server connection of the database
			// is released: running transactions end first.
			if err := b.Command(fctx, "PAUSE "+bouncerIdent(o.BouncerDB)); err != nil {
				if fctx.Err() != nil {
					err = fmt.Errorf("pgbouncer %s: PAUSE did not complete within --max-pause %s (a long transaction?)", b.URL, o.MaxPause)
				}
				return err
			}
		}
	case FenceDatabase:
		// default_transaction_read_only is no fence: any session may SET
		// transaction_read_only = off. A role that cannot log in, whose
		// sessions are terminated, writes nothing.
		for _, role := range roles {
			if _, err := d.primary.Exec(ctx, "ALTER ROLE "+pgx.Identifier{role}.Sanitize()+" NOLOGIN"); err != nil {
				return d.primary.Wrap("fence role "+role, err)
			}
		}
		if _, err := d.primary.Exec(ctx, `SELECT pg_catalog.pg_terminate_backend(pid) FROM pg_catalog.pg_stat_activity
			WHERE usename = ANY($1) AND pid <> pg_catalog.pg_backend_pid()`, o.AppRoles); err != nil {
			return d.primary.Wrap("terminate the application's sessions", err)
		}
		// Wait for them to be gone: a terminated backend still commits nothing.
		for {
			var n int
			if err := d.primary.QueryRow(ctx, `SELECT count(*) FROM pg_catalog.pg_stat_activity WHERE usename = ANY($1)`, o.AppRoles).Scan(&n); err != nil {
				return d.primary.Wrap("wait for the application's sessions", err)
			}
			if n == 0 {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s: %d session(s) of %s still there after --max-pause", d.primary.Side, n, strings.Join(o.AppRoles, ", "))
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	return nil
}

// loginRoles are those of roles that may log in on c now: the ones the
// database fence takes LOGIN from.
func loginRoles(ctx context.Context, c *cluster.Conn, roles []string) ([]string, error) {
	var out []string
	for _, role := range roles {
		var canLogin bool
		err := c.QueryRow(ctx, "SELECT rolcanlogin FROM pg_catalog.pg_roles WHERE rolname = $1", role).Scan(&canLogin)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, fmt.Errorf("%s: --app-role %q does not exist there: name the application's roles", c.Side, role)
		}
		if err != nil {
			return nil, c.Wrap("read role "+role, err)
		}
		if canLogin {
			out = append(out, role)
		}
	}
	return out, nil
}

// liftOnReplica gives LOGIN back, on the replica that becomes the primary,
// to the roles the switch the other way fenced there (a rollback lifts the
// database fence the switchover left on the source, and a second
// switchover the one the rollback left on the target): the journal's last
// completed switch the other way names them.
func liftOnReplica(ctx context.Context, d direction, j Journal, say func(string, ...any)) error {
	if j == nil {
		return nil
	}
	other := "rollback"
	if d.name == "rollback" {
		other = "switchover"
	}
	last, err := j.Last(other)
	if err != nil || last == nil || last.Status != state.Done || last.Data["fenced_roles"] == "" {
		return err
	}
	var lifted []string
	for _, role := range strings.Split(last.Data["fenced_roles"], ",") {
		if _, err := d.replica.Exec(ctx, "ALTER ROLE "+pgx.Identifier{role}.Sanitize()+" LOGIN"); err != nil {
			return d.replica.Wrap("lift the fence the "+other+" left on role "+role, err)
		}
		lifted = append(lifted, role)
	}
	say("the fence the %s left on the %s lifted: %s may log in there again", other, d.replica.Side, strings.Join(lifted, ", "))
	return nil
}

// unfence lifts the fence on the primary after an abandoned switch.
func unfence(ctx context.Context, d direction, o Options, bouncers []*Bouncer, held []string) error {
	return resume(ctx, d, o, bouncers, held, false)
}

// resume lifts the fence. After a switch the database fence stays on the
// old primary (it must take no writes now: it is the replica), and pgbouncer
// resumes towards the new one.
func resume(ctx context.Context, d direction, o Options, bouncers []*Bouncer, held []string, switched bool) error {
	var errs []error
	switch o.Fence {
	case FencePgBouncer:
		for _, b := range bouncers {
			if err := b.Command(ctx, "RESUME "+bouncerIdent(o.BouncerDB)); err != nil && !alreadyResumed(err) {
				errs = append(errs, err)
			}
		}
	case FenceDatabase:
		if !switched {
			for _, role := range held {
				if _, err := d.primary.Exec(ctx, "ALTER ROLE "+pgx.Identifier{role}.Sanitize()+" LOGIN"); err != nil {
					errs = append(errs, d.primary.Wrap("lift the fence of role "+role, err))
				}
			}
		}
	}
	return errors.Join(errs...)
}

// alreadyResumed: RESUME of a database that is not paused is an error to
// pgbouncer, and the state wanted.
func alreadyResumed(err error) bool { return strings.Contains(err.Error(), "not paused") }

// routeTraffic points the application at the new primary: the pgbouncer
// entry and RELOAD, and the user's hook.
func routeTraffic(ctx context.Context, m *config.Migration, d direction, o Options, bouncers []*Bouncer) error {
	if o.BouncerINI != "" {
		if err := WriteRoute(o.BouncerINI, o.BouncerDB, d.route); err != nil {
			return err
		}
		for _, b := range bouncers {
			if err := b.Command(ctx, "RELOAD"); err != nil {
				return err
			}
		}
	}
	if o.SwitchHook != "" {
		cmd := exec.CommandContext(ctx, "/bin/sh", "-c", o.SwitchHook)
		// The migration's own names of the target's addresses too, as the
		// seed's config spells them (the hook of a rollback points back at
		// the source: PGMOVE_HOST/PORT/DBNAME, src_list).
		cmd.Env = append(os.Environ(), "PGMOVE_DIRECTION="+d.name, "PGMOVE_HOST="+d.route.Host, "PGMOVE_PORT="+d.route.Port, "PGMOVE_DBNAME="+d.route.DB,
			"dst_dns="+m.DstDNS, "dst_vip="+m.DstVIP, "dst_list="+strings.Join(m.DstList, " "), "src_list="+strings.Join(m.SrcList, " "))
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("--switch-hook: %v: %s", err, cluster.OneLine(string(out)))
		}
	}
	return nil
}

// slotLag is how far the slot's confirmed position is behind the server's WAL.
func slotLag(ctx context.Context, c *cluster.Conn, slot string) (int64, error) {
	var lag *int64
	err := c.QueryRow(ctx, `SELECT pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), confirmed_flush_lsn)::bigint
		FROM pg_catalog.pg_replication_slots WHERE slot_name = $1`, slot).Scan(&lag)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, fmt.Errorf("%s: replication slot %q does not exist: the subscription cannot be streaming", c.Side, slot)
	}
	if err != nil {
		return 0, c.Wrap("read the slot's lag", err)
	}
	if lag == nil {
		return 0, fmt.Errorf("%s: replication slot %q has no confirmed position yet", c.Side, slot)
	}
	return *lag, nil
}

// fencePoint is the WAL position the replica must confirm once the writers
// are fenced: past the commit record of every transaction the application
// was told committed. With synchronous_commit = off (common, and the
// primary's own setting decides) a commit is acknowledged as soon as its
// record is inserted, before it is written: pg_current_wal_lsn(), the write
// position, may then trail acknowledged commits, and a replica confirming
// it would not have them. So the WAL is flushed first, by a transactional
// logical message committed synchronously (it touches no table and pgoutput
// does not send it), and the position read after it covers every earlier
// commit; the walsender sends only flushed WAL, so this also spares the
// wait for the WAL writer (wal_writer_delay) inside the pause. Without the
// privilege for the message, the insert position is the fence: it covers
// every inserted commit too, and the WAL writer flushes it.
func fencePoint(ctx context.Context, c *cluster.Conn) (string, error) {
	var lsn string
	_, err := c.Exec(ctx, "BEGIN; SET LOCAL synchronous_commit = on; SELECT pg_catalog.pg_logical_emit_message(true, 'pgmove', 'fence'); COMMIT")
	if err == nil {
		err = c.QueryRow(ctx, "SELECT pg_catalog.pg_current_wal_lsn()::text").Scan(&lsn)
		return lsn, c.Wrap("read the fence LSN", err)
	}
	_, _ = c.Exec(ctx, "ROLLBACK")
	slog.Debug(c.Wrap("flush the WAL at the fence", err).Error())
	err = c.QueryRow(ctx, "SELECT pg_catalog.pg_current_wal_insert_lsn()::text").Scan(&lsn)
	return lsn, c.Wrap("read the fence LSN", err)
}

// waitConfirmed waits until the slot's subscriber confirmed it flushed
// everything up to lsn: the proof the replica applied every commit before
// the fence (the apply commits synchronously during the switch).
func waitConfirmed(ctx context.Context, c *cluster.Conn, slot string, lsn pglogrepl.LSN, deadline time.Time, p *Progress) error {
	for {
		st, err := replication.ReadSlot(ctx, c, slot)
		if err != nil {
			return err
		}
		if !st.Exists {
			return fmt.Errorf("%s: replication slot %q is gone", c.Side, slot)
		}
		p.lag(int64(lsn) - int64(st.ConfirmedFlush))
		if st.ConfirmedFlush >= lsn {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the replica had not applied up to the fence LSN %s within --max-pause (confirmed %s)", lsn, st.ConfirmedFlush)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// waitApplying waits for the subscription's apply worker (it restarts after
// an option change).
func waitApplying(ctx context.Context, c *cluster.Conn, subOID uint32, limit time.Duration) error {
	end := time.Now().Add(limit)
	for {
		var n int
		if err := c.QueryRow(ctx, `SELECT count(*) FROM pg_catalog.pg_stat_subscription WHERE subid = $1 AND pid IS NOT NULL AND relid IS NULL`, subOID).Scan(&n); err != nil {
			return c.Wrap("read the subscription's workers", err)
		}
		if n > 0 {
			return nil
		}
		if time.Now().After(end) {
			return fmt.Errorf("%s: the subscription's apply worker did not come back within %s after its restart", c.Side, limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitWorkerGone waits for a disabled subscription's apply worker to exit:
// until then it may still commit.
func waitWorkerGone(ctx context.Context, c *cluster.Conn, subOID uint32, deadline time.Time) error {
	for {
		var n int
		if err := c.QueryRow(ctx, `SELECT count(*) FROM pg_catalog.pg_stat_subscription WHERE subid = $1 AND pid IS NOT NULL`, subOID).Scan(&n); err != nil {
			return c.Wrap("read the subscription's workers", err)
		}
		if n == 0 {
			return nil
		}
		if time.Now().After(deadline.Add(time.Second)) {
			return fmt.Errorf("%s: the apply worker of the stopped subscription did not exit", c.Side)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// describePause prints, for --dry-run, what the pause would do.
func describePause(d direction, o Options) {
	w := o.Out
	fmt.Fprintf(w, "-- the pause (at most %s):\n", o.MaxPause)
	switch o.Fence {
	case FencePgBouncer:
		for _, u := range o.Bouncers {
			fmt.Fprintf(w, "-- pgbouncer %s: PAUSE %s;\n", config.Redact(u), bouncerIdent(o.BouncerDB))
		}
	case FenceDatabase:
		for _, role := range o.AppRoles {
			fmt.Fprintf(w, "-- %s: ALTER ROLE %s NOLOGIN;\n", d.primary.Side, pgx.Identifier{role}.Sanitize())
		}
		var lits []string
		for _, role := range o.AppRoles {
			lits = append(lits, replication.QuoteLiteral(role))
		}
		fmt.Fprintf(w, "-- %s: SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename IN (%s);\n", d.primary.Side, strings.Join(lits, ", "))
	default:
		fmt.Fprintln(w, "-- no fence: the application's writes must have stopped")
	}
	fmt.Fprintf(w, "-- %s: BEGIN; SET LOCAL synchronous_commit = on; SELECT pg_logical_emit_message(true, 'pgmove', 'fence'); COMMIT;\n", d.primary.Side)
	fmt.Fprintf(w, "-- %s: SELECT pg_current_wal_lsn();  -- the fence LSN, past every acknowledged commit\n", d.primary.Side)
	fmt.Fprintf(w, "-- wait until slot %s confirms the fence LSN\n", d.currentSlot)
	fmt.Fprintf(w, "-- %s -> %s: sequences (setval, never backwards)\n", d.primary.Side, d.replica.Side)
	fmt.Fprintf(w, "-- %s -> %s: large objects that differ, when there are any", d.primary.Side, d.replica.Side)
	if d.name == "switchover" {
		fmt.Fprint(w, "; unlogged tables copied whole, when there are any")
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "-- %s:\n%s;\n", d.replica.Side, replication.AlterSubscriptionSQL(d.current, "DISABLE"))
	fmt.Fprintf(w, "-- %s: SELECT pg_replication_origin_advance('pg_<oid of %s>', <%s's pg_current_wal_insert_lsn()>);\n%s;\n", d.primary.Side, d.next, d.replica.Side, replication.AlterSubscriptionSQL(d.next, "ENABLE"))
	if o.Fence == FenceDatabase {
		fmt.Fprintf(w, "-- %s: ALTER ROLE ... LOGIN for the roles a database fence the other way left there (from the journal)\n", d.replica.Side)
	}
	if o.BouncerINI != "" {
		fmt.Fprintf(w, "-- %s: entry %s = %s, then RELOAD\n", o.BouncerINI, o.BouncerDB, d.route)
	}
	if o.SwitchHook != "" {
		fmt.Fprintf(w, "-- run --switch-hook: %s\n", o.SwitchHook)
	}
	if o.Fence == FencePgBouncer {
		fmt.Fprintf(w, "-- pgbouncer: RESUME %s;\n", bouncerIdent(o.BouncerDB))
	}
}

// interrupted is the journal's last stage of a switch a killed pgmove left
// inside its pause ("fencing", "fenced" or "switched"), or "".
func interrupted(j Journal, name string) (*state.Event, error) {
	if j == nil {
		return nil, nil
	}
	last, err := j.Last(name)
	if err != nil || last == nil || last.Status != state.Started {
		return nil, err
	}
	switch last.Data["stage"] {
	case "fencing", "fenced", "switched":
		return last, nil
	}
	return nil, nil
}

// describeInterrupted prints, for --dry-run, what the real run does first
// when a killed pgmove left a switch inside its pause: it finishes or undoes
// that, and nothing else.
func describeInterrupted(d direction, o Options, say func(string, ...any)) (bool, error) {
	last, err := interrupted(o.Journal, d.name)
	if err != nil || last == nil {
		return false, err
	}
	w := o.Out
	fence, db := last.Data["fence"], last.Data["pgbouncer_db"]
	var bouncers []string
	if s := last.Data["pgbouncer"]; s != "" {
		bouncers = strings.Split(s, "\n")
	}
	if last.Data["stage"] == "switched" {
		say("an interrupted %s had switched the replication (journal stage %q): the run finishes it, and does nothing else", d.name, last.Data["stage"])
		if ini := last.Data["pgbouncer_ini"]; ini != "" {
			fmt.Fprintf(w, "-- %s: entry %s = %s, then RELOAD\n", ini, db, d.route)
		}
		if o.SwitchHook != "" {
			fmt.Fprintf(w, "-- run --switch-hook: %s\n", o.SwitchHook)
		}
		if fence == FencePgBouncer {
			for _, u := range bouncers {
				fmt.Fprintf(w, "-- pgbouncer %s: RESUME %s;\n", config.Redact(u), bouncerIdent(db))
			}
		}
		fmt.Fprintf(w, "-- %s:\n%s;\n%s;\n", d.replica.Side, replication.AlterSubscriptionSetSQL(d.current, replication.Str("synchronous_commit", "off")), replication.DetachSlotSQL(d.current))
		fmt.Fprintf(w, "-- %s:\n%s;\n", d.primary.Side, replication.DropSlotSQL(d.currentSlot))
		return true, nil
	}
	say("an interrupted %s held the fence before switching (journal stage %q): the run lifts it and switches nothing; run it again after that to switch", d.name, last.Data["stage"])
	switch fence {
	case FencePgBouncer:
		for _, u := range bouncers {
			fmt.Fprintf(w, "-- pgbouncer %s: RESUME %s;\n", config.Redact(u), bouncerIdent(db))
		}
	case FenceDatabase:
		if roles := last.Data["roles"]; roles != "" {
			for _, role := range strings.Split(roles, ",") {
				fmt.Fprintf(w, "-- %s: ALTER ROLE %s LOGIN;\n", d.primary.Side, pgx.Identifier{role}.Sanitize())
			}
		}
	}
	return true, nil
}

// recoverInterrupted finishes or undoes a switch a killed pgmove left
// inside its pause, from the journal: a fence held before the switch is
// lifted; a switch made is finished (traffic pointed, fence lifted).
func recoverInterrupted(ctx context.Context, m *config.Migration, d direction, o Options, res *Result, say func(string, ...any)) (bool, error) {
	if o.Journal == nil {
		return false, nil
	}
	last, err := o.Journal.Last(d.name)
	if err != nil || last == nil || last.Status != state.Started {
		return false, err
	}
	stage := last.Data["stage"]
	if stage != "fencing" && stage != "fenced" && stage != "switched" {
		return false, nil
	}
	// The fence and routing the interrupted run used; its hook is this
	// run's (the same command line, rerun).
	was := Options{Fence: last.Data["fence"], BouncerDB: last.Data["pgbouncer_db"], BouncerINI: last.Data["pgbouncer_ini"], SwitchHook: o.SwitchHook, Out: o.Out}
	if s := last.Data["pgbouncer"]; s != "" {
		was.Bouncers = strings.Split(s, "\n")
	}
	var roles []string
	if s := last.Data["roles"]; s != "" {
		roles = strings.Split(s, ",")
	}
	var bouncers []*Bouncer
	defer func() {
		for _, b := range bouncers {
			b.Close()
		}
	}()
	for _, u := range was.Bouncers {
		b, err := ConnectBouncer(ctx, u)
		if err != nil {
			return true, fmt.Errorf("an interrupted %s left a fence: %w", d.name, err)
		}
		bouncers = append(bouncers, b)
	}
	if stage == "switched" {
		if err := liftOnReplica(ctx, d, o.Journal, say); err != nil {
			return true, err
		}
		if err := routeTraffic(ctx, m, d, was, bouncers); err != nil {
			return true, err
		}
		if err := resume(ctx, d, was, bouncers, roles, true); err != nil {
			return true, err
		}
		res.Recovered = "an interrupted " + d.name + " had switched the replication: finished it (traffic pointed at the " + string(d.replica.Side) + ", fence lifted)"
		_ = o.Journal.Record(d.name, state.Done, res.Recovered, map[string]string{"fenced_roles": strings.Join(roles, ",")})
		say("%s", res.Recovered)
		aftercare(ctx, cluster.Runner{Out: o.Out}, d, say)
		return true, nil
	}
	if err := resume(ctx, d, was, bouncers, roles, false); err != nil {
		return true, err
	}
	// The apply may still commit synchronously: harmless, restored next time.
	res.Recovered = "an interrupted " + d.name + " held the fence before switching: lifted it, nothing was switched; the application writes to the " + string(d.primary.Side)
	_ = o.Journal.Record(d.name, state.Failed, res.Recovered, nil)
	say("%s; rerun pgmove %s to switch", res.Recovered, d.name)
	return true, nil
}

// LiftInterrupted lifts the fence a killed switchover or rollback holds
// (its journal's last stage fencing or fenced), as their rerun does, and
// says what it did ("" when no fence is held). A switch that was made
// (stage switched) is not undone: it returns an error saying to rerun that
// command first. pgmove abort calls it before dropping anything.
func LiftInterrupted(ctx context.Context, m *config.Migration, src, dst *cluster.Conn, o Options) (string, error) {
	if o.Journal == nil {
		return "", nil
	}
	for _, name := range []string{"switchover", "rollback"} {
		last, err := o.Journal.Last(name)
		if err != nil {
			return "", err
		}
		if last == nil || last.Status != state.Started {
			continue
		}
		d := forward(m, src, dst)
		if name == "rollback" {
			d = backward(m, src, dst)
		}
		switch stage := last.Data["stage"]; stage {
		case "switched":
			return "", fmt.Errorf("an interrupted %s switched the replication but may not have pointed the traffic: rerun pgmove %s to finish it first", name, name)
		case "fencing", "fenced":
			if last.Data["fence"] == FenceDatabase && d.primary == nil {
				side := "source"
				if name == "rollback" {
					side = "target"
				}
				return "", fmt.Errorf("%s: unreachable, so the fence of the interrupted %s (roles %s without LOGIN) stays: when it is back, run pgmove abort again, or there: %s",
					side, name, last.Data["roles"], loginSQL(last.Data["roles"]))
			}
			res := &Result{}
			say := func(string, ...any) {} // the caller says what was done
			if _, err := recoverInterrupted(ctx, m, d, o, res, say); err != nil {
				return "", err
			}
			return res.Recovered, nil
		}
	}
	return "", nil
}

// loginSQL gives LOGIN back to a comma-separated list of roles.
func loginSQL(roles string) string {
	var out []string
	for _, r := range strings.Split(roles, ",") {
		if r != "" {
			out = append(out, "ALTER ROLE "+pgx.Identifier{r}.Sanitize()+" LOGIN;")
		}
	}
	return strings.Join(out, " ")
}

// fenceDetail says how the fence stops the writes, for the progress bar.
func fenceDetail(o Options) string {
	switch o.Fence {
	case FencePgBouncer:
		return fmt.Sprintf("PAUSE on %d pgbouncer(s)", len(o.Bouncers))
	case FenceDatabase:
		return fmt.Sprintf("LOGIN taken from %d role(s)", len(o.AppRoles))
	}
	return "none: the application stopped writing"
}

// routeDetail says what the traffic step runs, for the progress bar.
func routeDetail(o Options) string {
	var parts []string
	if o.BouncerINI != "" {
		parts = append(parts, "pgbouncer entry "+o.BouncerDB+" repointed")
	}
	if o.SwitchHook != "" {
		parts = append(parts, "--switch-hook running")
	}
	return strings.Join(parts, ", ")
}
