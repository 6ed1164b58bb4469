-- The migration's slot on a source before 13: no wal_status, no
-- safe_wal_size and no max_slot_wal_keep_size (a slot keeps WAL without
-- limit); max_wal_size in bytes.
SELECT NULL::text, NULL::int8, NULL::int8,
       pg_catalog.pg_size_bytes(pg_catalog.current_setting('max_wal_size'))::int8
  FROM pg_catalog.pg_replication_slots s
 WHERE s.slot_name = $1
