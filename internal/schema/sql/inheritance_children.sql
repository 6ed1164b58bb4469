-- Ordinary tables among $1 that inherit (not partitions), with their
-- parents in inheritance order.
SELECT c.oid::int8, n.nspname, c.relname,
       array_agg(i.inhparent::int8 ORDER BY i.inhseqno) AS parents
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN pg_catalog.pg_inherits i ON i.inhrelid = c.oid
WHERE c.oid = ANY($1::oid[]) AND c.relkind = 'r' AND NOT c.relispartition
GROUP BY c.oid, n.nspname, c.relname
