-- Row-level security policies, rendered as CREATE POLICY takes them; roles
-- come quoted, PUBLIC as the keyword.
SELECT n.nspname, c.relname, pol.polname,
       CASE WHEN pol.polpermissive THEN 'PERMISSIVE' ELSE 'RESTRICTIVE' END,
       CASE pol.polcmd WHEN 'r' THEN 'SELECT' WHEN 'a' THEN 'INSERT' WHEN 'w' THEN 'UPDATE' WHEN 'd' THEN 'DELETE' ELSE 'ALL' END,
       CASE WHEN pol.polroles = '{0}' THEN 'PUBLIC'
            ELSE (SELECT pg_catalog.string_agg(pg_catalog.quote_ident(r.rolname), ', ' ORDER BY r.rolname)
                    FROM pg_catalog.pg_roles r WHERE r.oid = ANY (pol.polroles)) END,
       COALESCE(pg_catalog.pg_get_expr(pol.polqual, pol.polrelid), ''),
       COALESCE(pg_catalog.pg_get_expr(pol.polwithcheck, pol.polrelid), ''),
       pol.oid::int8
  FROM pg_catalog.pg_policy pol
  JOIN pg_catalog.pg_class c ON c.oid = pol.polrelid
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pgmove')
 ORDER BY 1, 2, 3
