-- The live columns of the relations $1, in attnum order, with how many
-- parents each is inherited from.
SELECT a.attrelid::int8, a.attname, a.attinhcount
FROM pg_catalog.pg_attribute a
WHERE a.attrelid = ANY($1::oid[]) AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attrelid, a.attnum
