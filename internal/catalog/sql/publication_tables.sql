-- Tables a publication publishes directly (for partitioned tables published
-- via the root: the root), as schema and name.
SELECT n.nspname, c.relname
  FROM pg_catalog.pg_publication_rel pr
  JOIN pg_catalog.pg_publication p ON p.oid = pr.prpubid
  JOIN pg_catalog.pg_class c ON c.oid = pr.prrelid
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE p.pubname = $1
 ORDER BY n.nspname, c.relname
