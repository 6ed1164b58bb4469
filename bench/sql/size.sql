-- The data size the MB/s figures use: pg_table_size (heap, TOAST, free
-- space and visibility maps; no indexes) of every user table.
SELECT coalesce(sum(pg_catalog.pg_table_size(c.oid)), 0)::bigint
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p')
  AND n.nspname <> 'information_schema'
  AND n.nspname !~ '^pg_'
