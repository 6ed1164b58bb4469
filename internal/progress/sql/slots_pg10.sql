-- The logical slots of the current database before 13: no wal_status,
-- no safe_wal_size, no inactive_since.
SELECT s.slot_name::text, s.active,
       pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), s.restart_lsn)::int8,
       NULL::text, NULL::int8,
       pg_catalog.age(s.catalog_xmin)::int8,
       NULL::timestamptz
  FROM pg_catalog.pg_replication_slots s
 WHERE s.slot_type = 'logical'
   AND s.database = pg_catalog.current_database()
 ORDER BY s.slot_name
