package replication

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgmove/pgmove/internal/catalog"
	"github.com/pgmove/pgmove/internal/cluster"
	"github.com/pgmove/pgmove/internal/config"
)

// SubConninfo is the connection string the target server uses to reach the
// source. When libpq's sources give pgmove a password for the replication
// user (.pgpass, PGPASSWORD, a service file), it is passed along so the
// target server can log in; shown is the same string with it masked, for
// every message and log. Publisher-side timeouts are disabled for the
// subscription's sessions so a long initial COPY is not killed.
func SubConninfo(m *config.Migration) (secret, shown string) {
	ci := m.SubConn.ForServer()
	if _, ok := ci["options"]; !ok {
		ci["options"] = "-c statement_timeout=0 -c idle_in_transaction_session_timeout=0"
	}
	if cfg, err := pgconn.ParseConfig(m.SubConn.String()); err == nil && cfg.Password != "" {
		ci["password"] = cfg.Password
	}
	return ci.String(), ci.Redacted()
}

// SubscriptionSpec describes the subscription to create.
type SubscriptionSpec struct {
	Name, Publication, Slot string
	Conninfo, Shown         string
	CopyData                bool // native initial copy by PostgreSQL's table sync
	CreateSlot              bool
	Enabled                 bool
	SrcVersion              int
	// Binary asks for the binary format (16+ on both sides): set it only
	// when BinarySafe says so.
	Binary bool
}

// Options renders the WITH list for a spec, per the two servers' versions.
// What PostgreSQL would otherwise choose by default is stated, so that a
// subscription behaves the same whatever the target's release defaults to
// (18 streams in parallel by default, 14 to 17 do not stream).
func (s SubscriptionSpec) Options(dstVersion int) []Option {
	opts := []Option{
		Bool("copy_data", s.CopyData),
		Bool("create_slot", s.CreateSlot),
		Str("slot_name", s.Slot),
		Bool("enabled", s.Enabled),
	}
	// Large transactions are streamed while they run instead of spilled to
	// disk and sent at commit (the option exists from 14 on the target):
	// protocol v2 needs 14+ on both sides, parallel apply 16+ on both. An
	// older source cannot stream at all: off, said so.
	switch {
	case dstVersion < 140000:
	case s.SrcVersion >= 160000 && dstVersion >= 160000:
		opts = append(opts, Str("streaming", "parallel"))
	case s.SrcVersion >= 140000:
		opts = append(opts, Str("streaming", "on"))
	default:
		opts = append(opts, Str("streaming", "off"))
	}
	if dstVersion >= 160000 {
		// binary: see BinarySafe. run_as_owner = false (16's default,
		// stated): the apply runs as each table's owner, so code a table
		// owner wrote (a trigger enabled for replicas, a default, an index
		// expression) never runs with the subscription owner's rights.
		opts = append(opts, Bool("binary", s.Binary && s.SrcVersion >= 160000), Bool("run_as_owner", false))
	}
	return opts
}

// create runs CREATE SUBSCRIPTION, showing the connection string masked,
// and returns the new subscription (nil under --dry-run).
func (s SubscriptionSpec) create(ctx context.Context, r cluster.Runner, dst *cluster.Conn, what string) (*catalog.Subscription, error) {
	opts := s.Options(dst.VersionNum)
	sql := CreateSubscriptionSQL(s.Name, s.Conninfo, []string{s.Publication}, opts)
	shown := CreateSubscriptionSQL(s.Name, s.Shown, []string{s.Publication}, opts)
	if err := r.Exec(ctx, dst, what, sql, shown); err != nil || r.DryRun {
		return nil, err
	}
	sub, err := Find(ctx, dst, s.Name)
	if err == nil && sub == nil {
		err = fmt.Errorf("target: subscription %q not found after creating it", s.Name)
	}
	return sub, err
}

// SubscriptionResult says what EnsureSubscription did.
type SubscriptionResult struct {
	Created, Enabled, Refreshed bool
	NewTables                   int // published tables the refresh adds
	OID                         uint32
}

