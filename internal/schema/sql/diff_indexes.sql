-- Indexes that are not the storage of a key or exclusion constraint and not
-- a partition's share of its parent's index (both follow what owns them).
SELECT n.nspname, i.relname, t.relname, pg_catalog.pg_get_indexdef(i.oid), x.indisvalid, i.oid::int8
  FROM pg_catalog.pg_index x
  JOIN pg_catalog.pg_class i ON i.oid = x.indexrelid
  JOIN pg_catalog.pg_class t ON t.oid = x.indrelid
  JOIN pg_catalog.pg_namespace n ON n.oid = i.relnamespace
 WHERE NOT i.relispartition
   AND t.relkind IN ('r', 'p', 'm')
   AND t.relpersistence <> 't'
   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint k
                    WHERE k.conrelid = x.indrelid AND k.conindid = x.indexrelid AND k.contype IN ('p', 'u', 'x'))
   AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pgmove')
   AND n.nspname !~ '^pg_toast' AND n.nspname !~ '^pg_temp_'
   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                    WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.objid = t.oid AND d.deptype = 'e')
 ORDER BY 1, 2
