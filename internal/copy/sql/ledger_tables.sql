-- The target relations the ledger proves this migration's copies (between
-- these two databases) loaded, that still exist: $1 the migration, $2-$5
-- the identities. relkind 'p' is a partitioned table, truncated with its
-- partitions.
SELECT DISTINCT c.oid::int8, n.nspname::text, c.relname::text, c.relkind::text
  FROM pgmove.load l
  JOIN pgmove.copy p ON p.copy_id = l.copy_id
  JOIN pg_catalog.pg_class c ON c.oid = l.relid
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE p.migration = $1
   AND p.src_sysid = $2 AND p.src_dboid = $3
   AND p.dst_sysid = $4 AND p.dst_dboid = $5
 ORDER BY 2, 3
