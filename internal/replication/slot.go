package replication

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgmove/pgmove/internal/cluster"
	"github.com/pgmove/pgmove/internal/config"
)

// ExportedSlot is a logical slot created together with a snapshot of the
// database at the slot's consistent point: rows visible in the snapshot are
// exactly those committed before the first change the slot will stream.
// The snapshot lives as long as the replication connection stays idle and
// open; Close ends both the connection and the snapshot (not the slot).
type ExportedSlot struct {
	Name            string
	ConsistentPoint pglogrepl.LSN
	Snapshot        string
	SystemID        string
	conn            *pgconn.PgConn
}

var slotNameRE = regexp.MustCompile(`^[a-z0-9_]{1,63}$`)

// CreateExportedSlot opens a replication connection as the replication user,
// identifies the system and creates a permanent pgoutput slot exporting its
// snapshot. The publication must exist before this: a slot decodes with the
// publications that existed at each WAL position.
func CreateExportedSlot(ctx context.Context, m *config.Migration, slot string, timeout time.Duration) (*ExportedSlot, error) {
	if !slotNameRE.MatchString(slot) {
		return nil, fmt.Errorf("source: %q is not a valid replication slot name (lower-case letters, digits, _)", slot)
	}
	conn, err := ConnectReplication(ctx, m, "copy")
	if err != nil {
		return nil, err
	}
	fail := func(action string, err error) (*ExportedSlot, error) {
		conn.Close(context.Background())
		return nil, cluster.Wrap(config.Source, action, err)
	}
	// Walsenders accept SET: no timeout may kill the idle snapshot holder.
	if err := conn.Exec(ctx, "SET statement_timeout = 0; SET idle_in_transaction_session_timeout = 0").Close(); err != nil {
		return fail("set replication session timeouts", err)
	}
	sys, err := pglogrepl.IdentifySystem(ctx, conn)
	if err != nil {
		return fail("identify system", err)
	}
	// Creating a slot waits for every transaction holding an xid to end; a
	// forgotten one would hang us forever, so bound the wait.
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	res, err := pglogrepl.CreateReplicationSlot(cctx, conn, slot, "pgoutput", pglogrepl.CreateReplicationSlotOptions{SnapshotAction: "EXPORT_SNAPSHOT"})
	if err != nil {
		if cctx.Err() != nil && ctx.Err() == nil {
			conn.Close(context.Background())
			return nil, fmt.Errorf("source: creating replication slot %q did not finish within %s: it waits for every open transaction that holds an xid (see pg_stat_activity where backend_xid is not null, and pg_prepared_xacts); end them and rerun", slot, timeout)
		}
		return fail(fmt.Sprintf("create replication slot %q", slot), err)
	}
	lsn, err := pglogrepl.ParseLSN(res.ConsistentPoint)
	if err != nil {
		return fail("read the slot's consistent point", err)
	}
	return &ExportedSlot{Name: res.SlotName, ConsistentPoint: lsn, Snapshot: res.SnapshotName, SystemID: sys.SystemID, conn: conn}, nil
}

// Close ends the replication connection, and with it the exported snapshot.
func (s *ExportedSlot) Close() {
	if s != nil && s.conn != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.conn.Close(ctx)
		s.conn = nil
	}
}

// SlotState is what the source says of a slot.
type SlotState struct {
	Exists         bool
	Active         bool
	ConfirmedFlush pglogrepl.LSN
}

// ReadSlot reads a slot's state on the source.
func ReadSlot(ctx context.Context, src *cluster.Conn, slot string) (SlotState, error) {
	var st SlotState
	var confirmed string
	err := src.QueryRow(ctx, `SELECT active, COALESCE(confirmed_flush_lsn::text, '0/0') FROM pg_catalog.pg_replication_slots WHERE slot_name = $1`, slot).Scan(&st.Active, &confirmed)
	if errors.Is(err, pgx.ErrNoRows) {
		return st, nil
	}
	if err != nil {
		return st, src.Wrap("read replication slot", err)
	}
	st.Exists = true
	st.ConfirmedFlush, err = pglogrepl.ParseLSN(confirmed)
	return st, err
}

