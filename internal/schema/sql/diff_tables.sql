-- Tables (plain, partitioned, foreign) with what shapes them: persistence,
-- partition key, the parent and bound of a partition, inheritance parents,
-- storage options, row-level security and replica identity; depth counts
-- its ancestors, so parents can be made first.
SELECT n.nspname, c.relname, c.relkind::text, c.relpersistence::text,
       CASE WHEN c.relkind = 'p' THEN pg_catalog.pg_get_partkeydef(c.oid) ELSE '' END AS partkey,
       COALESCE((SELECT pg_catalog.quote_ident(pn.nspname) || '.' || pg_catalog.quote_ident(p.relname)
                   FROM pg_catalog.pg_inherits i
                   JOIN pg_catalog.pg_class p ON p.oid = i.inhparent
                   JOIN pg_catalog.pg_namespace pn ON pn.oid = p.relnamespace
                  WHERE c.relispartition AND i.inhrelid = c.oid), '') AS partition_of,
       CASE WHEN c.relispartition THEN pg_catalog.pg_get_expr(c.relpartbound, c.oid) ELSE '' END AS bound,
       COALESCE((SELECT pg_catalog.array_agg(pg_catalog.quote_ident(pn.nspname) || '.' || pg_catalog.quote_ident(p.relname) ORDER BY i.inhseqno)
                   FROM pg_catalog.pg_inherits i
                   JOIN pg_catalog.pg_class p ON p.oid = i.inhparent
                   JOIN pg_catalog.pg_namespace pn ON pn.oid = p.relnamespace
                  WHERE NOT c.relispartition AND i.inhrelid = c.oid), '{}') AS inherits,
       COALESCE((SELECT pg_catalog.array_agg(o ORDER BY o) FROM pg_catalog.unnest(c.reloptions) o), '{}') AS options,
       c.relrowsecurity, c.relforcerowsecurity, c.relreplident::text,
       COALESCE((SELECT i.relname FROM pg_catalog.pg_index x JOIN pg_catalog.pg_class i ON i.oid = x.indexrelid
                  WHERE x.indrelid = c.oid AND x.indisreplident), '') AS ident_index,
       c.oid::int8,
       (WITH RECURSIVE up(rel, depth) AS (
            SELECT c.oid, 0
          UNION ALL
            SELECT i.inhparent, up.depth + 1 FROM pg_catalog.pg_inherits i JOIN up ON i.inhrelid = up.rel)
        SELECT max(up.depth)::int8 FROM up) AS depth
  FROM pg_catalog.pg_class c
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p', 'f')
   AND c.relpersistence <> 't'
   AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pgmove')
   AND n.nspname !~ '^pg_toast' AND n.nspname !~ '^pg_temp_'
   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                    WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.objid = c.oid AND d.deptype = 'e')
 ORDER BY 1, 2
