-- The logical slots of the current database on this server, with what each
-- holds: retained WAL (null once lost), wal_status and safe_wal_size (13+),
-- the age of its catalog_xmin in transactions, inactive_since (17+).
SELECT s.slot_name::text, s.active,
       pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), s.restart_lsn)::int8,
       s.wal_status::text, s.safe_wal_size::int8,
       pg_catalog.age(s.catalog_xmin)::int8,
       {{inactive_since}}
  FROM pg_catalog.pg_replication_slots s
 WHERE s.slot_type = 'logical'
   AND s.database = pg_catalog.current_database()
 ORDER BY s.slot_name
