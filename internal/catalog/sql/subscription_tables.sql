-- Tables a subscription has (pg_subscription_rel), as schema and name.
SELECT n.nspname, c.relname
  FROM pg_catalog.pg_subscription_rel sr
  JOIN pg_catalog.pg_class c ON c.oid = sr.srrelid
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE sr.srsubid = $1
 ORDER BY n.nspname, c.relname
