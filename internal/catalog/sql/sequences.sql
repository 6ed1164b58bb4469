-- Every user sequence, with its parameters and the column that owns it
-- (serial or identity), if any. Extension members are left out.
SELECT c.oid::int8, n.nspname, c.relname,
       pg_catalog.format_type(s.seqtypid, NULL),
       s.seqstart, s.seqincrement, s.seqmin, s.seqmax, s.seqcycle,
       COALESCE((SELECT tn.nspname FROM pg_catalog.pg_depend d
                   JOIN pg_catalog.pg_class t ON t.oid = d.refobjid
                   JOIN pg_catalog.pg_namespace tn ON tn.oid = t.relnamespace
                  WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = c.oid
                    AND d.refclassid = 'pg_catalog.pg_class'::regclass AND d.refobjsubid > 0
                    AND d.deptype IN ('a', 'i') LIMIT 1), '') AS owner_schema,
       COALESCE((SELECT t.relname FROM pg_catalog.pg_depend d
                   JOIN pg_catalog.pg_class t ON t.oid = d.refobjid
                  WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = c.oid
                    AND d.refclassid = 'pg_catalog.pg_class'::regclass AND d.refobjsubid > 0
                    AND d.deptype IN ('a', 'i') LIMIT 1), '') AS owner_table,
       COALESCE((SELECT a.attname FROM pg_catalog.pg_depend d
                   JOIN pg_catalog.pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
                  WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = c.oid
                    AND d.refclassid = 'pg_catalog.pg_class'::regclass AND d.refobjsubid > 0
                    AND d.deptype IN ('a', 'i') LIMIT 1), '') AS owner_column
  FROM pg_catalog.pg_class c
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_catalog.pg_sequence s ON s.seqrelid = c.oid
 WHERE c.relkind = 'S'
   AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pgmove')
   AND n.nspname !~ '^pg_toast' AND n.nspname !~ '^pg_temp_'
   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                    WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
 ORDER BY n.nspname, c.relname
