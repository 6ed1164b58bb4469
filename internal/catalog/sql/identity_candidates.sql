-- Unique indexes that PostgreSQL accepts for REPLICA IDENTITY USING INDEX:
-- unique, valid, immediate (not deferrable), not partial, no expression
-- columns, and every key column NOT NULL. Smallest first.
SELECT x.indrelid::int8, i.relname, pg_catalog.pg_relation_size(i.oid) AS bytes, x.indnkeyatts::int
  FROM pg_catalog.pg_index x
  JOIN pg_catalog.pg_class i ON i.oid = x.indexrelid
 WHERE x.indrelid = ANY ($1::oid[])
   AND x.indisunique AND x.indisvalid AND x.indimmediate AND NOT x.indisprimary
   AND x.indpred IS NULL AND x.indexprs IS NULL
   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a
                    WHERE a.attrelid = x.indrelid
                      AND a.attnum = ANY ((x.indkey::int2[])[0:x.indnkeyatts - 1])
                      AND NOT a.attnotnull)
 ORDER BY x.indrelid, x.indnkeyatts, pg_catalog.pg_relation_size(i.oid), i.relname
