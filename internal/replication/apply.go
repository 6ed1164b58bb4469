package replication

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/pgmove/pgmove/internal/cluster"
)

// ApplyState is what the target says of a subscription's apply.
type ApplyState struct {
	Enabled bool
	Workers int // apply and table-sync workers running
	// ApplyAge is how long the main apply worker has run, in seconds; -1
	// without one, or when the server does not show it to this role.
	ApplyAge float64
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

// restartWindow: an apply worker that fails is started again after
// wal_retrieve_retry_interval (5 s by default) and fails again on the same
// change, so a worker younger than this after failures is one in that loop.
const restartWindow = 15

// Down reports an enabled subscription whose apply is not running: no
// worker (it failed and waits to restart, or cannot start), or a worker
// just restarted after counted failures.
func (a ApplyState) Down() bool {
	return a.Enabled && (a.Workers == 0 || (a.Errors() > 0 && a.ApplyAge >= 0 && a.ApplyAge < restartWindow))
}

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
	err := dst.QueryRow(ctx, `SELECT s.subenabled, (SELECT count(pid)::int FROM pg_catalog.pg_stat_subscription w WHERE w.subid = s.oid),
			COALESCE((SELECT extract(epoch FROM now() - max(a.backend_start))::float8 FROM pg_catalog.pg_stat_subscription w
			          JOIN pg_catalog.pg_stat_activity a ON a.pid = w.pid WHERE w.subid = s.oid AND w.relid IS NULL), -1)
		FROM pg_catalog.pg_subscription s WHERE s.oid = $1`, subOID).Scan(&a.Enabled, &a.Workers, &a.ApplyAge)
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

// logTail is how much of the target's current log LastApplyError reads.
const logTail = 256 << 10

// LastApplyError returns the last error of a logical replication worker in
// the target's current log, or "" when it cannot be read: the server logs
// elsewhere than its logging collector's files (pg_current_logfile() is
// null), or the role may not read server files (superuser or
// pg_read_server_files). Optional by design: nothing depends on it.
func LastApplyError(ctx context.Context, dst *cluster.Conn) string {
	var text *string
	err := dst.QueryRow(ctx, `SELECT pg_catalog.pg_read_file(f, GREATEST((pg_catalog.pg_stat_file(f)).size - $1, 0), $1)
		FROM pg_catalog.pg_current_logfile() AS f WHERE f IS NOT NULL`, int64(logTail)).Scan(&text)
	if err != nil || text == nil {
		return ""
	}
	return lastWorkerError(*text)
}

// lastWorkerError finds, in log text, the last ERROR of an apply or
// table-sync worker: one whose CONTEXT says it was processing remote data,
// or whose message is about logical replication.
func lastWorkerError(log string) string {
	lines := strings.Split(log, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		_, msg, ok := strings.Cut(lines[i], "ERROR:  ")
		if !ok {
			continue
		}
		worker := strings.Contains(msg, "logical replication")
		for j := i + 1; j < len(lines) && j <= i+2 && !worker; j++ {
			worker = strings.Contains(lines[j], "CONTEXT:  processing remote data")
		}
		if worker {
			if len(msg) > 300 {
				msg = msg[:297] + "..."
			}
			return strings.TrimSpace(msg)
		}
	}
	return ""
}