// AttachSubscription creates the subscription on an existing slot whose
// data pgmove already copied: no copy, no new slot, disabled at first; then
// checks nobody consumed the slot since its creation (its confirmed position
// must still be the consistent point, or changes were lost), moves the
// subscription's origin to the consistent point, and enables it. What
// pg_createsubscriber does after its physical copy.
func AttachSubscription(ctx context.Context, r cluster.Runner, src, dst *cluster.Conn, s SubscriptionSpec, consistentPoint pglogrepl.LSN) (SubscriptionResult, error) {
	var res SubscriptionResult
	st, err := ReadSlot(ctx, src, s.Slot)
	if err != nil {
		return res, err
	}
	if !st.Exists && !r.DryRun {
		return res, fmt.Errorf("source: replication slot %q is gone; the copy must start again from a new slot (pgmove cleanup, then migrate)", s.Slot)
	}
	if st.Exists && st.ConfirmedFlush > consistentPoint {
		return res, fmt.Errorf("source: replication slot %q was consumed past its consistent point (%s > %s): changes after the copy are lost; start again from a new slot (pgmove cleanup, then migrate)", s.Slot, st.ConfirmedFlush, consistentPoint)
	}
	s.CopyData, s.CreateSlot, s.Enabled = false, false, false
	sub, err := Find(ctx, dst, s.Name)
	if err != nil {
		return res, err
	}
	if sub == nil {
		res.Created = true
		if sub, err = s.create(ctx, r, dst, "create subscription "+quoteName(s.Name)+" on the copied slot"); err != nil || sub == nil {
			return res, err
		}
	}
	res.OID = sub.OID
	if !sub.Enabled {
		// Only while the subscription has never run: its origin then has no
		// progress, or exactly the consistent point from an earlier attempt.
		origin := fmt.Sprintf("pg_%d", sub.OID)
		// Reading and moving an origin is for superusers unless granted:
		// a 16+ subscription owner through pg_create_subscription may not.
		var canAdvance bool
		if err := dst.QueryRow(ctx, `SELECT pg_catalog.has_function_privilege('pg_catalog.pg_replication_origin_progress(text, boolean)', 'EXECUTE')
			AND pg_catalog.has_function_privilege('pg_catalog.pg_replication_origin_advance(text, pg_catalog.pg_lsn)', 'EXECUTE')`).Scan(&canAdvance); err != nil {
			return res, dst.Wrap("check the right to move the subscription's origin", err)
		}
		switch {
		case canAdvance:
			var progress *string
			err := dst.QueryRow(ctx, "SELECT pg_catalog.pg_replication_origin_progress($1, false)::text", origin).Scan(&progress)
			if err != nil {
				return res, dst.Wrap("read the subscription's origin", err)
			}
			if progress == nil || *progress == "0/0" {
				advance := fmt.Sprintf("SELECT pg_catalog.pg_replication_origin_advance(%s, %s)", QuoteLiteral(origin), QuoteLiteral(consistentPoint.String()))
				if err := r.Exec(ctx, dst, "start the subscription at the copy's consistent point", advance); err != nil {
					return res, err
				}
			}
		case st.Exists && st.ConfirmedFlush == consistentPoint:
			// Not needed here: the slot's confirmed position is the
			// consistent point (checked above that nothing consumed it),
			// and the source's walsender starts a slot asked for an
			// earlier position (the new origin's 0/0) at its confirmed one.
			slog.Info(fmt.Sprintf("target: %s may not move replication origins; the subscription starts at slot %q's confirmed position, the consistent point %s", dst.User, s.Slot, consistentPoint))
		case !r.DryRun:
			return res, fmt.Errorf("target: role %q may not move replication origins and slot %q is at %s, not at the consistent point %s; connect to the target as a superuser, or grant EXECUTE on pg_catalog.pg_replication_origin_progress(text, boolean) and pg_catalog.pg_replication_origin_advance(text, pg_lsn) to %s", dst.User, s.Slot, st.ConfirmedFlush, consistentPoint, ident(dst.User))
		}
		res.Enabled = true
		if err := r.Exec(ctx, dst, "enable subscription "+quoteName(s.Name), AlterSubscriptionSQL(s.Name, "ENABLE")); err != nil {
			return res, err
		}
	}
	return res, nil
}
