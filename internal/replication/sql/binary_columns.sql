-- The columns of the given tables (schema and name arrays), each with its
-- type as written and whether its values can travel in a subscription's
-- binary format between two clusters: the type has binary send and receive
-- functions, and its wire format names no OID that differs between
-- clusters. That holds for built-in base, range and multirange types
-- (built-in arrays of them included: their element OIDs are fixed), a
-- domain over one, and an enum (sent as its label). A composite (each field
-- is sent with its type's OID), an array of a user type, or an extension's
-- type is not judged safe.
SELECT n.nspname, c.relname, a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod),
       t.typsend::oid <> 0 AND t.typreceive::oid <> 0
       AND ((b.oid < 16384 AND b.typtype IN ('b', 'r', 'm')) OR b.typtype = 'e')
  FROM unnest($1::text[], $2::text[]) AS q(nsp, rel)
  JOIN pg_catalog.pg_namespace n ON n.nspname = q.nsp
  JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = q.rel
  JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
  JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
  JOIN pg_catalog.pg_type b ON b.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
 ORDER BY 1, 2, a.attnum