// Find returns the named subscription of the target's database, or nil.
func Find(ctx context.Context, dst *cluster.Conn, name string) (*catalog.Subscription, error) {
	subs, err := catalog.Subscriptions(ctx, dst)
	if err != nil {
		return nil, err
	}
	for i := range subs {
		if subs[i].Name == name {
			return &subs[i], nil
		}
	}
	return nil, nil
}

// EnsureSubscription creates the subscription, or brings an existing one to
// the wanted state: enabled, and refreshed when the publication gained
// tables (new tables get PostgreSQL's own initial copy).
func EnsureSubscription(ctx context.Context, r cluster.Runner, dst *cluster.Conn, s SubscriptionSpec, missing int) (SubscriptionResult, error) {
	var res SubscriptionResult
	sub, err := Find(ctx, dst, s.Name)
	if err != nil {
		return res, err
	}
	if sub == nil {
		res.Created = true
		sub, err = s.create(ctx, r, dst, "create subscription "+quoteName(s.Name))
		if sub != nil {
			res.OID = sub.OID
		}
		return res, err
	}
	res.OID = sub.OID
	if sub.Publications != s.Publication {
		return res, fmt.Errorf("target: subscription %q exists but subscribes to %q, not %q; drop it with pgmove remove-sub or set sub_name", s.Name, sub.Publications, s.Publication)
	}
	if sub.SlotName != s.Slot {
		return res, fmt.Errorf("target: subscription %q exists but uses slot %q, not %q; drop it with pgmove remove-sub or set sub_name", s.Name, sub.SlotName, s.Slot)
	}
	if !sub.Enabled && s.Enabled {
		res.Enabled = true
		if err := r.Exec(ctx, dst, "enable subscription "+quoteName(s.Name), AlterSubscriptionSQL(s.Name, "ENABLE")); err != nil {
			return res, err
		}
	}
	if missing > 0 && dst.VersionNum >= 160000 && !s.Binary {
		// A table that joins may have a type binary cannot carry (see
		// BinarySafe): back to text before its copy starts.
		var binary bool
		if err := dst.QueryRow(ctx, "SELECT subbinary FROM pg_catalog.pg_subscription WHERE oid = $1", sub.OID).Scan(&binary); err != nil {
			return res, dst.Wrap("read subscription "+quoteName(s.Name), err)
		}
		if binary {
			if err := r.Exec(ctx, dst, "switch subscription "+quoteName(s.Name)+" to text format", AlterSubscriptionSQL(s.Name, "SET (binary = false)")); err != nil {
				return res, err
			}
		}
	}
	if missing > 0 {
		res.Refreshed, res.NewTables = true, missing
		if err := r.Exec(ctx, dst, "refresh subscription "+quoteName(s.Name), AlterSubscriptionSQL(s.Name, "REFRESH PUBLICATION WITH (copy_data = true)")); err != nil {
			return res, err
		}
	}
	return res, nil
}

// RemoveResult says what RemoveSubscription did.
type RemoveResult struct {
	Dropped bool
	// OrphanSlots are slots left on the source because it could not be
	// reached: they retain WAL until dropped.
	OrphanSlots []string
	// SlotsDropped are the slots DROP SUBSCRIPTION dropped on the source.
	SlotsDropped []string
}

