-- Subscriptions in the current database (pg_subscription is shared; keep ours).
SELECT s.oid::int8, s.subname::text, s.subenabled, COALESCE(s.subslotname::text, ''),
       array_to_string(s.subpublications, ',')
  FROM pg_catalog.pg_subscription s
 WHERE s.subdbid = (SELECT oid FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database())
 ORDER BY s.subname
