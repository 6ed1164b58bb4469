-- Table constraints: checks, keys, foreign keys, exclusions. Left out: NOT
-- NULL (a column property; PostgreSQL 18 also lists them here), constraint
-- triggers (compared as triggers), and constraints a partition or child
-- table got from its parent.
SELECT n.nspname, c.relname, k.conname, k.contype::text, pg_catalog.pg_get_constraintdef(k.oid), k.oid::int8
  FROM pg_catalog.pg_constraint k
  JOIN pg_catalog.pg_class c ON c.oid = k.conrelid
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE k.contype IN ('c', 'f', 'p', 'u', 'x')
   AND k.conparentid = 0
   AND (k.conislocal OR k.coninhcount = 0)
   AND c.relpersistence <> 't'
   AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pgmove')
   AND n.nspname !~ '^pg_toast' AND n.nspname !~ '^pg_temp_'
   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                    WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.objid = c.oid AND d.deptype = 'e')
 ORDER BY 1, 2, 3
