-- The migration's slot and what it holds on the source's disk (13+): its
-- wal_status, the WAL the source may still write before it is lost (null
-- without a limit), and the limit and max_wal_size in bytes (-1: no limit).
SELECT s.wal_status::text, s.safe_wal_size::int8,
       pg_catalog.pg_size_bytes(pg_catalog.current_setting('max_slot_wal_keep_size'))::int8,
       pg_catalog.pg_size_bytes(pg_catalog.current_setting('max_wal_size'))::int8
  FROM pg_catalog.pg_replication_slots s
 WHERE s.slot_name = $1
