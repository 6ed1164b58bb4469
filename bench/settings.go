package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/pgmove/pgmove/internal/pgserver"
)

// productionSettings are what a DBA would set on this machine, 2 cores and
// 24 GiB, for a server that takes a bulk load; the source and the target
// share the machine, so each is sized for half of it (12 GiB):
//
//   - durability as shipped: fsync, full_page_writes and synchronous_commit
//     on, so each created file, commit and checkpoint costs what it costs
//     in production;
//   - shared_buffers 3GB, 25% of its half (the usual rule), and
//     effective_cache_size 9GB, the rest of the half the page cache holds;
//   - max_wal_size 8GB and min_wal_size 2GB with checkpoint_timeout 15min and
//     checkpoint_completion_target 0.9: a load does not force checkpoints
//     every few seconds, and a checkpoint spreads its writes;
//   - wal_buffers 16MB (what 3GB of shared_buffers auto-tunes to, written
//     out so the figure is visible), maintenance_work_mem 1GB for the index
//     builds (two at a time on 2 cores);
//   - max_locks_per_transaction 1024: pg_dump (every tool's schema dump)
//     locks every table it dumps in one transaction, and the shared lock
//     table holds max_locks_per_transaction × max_connections locks; the
//     default 64 × 100 is out of shared memory at 20,000 tables (dataset
//     growth), as any DBA with that many tables finds out;
//   - replication limits high enough for every tool; the sync workers are
//     PostgreSQL's default on purpose: the native path is measured as users
//     get it.
var productionSettings = map[string]string{
	"fsync":                             "on",
	"full_page_writes":                  "on",
	"synchronous_commit":                "on",
	"shared_buffers":                    "3GB",
	"effective_cache_size":              "9GB",
	"max_wal_size":                      "8GB",
	"min_wal_size":                      "2GB",
	"checkpoint_timeout":                "15min",
	"checkpoint_completion_target":      "0.9",
	"wal_buffers":                       "16MB",
	"maintenance_work_mem":              "1GB",
	"max_locks_per_transaction":         "1024",
	"max_replication_slots":             "50",
	"max_wal_senders":                   "50",
	"max_logical_replication_workers":   "8",
	"max_sync_workers_per_subscription": "2",
}

// fastSettings are -fsync-off: the earlier bench's servers, no disk flush on
// any side. Figures from them are not what a production server shows: per
// table work (file creation, commits) costs far less there.
var fastSettings = map[string]string{
	"fsync":                             "off",
	"full_page_writes":                  "off",
	"synchronous_commit":                "off",
	"shared_buffers":                    "512MB",
	"max_wal_size":                      "16GB",
	"checkpoint_timeout":                "30min",
	"maintenance_work_mem":              "512MB",
	"max_locks_per_transaction":         "1024",
	"max_replication_slots":             "50",
	"max_wal_senders":                   "50",
	"max_logical_replication_workers":   "8",
	"max_sync_workers_per_subscription": "2",
}

// serverSettings are the settings of every server of this run, whatever the tool.
func (o *options) serverSettings() map[string]string {
	if o.fsyncOff {
		return maps.Clone(fastSettings)
	}
	return maps.Clone(productionSettings)
}

// liveSettings reads back, from each running server, the settings bench
// asked for: the header prints what the servers run with, not what bench
// meant to give them. A server whose value differs from the source's is
// named next to it.
func (b *bench) liveSettings(ctx context.Context, servers ...*pgserver.Server) (map[string]string, error) {
	keys := slices.Sorted(maps.Keys(b.o.serverSettings()))
	var out map[string]string
	for _, s := range servers {
		if s == nil {
			continue
		}
		conn, err := connect(ctx, s, "postgres")
		if err != nil {
			return nil, err
		}
		got := map[string]string{}
		rows, err := conn.Query(ctx, "SELECT name, pg_catalog.current_setting(name) FROM pg_catalog.unnest($1::text[]) AS name", keys)
		if err == nil {
			for rows.Next() {
				var k, v string
				if err = rows.Scan(&k, &v); err != nil {
					break
				}
				got[k] = v
			}
			rows.Close()
			if err == nil {
				err = rows.Err()
			}
		}
		conn.Close(context.Background())
		if err != nil {
			return nil, fmt.Errorf("postgresql %d: read settings: %w", s.Major, err)
		}
		if out == nil {
			out = got
			continue
		}
		for k, v := range got {
			if out[k] != v {
				out[k] += fmt.Sprintf(" (PG %d: %s)", s.Major, v)
			}
		}
	}
	return out, nil
}

// writeSettings prints the servers' settings, as read back from them
// (liveSettings), for a report's header.
func writeSettings(w io.Writer, s map[string]string, fsyncOff bool) {
	line := func(keys ...string) string {
		var kv []string
		for _, k := range keys {
			if v, ok := s[k]; ok {
				kv = append(kv, k+"="+v)
			}
		}
		return strings.Join(kv, " ")
	}
	durability := []string{"fsync", "full_page_writes", "synchronous_commit"}
	replication := []string{"max_replication_slots", "max_wal_senders", "max_logical_replication_workers", "max_sync_workers_per_subscription"}
	var rest []string
	for _, k := range slices.Sorted(maps.Keys(s)) {
		if !slices.Contains(durability, k) && !slices.Contains(replication, k) {
			rest = append(rest, k)
		}
	}
	if fsyncOff {
		fmt.Fprintf(w, "servers (both sides, every tool, as read back from them): %s: -fsync-off, no disk flush on any side (not production figures)\n", line(durability...))
	} else {
		fmt.Fprintf(w, "servers (both sides, every tool, as read back from them): production durability, %s,\n", line(durability...))
		fmt.Fprintln(w, "  sized as a DBA would for half of this machine each (2 cores, 24 GiB, source and target share it):")
	}
	fmt.Fprintf(w, "  %s\n", line(rest...))
	fmt.Fprintf(w, "  %s: PostgreSQL's default sync workers, so the native path is measured as users get it\n", line(replication...))
}
