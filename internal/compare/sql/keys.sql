-- The unique indexes of one table that can serve as its row key: valid,
-- btree, no expression, not partial. The primary key first, then the
-- narrowest. notnull says whether every key column is NOT NULL (a unique
-- index on NULL-able columns lets two rows share a key); collations lists
-- each key column's collation OID (0 for a type without one).
SELECT ic.relname, i.indisprimary,
       ARRAY(SELECT a.attname::text FROM pg_catalog.unnest(i.indkey::int2[]) WITH ORDINALITY AS u(k, n)
             JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = u.k
             WHERE u.n <= i.indnkeyatts ORDER BY u.n),
       (SELECT pg_catalog.bool_and(a.attnotnull) FROM pg_catalog.unnest(i.indkey::int2[]) WITH ORDINALITY AS u(k, n)
             JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = u.k
             WHERE u.n <= i.indnkeyatts),
       ARRAY(SELECT a.attcollation::int8 FROM pg_catalog.unnest(i.indkey::int2[]) WITH ORDINALITY AS u(k, n)
             JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = u.k
             WHERE u.n <= i.indnkeyatts ORDER BY u.n)
FROM pg_catalog.pg_index i
JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
JOIN pg_catalog.pg_am am ON am.oid = ic.relam
WHERE i.indrelid = $1 AND i.indisunique AND i.indisvalid AND am.amname = 'btree'
  AND i.indexprs IS NULL AND i.indpred IS NULL AND 0 <> ALL (i.indkey::int2[])
ORDER BY i.indisprimary DESC, i.indnkeyatts, ic.relname
