package replication

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/pgmove/pgmove/internal/cluster"
)

// ApplyState is what the target says of a subscription's apply.
type ApplyState struct {
	Enabled bool
	Workers int // apply and table-sync workers running
	// ApplyErrors and SyncErrors count the apply and table-sync workers'
	// failures since the subscription was made; nil when the server does
	// not count them (before PostgreSQL 15).
	ApplyErrors, SyncErrors *int64
}

// Errors is the sum of both counts, -1 when unknown.
func (a ApplyState) Errors() int64 {
	if a.ApplyErrors == nil || a.SyncErrors == nil {
		return -1
	}
	return *a.ApplyErrors + *a.SyncErrors
}

// Down reports an enabled subscription with no worker running: nothing
// is applied (the worker failed and waits to restart, or cannot start).
func (a ApplyState) Down() bool { return a.Enabled && a.Workers == 0 }

// subscriptionStatsQuery reads the error counters. pg_stat_subscription_stats
// appeared in PostgreSQL 15 with apply_error_count and sync_error_count (18
// added conflict counters beside them); before 15 there are none.
func subscriptionStatsQuery(version int) string {
	if version >= 150000 {
		return `SELECT apply_error_count, sync_error_count FROM pg_catalog.pg_stat_subscription_stats WHERE subid = $1`
	}
	return ""
}

// Apply reads the subscription's apply state on the target.
func Apply(ctx context.Context, dst *cluster.Conn, subOID uint32) (ApplyState, error) {
	var a ApplyState
	err := dst.QueryRow(ctx, `SELECT s.subenabled, (SELECT count(pid)::int FROM pg_catalog.pg_stat_subscription w WHERE w.subid = s.oid)
		FROM pg_catalog.pg_subscription s WHERE s.oid = $1`, subOID).Scan(&a.Enabled, &a.Workers)
	if err != nil {
		return a, dst.Wrap("read subscription workers", err)
	}
	if q := subscriptionStatsQuery(dst.VersionNum); q != "" {
		var apply, sync int64
		err := dst.QueryRow(ctx, q, subOID).Scan(&apply, &sync)
		switch {
		case errors.Is(err, pgx.ErrNoRows): // no failure counted yet
			apply, sync = 0, 0
		case err != nil:
			return a, dst.Wrap("read subscription errors", err)
		}
		a.ApplyErrors, a.SyncErrors = &apply, &sync
	}
	return a, nil
}

// Describe is the state in a few words, for a problem line.
func (a ApplyState) Describe() string {
	s := fmt.Sprintf("%d worker(s) running", a.Workers)
	if a.ApplyErrors != nil {
		s += fmt.Sprintf(", %d apply and %d table-sync failure(s) counted", *a.ApplyErrors, *a.SyncErrors)
	}
	return s
}
