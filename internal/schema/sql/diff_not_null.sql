-- PostgreSQL 18+: the NOT NULL constraints of the columns a table declares
-- itself, each a catalogue entry with a name, NOT VALID and NO INHERIT
-- (before 18 NOT NULL is a column flag only, always valid and inherited).
SELECT n.nspname, c.relname, a.attname, k.conname, NOT k.convalidated, k.connoinherit
  FROM pg_catalog.pg_constraint k
  JOIN pg_catalog.pg_class c ON c.oid = k.conrelid
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.conkey[1]
 WHERE k.contype = 'n'
   AND c.relkind IN ('r', 'p', 'f')
   AND c.relpersistence <> 't'
   AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pgmove')
   AND n.nspname !~ '^pg_toast' AND n.nspname !~ '^pg_temp_'
 ORDER BY 1, 2, 3
