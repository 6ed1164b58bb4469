-- Which of the given tables (schemas and names, in pairs) exist.
SELECT t.s, t.n
  FROM unnest($1::text[], $2::text[]) AS t(s, n)
 WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace ns ON ns.oid = c.relnamespace
                WHERE ns.nspname = t.s AND c.relname = t.n AND c.relkind IN ('r', 'p'))
