-- The source commit position the target's apply has reached for the
-- migration's subscription (its replication origin, pg_<oid>); no row
-- when this database has no such subscription. A superuser's function.
SELECT pg_catalog.pg_replication_origin_progress('pg_' || s.oid, true)::text
FROM pg_catalog.pg_subscription s
WHERE s.subname = $1
  AND s.subdbid = (SELECT d.oid FROM pg_catalog.pg_database d WHERE d.datname = pg_catalog.current_database())
