package check

import (
	"context"
	_ "embed"
	"errors"
	"fmt"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"

	"github.com/pgmove/pgmove/internal/cluster"
	"github.com/pgmove/pgmove/internal/config"
)

//go:embed sql/wal_dir.sql
var walDirSQL string

// walHeadroom reports what bounds the WAL the migration's slot may keep on
// the source's disk: max_slot_wal_keep_size (13+; -1, no limit, means a
// slot that falls behind can fill the disk; a limit means the slot is lost
// past it and the migration must start again), and what pgmove can know
// of the headroom: pg_wal's size now (superuser or pg_monitor) and
// max_wal_size. The disk's free space is not visible over SQL.
func (c *checker) walHeadroom(ctx context.Context) error {
	if c.src == nil {
		return nil
	}
	if c.src.VersionNum < 130000 { // max_slot_wal_keep_size: 13
		c.r.add(Info, config.Source, "max_slot_wal_keep_size", "", "a source before PostgreSQL 13 has no max_slot_wal_keep_size: a slot that falls behind keeps WAL until the disk is full; watch the free space of the source's pg_wal while the migration runs", "")
		return nil
	}
	var walDir, limit, maxWAL *int64
	err := c.src.QueryRow(ctx, walDirSQL).Scan(&walDir, &limit, &maxWAL)
	if cluster.SQLState(err) == pgerrcode.InsufficientPrivilege { // pg_ls_waldir needs superuser or pg_monitor
		err = c.src.QueryRow(ctx, `SELECT NULL::int8, pg_catalog.pg_size_bytes(pg_catalog.current_setting('max_slot_wal_keep_size'))::int8,
			pg_catalog.pg_size_bytes(pg_catalog.current_setting('max_wal_size'))::int8`).Scan(&walDir, &limit, &maxWAL)
	}
	if err != nil {
		return c.src.Wrap("read max_slot_wal_keep_size", err)
	}
	dir := "unknown (pg_ls_waldir needs superuser or pg_monitor)"
	if walDir != nil {
		dir = PrettyBytes(*walDir)
	}
	known := fmt.Sprintf("pg_wal holds %s now, max_wal_size = %s; the disk's free space is not visible over SQL: check it with df on the source", dir, PrettyBytes(deref(maxWAL)))
	f := Finding{Severity: Info, Side: string(config.Source), Code: "max_slot_wal_keep_size"}
	if limit == nil || *limit < 0 {
		f.Message = "max_slot_wal_keep_size = -1 (no limit): a slot that falls behind keeps WAL until the source's disk is full; progress warns past --max-retained"
		f.Detail = known
		f.Fix = "ALTER SYSTEM SET max_slot_wal_keep_size = '<what the disk can spare>'; SELECT pg_catalog.pg_reload_conf();  -- optional: the slot is then lost past it instead of filling the disk, and the migration must start again"
	} else {
		f.Message = fmt.Sprintf("max_slot_wal_keep_size = %s: a slot that falls that far behind is lost (the source removes the WAL it needs) and the migration must start again (pgmove cleanup, then migrate); progress warns at half of it", PrettyBytes(*limit))
		f.Detail = known
	}
	c.r.Findings = append(c.r.Findings, f)
	// This migration's slot, when it exists, may be lost already.
	var status *string
	err = c.src.QueryRow(ctx, "SELECT wal_status FROM pg_catalog.pg_replication_slots WHERE slot_name = $1", c.m.SlotName).Scan(&status)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return c.src.Wrap("read the slot's wal_status", err)
	}
	switch deref(status) {
	case "lost", "unreserved":
		c.r.add(Error, config.Source, "slot_lost", c.m.SlotName,
			fmt.Sprintf("replication slot is %s (wal_status %s): the source removed, or is about to remove, WAL the target has not received, past max_slot_wal_keep_size; this subscription can never catch up", map[string]string{"lost": "lost", "unreserved": "past max_slot_wal_keep_size"}[*status], *status),
			"start a new copy: pgmove cleanup, then pgmove migrate")
	}
	return nil
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}
