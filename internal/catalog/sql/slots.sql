-- Replication slots of this cluster, with how much WAL each holds back.
SELECT slot_name::text, COALESCE(plugin::text, ''), slot_type, COALESCE(database::text, ''), active,
       COALESCE(active_pid, 0),
       COALESCE(pg_catalog.pg_wal_lsn_diff(
                  CASE WHEN pg_catalog.pg_is_in_recovery() THEN pg_catalog.pg_last_wal_receive_lsn()
                       ELSE pg_catalog.pg_current_wal_lsn() END, restart_lsn), 0)::int8 AS retained_bytes,
       COALESCE(confirmed_flush_lsn::text, '')
  FROM pg_catalog.pg_replication_slots
 ORDER BY slot_name
