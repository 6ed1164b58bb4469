-- The valid indexes on user tables, named schema.table.index, to check that
-- a tool built every index the source has.
SELECT n.nspname || '.' || t.relname || '.' || i.relname
FROM pg_catalog.pg_index x
JOIN pg_catalog.pg_class i ON i.oid = x.indexrelid
JOIN pg_catalog.pg_class t ON t.oid = x.indrelid
JOIN pg_catalog.pg_namespace n ON n.oid = t.relnamespace
WHERE x.indisvalid
  AND n.nspname <> 'information_schema'
  AND n.nspname !~ '^pg_'
ORDER BY 1
