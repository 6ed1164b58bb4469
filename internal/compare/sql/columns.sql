-- The columns of one table in order, with what hashing them needs: the type's
-- OID (built-in types are hashed without text formatting when that is
-- exact), its name as format_type renders it (to cast key values), and
-- whether the column is a stored generated one (repair cannot write it).
SELECT a.attname, a.atttypid::int8, pg_catalog.format_type(a.atttypid, a.atttypmod),
       a.attgenerated <> '', a.attidentity = 'a'
FROM pg_catalog.pg_attribute a
WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
