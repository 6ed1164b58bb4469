-- Installed extensions (plpgsql too: a target without it is worth knowing).
SELECT e.extname, e.extversion, n.nspname, e.extrelocatable, e.oid::int8
  FROM pg_catalog.pg_extension e
  JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace
 ORDER BY 1
