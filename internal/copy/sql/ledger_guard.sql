-- Rows of {{table}} that no load of this migration's copies between these
-- two databases wrote (xmin is the inserting transaction's xid, kept when
-- the row is frozen), and all its rows. Run after LOCK TABLE, in the
-- transaction that empties it.
SELECT pg_catalog.count(*) FILTER (WHERE NOT (t.xmin::text::int8 = ANY (p.xids))), pg_catalog.count(*)
  FROM {{table}} t,
       (SELECT COALESCE(pg_catalog.array_agg(l.xid), '{}') AS xids
          FROM pgmove.load l
          JOIN pgmove.copy c ON c.copy_id = l.copy_id
         WHERE l.relid = $1
           AND c.migration = $2
           AND c.src_sysid = $3 AND c.src_dboid = $4
           AND c.dst_sysid = $5 AND c.dst_dboid = $6) p