// RemoveSubscription disables and drops the subscription. With the source
// reachable, PostgreSQL drops the slot there too. Without it (src nil, or the
// target cannot reach it), the slot is detached first so the drop succeeds,
// and the slots left behind are returned for the user to drop later.
func RemoveSubscription(ctx context.Context, r cluster.Runner, dst, src *cluster.Conn, name string) (RemoveResult, error) {
	var res RemoveResult
	sub, err := Find(ctx, dst, name)
	if err != nil || sub == nil {
		return res, err
	}
	if sub.Enabled {
		if err := r.Exec(ctx, dst, "disable subscription "+quoteName(name), AlterSubscriptionSQL(name, "DISABLE")); err != nil {
			return res, err
		}
	}
	syncSlots, err := syncSlotNames(ctx, dst, sub.OID)
	if err != nil {
		return res, err
	}
	if src != nil && sub.SlotName != "" {
		err := r.Exec(ctx, dst, "drop subscription "+quoteName(name), DropSubscriptionSQL(name))
		if err == nil {
			res.Dropped = true
			res.SlotsDropped = []string{sub.SlotName}
			if r.DryRun {
				fmt.Fprintf(r.Out, "-- (the %s drops the subscription's slot %s on the %s)\n", dst.Side, quoteName(sub.SlotName), src.Side)
			}
			return res, nil
		}
		if !isConnectionFailure(err) {
			return res, err
		}
		// The target cannot reach the source although pgmove can: detach,
		// drop, then drop the slot from here.
	}
	if sub.SlotName != "" {
		if err := r.Exec(ctx, dst, "detach the slot from subscription "+quoteName(name), DetachSlotSQL(name)); err != nil {
			return res, err
		}
	}
	if err := r.Exec(ctx, dst, "drop subscription "+quoteName(name), DropSubscriptionSQL(name)); err != nil {
		return res, err
	}
	res.Dropped = true
	slots := append([]string{}, syncSlots...)
	if sub.SlotName != "" {
		slots = append([]string{sub.SlotName}, slots...)
	}
	for _, slot := range slots {
		if src == nil {
			res.OrphanSlots = append(res.OrphanSlots, slot)
			continue
		}
		if _, err := DropSlot(ctx, r, src, slot); err != nil {
			res.OrphanSlots = append(res.OrphanSlots, slot)
		}
	}
	return res, nil
}

// syncSlotNames lists the table-sync slots a subscription may have made on
// the publisher (pg_<suboid>_sync_<relid>_<sysid>), for tables still syncing.
func syncSlotNames(ctx context.Context, dst *cluster.Conn, subOID uint32) ([]string, error) {
	rows, err := dst.Query(ctx, `SELECT format('pg_%s_sync_%s_%s', srsubid, srrelid,
			(SELECT system_identifier FROM pg_catalog.pg_control_system()))
		FROM pg_catalog.pg_subscription_rel WHERE srsubid = $1 AND srsubstate NOT IN ('r', 's')`, subOID)
	if err != nil {
		// pg_control_system() may be closed to non-superusers: then the
		// names cannot be computed, and only the main slot is reported.
		return nil, nil
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, nil
	}
	return names, nil
}

// DropSlot drops a replication slot on the source if it exists, waiting a
// little for a walsender that is still letting go of it.
func DropSlot(ctx context.Context, r cluster.Runner, src *cluster.Conn, slot string) (bool, error) {
	for attempt := 0; ; attempt++ {
		var exists, active bool
		err := src.QueryRow(ctx, "SELECT true, active FROM pg_catalog.pg_replication_slots WHERE slot_name = $1", slot).Scan(&exists, &active)
		if errors.Is(err, pgx.ErrNoRows) {
			return false, nil
		}
		if err != nil {
			return false, src.Wrap("look up replication slot", err)
		}
		if active && attempt < 20 && !r.DryRun {
			select {
			case <-ctx.Done():
				return false, ctx.Err()
			case <-time.After(500 * time.Millisecond):
			}
			continue
		}
		if active {
			return false, fmt.Errorf("source: replication slot %q is in use by another process; stop its consumer, then run: %s", slot, DropSlotSQL(slot))
		}
		return true, r.Exec(ctx, src, "drop replication slot "+quoteName(slot), DropSlotSQL(slot))
	}
}

func isConnectionFailure(err error) bool {
	switch cluster.SQLState(err) {
	case pgerrcode.ConnectionFailure, pgerrcode.ConnectionException, pgerrcode.SQLClientUnableToEstablishSQLConnection:
		return true
	}
	return false
}
