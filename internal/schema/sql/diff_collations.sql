-- User collations: provider, locale, determinism. (The ICU locale moved
-- from collcollate to colliculocale in 15, and to colllocale in 17.)
SELECT n.nspname, c.collname, c.collprovider::text,
       COALESCE(c.colllocale, ''), COALESCE(c.collcollate, ''), COALESCE(c.collctype, ''),
       c.collisdeterministic, c.oid::int8
  FROM pg_catalog.pg_collation c
  JOIN pg_catalog.pg_namespace n ON n.oid = c.collnamespace
 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pgmove')
   AND n.nspname !~ '^pg_toast' AND n.nspname !~ '^pg_temp_'
   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                    WHERE d.classid = 'pg_catalog.pg_collation'::pg_catalog.regclass AND d.objid = c.oid AND d.deptype = 'e')
 ORDER BY 1, 2
