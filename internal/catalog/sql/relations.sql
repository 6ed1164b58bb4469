-- Every user relation pgmove may care about: tables (plain, partitioned,
-- unlogged), foreign tables and materialized views, outside system schemas and
-- not owned by an extension. $1: with their sizes (a stat of every file of
-- every table: on a database of many tables, most of the query's time).
SELECT c.oid::int8,
       n.nspname,
       c.relname,
       c.relkind::text,
       c.relpersistence::text,
       c.relreplident::text,
       c.relispartition,
       COALESCE((SELECT root.oid::int8 FROM pg_catalog.pg_partition_root(c.oid) AS root(oid)
                  WHERE c.relispartition), 0) AS root_oid,
       EXISTS (SELECT 1 FROM pg_catalog.pg_constraint p WHERE p.conrelid = c.oid AND p.contype = 'p') AS has_pk,
       COALESCE((SELECT i.relname FROM pg_catalog.pg_index x JOIN pg_catalog.pg_class i ON i.oid = x.indexrelid
                  WHERE x.indrelid = c.oid AND x.indisreplident), '') AS ident_index,
       CASE WHEN $1::bool AND c.relkind IN ('r', 'm', 'p') THEN pg_catalog.pg_table_size(c.oid) ELSE 0 END AS bytes,
       CASE WHEN $1::bool AND c.relkind = 'p' THEN COALESCE((SELECT sum(pg_catalog.pg_table_size(t.relid))::int8
                                                  FROM pg_catalog.pg_partition_tree(c.oid) t WHERE t.isleaf), 0)
            ELSE 0 END AS tree_bytes,
       GREATEST(c.reltuples, 0)::int8 AS est_rows,
       c.relrowsecurity,
       c.relhastriggers,
       COALESCE((SELECT array_agg(a.attname ORDER BY a.attnum) FROM pg_catalog.pg_attribute a
                  WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated <> ''), '{}') AS generated
  FROM pg_catalog.pg_class c
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p', 'f', 'm')
   AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pgmove')
   AND n.nspname !~ '^pg_toast'
   AND n.nspname !~ '^pg_temp_'
   AND c.relpersistence <> 't'
   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                    WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
 ORDER BY n.nspname, c.relname
